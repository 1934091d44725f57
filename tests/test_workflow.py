"""The workflow itself: DAGs of both configs, lint, config validation, a real smoke run, failure hygiene."""

from __future__ import annotations

import json
import re

import jiwer
import pandas as pd
import pytest
import yaml
from conftest import DATA_JOBS, MODEL_JOBS, PAPER_JOBS, REPO, SMOKE, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow  # real workflow runs (minutes each)


def write_config(path, data: dict):
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_default_dag_dry_run(tmp_path):
    proc = run_snakemake(tmp_path, "-n", "--cores", "2")
    assert planned_jobs(proc) == {**DATA_JOBS, **MODEL_JOBS, "pretrain": 1}


def test_default_config_attacks_with_the_papers_budget_and_quick_overlay_does_not(tmp_path):
    """The default run: ε 2.0, α 0.05, milestones 500-2000, at least 32 utterances, every table setting attacked;
    configs/quick.yaml plans the same DAG (same jobs) at 50-200 steps into results/quick/."""
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    attack = default["attack"]
    assert (attack["epsilon"], attack["step_size"], attack["steps"]) == (2.0, 0.05, [500, 1000, 1500, 2000])
    assert attack["n_utterances"] >= 32
    quick = yaml.safe_load((REPO / "configs/quick.yaml").read_text())
    assert max(quick["attack"]["steps"]) < 500
    proc = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(REPO / "configs/quick.yaml"))
    assert planned_jobs(proc) == {**DATA_JOBS, **MODEL_JOBS, "pretrain": 1}
    assert "results/quick/attacks/la1.0_lc0.0/infer0.0/pgd200/summary.json" in proc.stdout


def test_paper_dag_dry_run_with_a_fake_archive(tmp_path):
    archive = tmp_path / "cv-corpus-7.0-2021-07-21-en.tar.gz"
    archive.write_bytes(b"")
    overlay = write_config(tmp_path / "archive.yaml", {"commonvoice": {"archive": str(archive)}})
    proc = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(REPO / "configs/paper.yaml"), overlay)
    assert planned_jobs(proc) == PAPER_JOBS
    assert "results/paper/data/train/wav.scp" in proc.stdout


def test_paper_config_holds_the_papers_experiment():
    paper = yaml.safe_load((REPO / "configs/paper.yaml").read_text())
    grid = {(p["lambda_a"], p["lambda_c"]) for p in paper["finetune"]["grid"]}
    assert len(grid) == 13
    assert {(1.0, c) for c in (0.0, 0.3, 0.5, 0.7, 1.0)} <= grid
    assert {(a, 0.0) for a in (0.9, 0.8, 0.7, 0.6, 0.5)} <= grid
    assert {(0.7, c) for c in (0.3, 0.5, 0.7)} <= grid
    attack = paper["attack"]
    assert (attack["epsilon"], attack["step_size"], attack["steps"]) == (2.0, 0.05, [500, 1000, 1500, 2000])
    assert 900 <= attack["n_utterances"] <= 1100
    tables = {t["name"]: t["columns"] for t in paper["tables"]}
    assert [(c["lambda_c_train"], c["lambda_c_infer"]) for c in tables["table1"]] == [
        (0.0, 0.0),
        (0.3, 0.3),
        (0.5, 0.5),
        (0.7, 0.7),
        (1.0, 1.0),
        (0.3, 0.0),
        (0.5, 0.0),
        (0.7, 0.0),
    ]
    assert [c["lambda_a"] for c in tables["table2"]] == [1.0, 0.9, 0.8, 0.7, 0.6, 0.5]
    assert [c["lambda_c_train"] for c in tables["table3"]] == [0.0, 0.3, 0.5, 0.7]
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    assert default["tables"] == paper["tables"] and default["finetune"]["grid"] == paper["finetune"]["grid"]
    assert (default["attack"]["epsilon"], default["attack"]["step_size"]) == (2.0, 0.05)


def test_lint_is_clean(tmp_path):
    proc = run_snakemake(tmp_path, "--lint", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Lints for" not in proc.stdout + proc.stderr


@pytest.mark.parametrize(
    "overlay, key",
    [
        ({"attack": {"epsilon": "large"}}, "attack.epsilon"),
        ({"synthetic": {"utterances": {"train": -5}}}, "synthetic.utterances.train"),
        ({"data": {"sorce": "synthetic"}}, "data"),  # a typo is rejected, not ignored
        ({"data": {"source": "tape"}}, "data.source"),  # not a source of hne_core.data.sources.SOURCES
        ({"synthetic": {"classes": {"a": "en-us"}}}, "synthetic.classes.a"),  # classes are {name: {voice: ...}}
        ({"finetune": {"grid": [{"lambda_a": 1.5, "lambda_c": 0.0}]}}, "finetune.grid.0.lambda_a"),
        ({"finetune": {"grid": [{"lambda_a": 1.0, "lambda_c": 0.3}]}}, "tables.0.columns.0"),
        (
            {"figure1": {"series": [{"lambda_a": 0.9, "lambda_c_train": 0.0, "lambda_c_infer": 0.3, "label": "x"}]}},
            "figure1.series.0",
        ),
        (
            {"findings": [{"claim": "x", "metric": "adv_twer", "comparisons": [["0.9/0.0/0.0", "0.9/0.0/0.3"]]}]},
            "findings.0",
        ),
        (
            {"findings": [{"claim": "x", "metric": "adv_twer", "comparisons": [["0.9/0.0/0.0"]]}]},
            "findings.0.comparisons.0",
        ),
        ({"attack": {"composition": "stratified"}}, "attack.composition"),
        ({"evaluation": {"composition": "even"}}, "evaluation.composition"),
        ({"attack": {"label_smoothing": 1.5}}, "attack.label_smoothing"),
        ({"attack": {"target_length": "tokens"}}, "attack.target_length"),
        ({"finetune": {"scheduler": "cosine"}}, "finetune.scheduler"),
        ({"finetune": {"warmup_steps": 10}}, "finetune.warmup_steps"),  # with config.yaml's scheduler: constant
        ({"attack": {"n_utterances": 201}}, "attack.n_utterances"),  # the test split holds at most 200
        ({"evaluation": {"n_utterances": 500}}, "evaluation.n_utterances"),
        (
            {
                "tables": [
                    {
                        "name": "t_refwer",
                        "title": "x",
                        "columns": [{"lambda_a": 1.0, "lambda_c_train": 0.0, "lambda_c_infer": 0.0, "label": "a"}],
                    }
                ]
            },
            "tables.0",
        ),
    ],
)
def test_bad_config_is_rejected_naming_the_key(tmp_path, overlay, key):
    proc = run_snakemake(tmp_path, "-n", "--configfile", write_config(tmp_path / "bad.yaml", overlay), check=False)
    assert proc.returncode != 0
    assert f"Invalid config key '{key}'" in proc.stdout + proc.stderr


def test_commonvoice_without_a_source_is_rejected(tmp_path):
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "configs/paper.yaml"), check=False)
    assert proc.returncode != 0
    assert "Invalid config key 'commonvoice.archive'" in proc.stdout + proc.stderr


def test_smoke_run_writes_the_data_stage(smoke_run):
    data = smoke_run / "results" / "data"
    manifest = pd.read_csv(data / "manifest.tsv", sep="\t")
    assert len(manifest) == 64
    for split, n in {"train": 48, "dev": 8, "test": 8}.items():
        ids = [line.split()[0] for line in (data / split / "wav.scp").read_text().splitlines()]
        assert len(ids) == n and ids == sorted(ids)
        for name in ("text", "utt2spk", "accent", "utt2dur", "utt2num_samples"):
            assert [ln.split()[0] for ln in (data / split / name).read_text().splitlines()] == ids
    summary = json.loads((data / "report.json").read_text())
    assert summary["total_utterances"] == 64 and summary["total_dropped"] == 0
    report = (data / "report.md").read_text()
    assert re.search(r"\| train \| us_english \| 24 \|", report)
    assert (data / "accent_classes.txt").read_text() == "0 us_english\n1 caribbean_english\n"
    coverage = json.loads((smoke_run / "results/tokenizer/coverage.json").read_text())
    assert all(v["unknown_token_rate"] == 0.0 for v in coverage.values())
    for log in ("synthesize_corpus.log", "espnet_data_dir_train.log", "data_report.log"):
        assert (smoke_run / "results/logs/data" / log).is_file()


def test_no_op_rerun_does_nothing(smoke_run):
    proc = run_snakemake(smoke_run, "-n", "--configfile", str(SMOKE), "--cores", "2")
    assert "Nothing to be done" in proc.stdout + proc.stderr


def test_same_seed_same_data_tables(smoke_run, tmp_path):
    """A second run from nothing with the same config writes byte-identical data files."""
    run_snakemake(
        tmp_path, "--configfile", str(SMOKE), "--cores", "1", "results/data/train/text", "results/data/manifest.tsv"
    )
    for rel in ("results/data/train/text", "results/data/manifest.tsv"):
        assert (tmp_path / rel).read_bytes() == (smoke_run / rel).read_bytes()


def test_failed_synthesis_leaves_no_artifact_that_looks_complete(tmp_path):
    bad = write_config(
        tmp_path / "bad_voice.yaml",
        {"synthetic": {"classes": {"a": {"voice": "en-us"}, "b": {"voice": "xx-nonexistent"}}}},
    )
    proc = run_snakemake(tmp_path, "--configfile", str(SMOKE), bad, "--cores", "2", check=False)
    assert proc.returncode != 0
    log = (tmp_path / "results/logs/data/synthesize_corpus.log").read_text()
    assert "espeak-ng failed" in log and "xx-nonexistent" in log
    assert not (tmp_path / "results/data/manifest.tsv").exists()
    assert not (tmp_path / "results/data/wav").exists()
    assert not list((tmp_path / "results/data").glob("*.part"))


def test_smoke_attacks_are_chained_and_within_the_ball(smoke_run):
    attacks = smoke_run / "results/attacks"
    targets = (attacks / "targets.txt").read_text().splitlines()
    utts = (attacks / "utterances.txt").read_text().split()
    assert len(targets) == 8 and len(utts) == 4
    for model in ("la1.0_lc0.0", "la0.7_lc0.3"):
        for steps, prev in ((2, 0), (4, 2)):
            folder = attacks / model / "infer0.0" / f"pgd{steps}"
            rows = pd.read_csv(folder / "utterances.csv", keep_default_na=False)
            assert {"utt_id", "reference", "target", "hypothesis", "l2_norm", "snr_db"} <= set(rows.columns)
            assert sorted(rows.utt_id) == utts
            assert set(rows.target) <= set(targets)
            assert (rows.l2_norm <= 2.0 + 1e-6).all() and (rows.l2_norm > 0).all()
            summary = json.loads((folder / "summary.json").read_text())
            assert summary["steps"] == steps and summary["prev_steps"] == prev and summary["steps_run"] == 2
            assert summary["n_utts"] == 4
            # AdvTWER: word edits against the targets over target words, both summed over the utterances (jiwer's
            # alignment of each); one division ×100 in the job, 100·edits over words here: ≤ 3 roundings apart
            counts = [jiwer.process_words(t, h) for t, h in zip(rows.target, rows.hypothesis)]
            edits = sum(c.substitutions + c.deletions + c.insertions for c in counts)
            words = sum(c.hits + c.substitutions + c.deletions for c in counts)
            assert summary["adv_twer"] == pytest.approx(100 * edits / words, rel=4 * 2.0**-53, abs=0)
            assert (folder / "state.npz").is_file()
