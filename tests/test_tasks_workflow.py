"""Auxiliary tasks beyond accent, end to end: the smoke run with tests/configs/smoke_tasks.yaml on top fine-tunes a
sex-only and a two-head (accent + sex) model from the labels the data stage writes, attacks them and writes Tables 4
and 5 and the two findings; config errors name the key."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, SMOKE, planned_jobs, run_snakemake

pytestmark = pytest.mark.slow  # real workflow runs

SMOKE_TASKS = REPO / "tests" / "configs" / "smoke_tasks.yaml"
SEX = "la0.7_lc0.0_sex1.0"
BOTH = "la0.7_lc0.0_accent0.5-sex0.5"


@pytest.fixture(scope="module")
def tasks_run(smoke_run, tmp_path_factory):
    """The finished smoke run (a copy) with the tasks overlay run on top."""
    dest = tmp_path_factory.mktemp("tasks") / "run"
    shutil.copytree(smoke_run, dest, symlinks=True, copy_function=shutil.copy2)
    run_snakemake(dest, "--configfile", str(SMOKE), str(SMOKE_TASKS), "--cores", "2")
    return dest


def kaldi(path) -> dict[str, str]:
    return dict(line.split(maxsplit=1) for line in path.read_text().splitlines())


def test_sex_labels_follow_the_variant_in_every_split(tasks_run):
    data = tasks_run / "results" / "data"
    manifest = pd.read_csv(data / "manifest.tsv", sep="\t", keep_default_na=False)
    for split in ("train", "dev", "test"):
        labels = {u: int(v) for u, v in kaldi(data / split / "labels_sex").items()}
        rows = manifest[manifest["split"] == split]
        assert sorted(labels) == sorted(rows["utt_id"]), "one label per utterance of the split"
        expected = {u: ("female", "male").index(s) for u, s in zip(rows["utt_id"], rows["sex"])}
        assert labels == expected
        assert set(labels.values()) == {0, 1}, f"both sexes in {split}"
        assert all(("-m" in u) == (v == 1) for u, v in labels.items()), "male = an m* espeak-ng variant"


def test_each_model_has_the_heads_its_tasks_name_and_trained_them(tasks_run):
    models = tasks_run / "results" / "models"
    heads = {}
    for model in (SEX, BOTH, "la0.7_lc0.3"):
        state = torch.load(models / model / "mtl_model.pth", map_location="cpu", weights_only=True)
        heads[model] = {k.split(".")[0] + ("." + k.split(".")[1] if k.startswith("task_heads") else "") for k in state}
        conf = yaml.safe_load((models / model / "mtl_config.yaml").read_text())["model_conf"]
        stock = torch.load(models / model / "model.pth", map_location="cpu", weights_only=True)
        assert not any(k.startswith(("discriminator.", "task_heads.")) for k in stock), "export drops every head"
        if model == "la0.7_lc0.3":
            assert "tasks" not in conf, "the paper's model: its recipe names the accent head only"
        else:
            assert conf["tasks"] == (
                {"sex": {"classes": 2, "weight": 1.0}}
                if model == SEX
                else {"accent": {"classes": 2, "weight": 0.5}, "sex": {"classes": 2, "weight": 0.5}}
            )
    assert "task_heads.sex" in heads[SEX] and "discriminator" not in heads[SEX]
    assert {"task_heads.sex", "discriminator"} <= heads[BOTH]
    assert "discriminator" in heads["la0.7_lc0.3"] and "task_heads.sex" not in heads["la0.7_lc0.3"]
    curve = pd.read_csv(models / BOTH / "train_curve.csv")
    assert curve.filter(like="acc_sex").notna().any().any(), f"the sex head's accuracy is logged: {list(curve)}"


def test_evaluations_report_each_heads_accuracy_on_the_test_labels(tasks_run):
    data = tasks_run / "results" / "data" / "test"
    sex = {u: int(v) for u, v in kaldi(data / "labels_sex").items()}
    for model, tasks in ((SEX, {"sex"}), (BOTH, {"accent", "sex"})):
        folder = tasks_run / "results" / "eval" / model / "infer0.0"
        summary = json.loads((folder / "summary.json").read_text())
        hyps = pd.read_csv(folder / "hypotheses.tsv", sep="\t", keep_default_na=False)
        assert summary["tasks"] == model.split("_", 2)[2] and set(summary["task_acc"]) == tasks
        assert (hyps["sex_id"] == hyps["utt_id"].map(sex)).all()
        assert summary["task_acc"]["sex"] == pytest.approx((hyps["sex_pred"] == hyps["sex_id"]).mean(), abs=1e-12)
        if "accent" in tasks:
            assert summary["accent_acc"] == summary["task_acc"]["accent"]
        else:
            assert summary["accent_acc"] is None
    plain = json.loads((tasks_run / "results/eval/la0.7_lc0.3/infer0.0/summary.json").read_text())
    assert "tasks" not in plain and "task_acc" not in plain, "the paper's models' summaries are as they were"


def test_tables_4_and_5_and_the_task_findings(tasks_run):
    tables = tasks_run / "results" / "tables"
    adv = pd.read_csv(tables / "advtwer.csv", keep_default_na=False)
    for model in (SEX, BOTH):
        tid = model.split("_", 2)[2]
        rows = adv[adv["tasks"] == tid]
        assert sorted(rows["steps"]) == [2, 4], f"{tid}: both milestones attacked"
        for _, r in rows.iterrows():
            summary = json.loads(
                (tasks_run / f"results/attacks/{model}/infer0.0/pgd{r['steps']}/summary.json").read_text()
            )
            assert summary["tasks"] == tid
            assert r["adv_twer"] == pytest.approx(summary["adv_twer"], abs=1e-9)
    assert set(adv.loc[adv["tasks"] == "", "lambda_c_train"]) == {0.0, 0.3}, "the paper's models keep tasks ''"
    t4 = pd.read_csv(tables / "table4.csv")
    t5 = pd.read_csv(tables / "table5.csv")
    assert "sex 0.7" in " ".join(map(str, t4.columns)) and "accent + sex 0.5" in " ".join(map(str, t5.columns))
    comparison = (tables / "paper_comparison.md").read_text()
    for claim in ("A diverse task other than accent is more robust than the STL decoder", "Two diverse tasks beat one"):
        assert claim in comparison
    assert "0.7/0.0/0.0/sex1.0" in comparison and "0.7/0.0/0.0/accent0.5-sex0.5" in comparison
    benign = (tables / "benign.md").read_text()
    assert "sex" in benign.lower()


def test_nothing_changed_plans_nothing_and_a_task_weight_added_plans_only_its_model(tasks_run, tmp_path):
    proc = run_snakemake(tasks_run, "-n", "--cores", "2", "--configfile", str(SMOKE), str(SMOKE_TASKS))
    assert "Nothing to be done" in proc.stdout + proc.stderr
    cfg = yaml.safe_load(SMOKE_TASKS.read_text())
    cfg["finetune"]["grid"].append({"lambda_a": 0.7, "lambda_c": 0.0, "tasks": {"accent": 0.25, "sex": 0.75}})
    cfg["tables"][2]["columns"].append(
        {
            "lambda_a": 0.7,
            "lambda_c_train": 0.0,
            "lambda_c_infer": 0.0,
            "tasks": {"accent": 0.25, "sex": 0.75},
            "label": "accent + sex 0.25",
        }
    )
    overlay = tmp_path / "more.yaml"
    overlay.write_text(yaml.safe_dump(cfg))
    plan = planned_jobs(run_snakemake(tasks_run, "-n", "--cores", "2", "--configfile", str(SMOKE), str(overlay)))
    assert plan["finetune"] == 1 and plan["attack"] == 2 and "task_labels" not in plan and "pretrain" not in plan


@pytest.mark.parametrize(
    "point, key",
    [
        ({"lambda_a": 0.7, "lambda_c": 0.0, "tasks": {"height": 1.0}}, "finetune.grid.4.tasks"),
        ({"lambda_a": 0.7, "lambda_c": 0.0, "tasks": {"accent": 0.5, "sex": 0.6}}, "finetune.grid.4.tasks"),
        ({"lambda_a": 1.0, "lambda_c": 0.0, "tasks": {"sex": 1.0}}, "finetune.grid.4.tasks"),
    ],
)
def test_bad_tasks_are_refused_naming_the_key(tmp_path, point, key):
    cfg = yaml.safe_load(SMOKE_TASKS.read_text())
    cfg["finetune"]["grid"].append(point)
    overlay = tmp_path / "bad.yaml"
    overlay.write_text(yaml.safe_dump(cfg))
    proc = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(SMOKE), str(overlay), check=False)
    assert proc.returncode != 0 and f"Invalid config key '{key}'" in proc.stdout + proc.stderr


def test_the_robustness_overlays_stack_on_the_tasks_overlay(tmp_path):
    """configs/tasks.yaml + robustness.yaml + tasks_robustness.yaml plans the checks and the training seeds of the
    task models (one fine-tuning per extra seed each) beside the paper's."""
    configs = [str(REPO / "configs" / name) for name in ("tasks.yaml", "robustness.yaml", "tasks_robustness.yaml")]
    proc = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", *configs)
    out = proc.stdout + proc.stderr
    plan = planned_jobs(proc)
    seeds = yaml.safe_load((REPO / "configs" / "robustness.yaml").read_text())["robustness"]["seeds"]
    assert plan["finetune"] == 21 and plan["robustness_seed_finetune"] == 7 * len(seeds)
    for model in (SEX, BOTH):
        for seed in seeds:
            assert f"results/robustness/seeds/seed{seed}/models/{model}/model.pth" in out
        assert f"results/robustness/untargeted/{model}/infer0.0/pgd2000/summary.json" in out
    assert "results/robustness/adaptive/lca0.0_mu-1.0/la0.7_lc0.0_accent0.5-sex0.5/infer0.0/pgd2000" in out
    assert f"results/robustness/adaptive/lca0.0_mu-1.0/{SEX}/" not in out, "μ weighs an accent head the model lacks"
