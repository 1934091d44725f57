"""The rehearsal of the paper-scale run: ``configs/paper.yaml`` end to end through the real workflow, on inputs
shaped like the real ones and made here, with an overlay that only shrinks sizes.

- Common Voice: a release in the CV >= 8.0 schema (``accents``, free-text labels holding commas, multi-accent
  rows, other and empty accents), espeak-ng speech as MP3, every split about 70 % US / 30 % Indian, packed as a
  ``cv-corpus-*-en.tar.gz`` (so the fetch rule extracts it).
- The pre-trained model: a stand-in zip in the layout of Zenodo record 4604011 (``tests/zenodo_fixture.py``),
  served over HTTPS on the loopback interface at a Zenodo-shaped URL, so that espnet_model_zoo's downloader
  fetches it and the fetch rule checks its sha256, unpacks it and lays it out, as it would the real one.

What this proves and what it cannot is in docs/paper-run.md.
"""

from __future__ import annotations

import functools
import http.server
import json
import ssl
import subprocess
import tarfile
import threading
import time
from typing import ClassVar

import pandas as pd
import pytest
import yaml
from conftest import PAPER_JOBS, REPO, planned_jobs, run_snakemake
from cv_fixture import RELEASE, SENTENCES, expected_kept, make_unbalanced_release
from zenodo_fixture import make_standin_zip

PAPER = REPO / "configs" / "paper.yaml"
R = "results/paper"
TEST_UTTERANCES = 10  # the test split's subsample; all of it is attacked, as the paper attacks its 1000

# The rehearsal's overlay: sizes only (the paper's values in comments). Same ε, step size, λ grid, tables,
# discriminator, learning rate, engine and PGD batch. Two chained milestones instead of four: each attack job
# costs ~8 s here, nearly all of it Python, torch and ESPnet start-up, and 64 of them took the run past 8 min.
SIZES = {
    "data": {"threads": 2},  # 16
    "commonvoice": {"subsample": {"train": None, "dev": 4, "test": TEST_UTTERANCES}},  # all, 1200, 1000
    "finetune": {"epochs": 1, "threads": 1, "gpu": 0},  # 30 epochs, 4 threads, 1 GPU
    "evaluation": {"threads": 1, "gpu": 0},  # 2 threads, 1 GPU
    "attack": {
        "steps": [1, 2],  # 500, 1000, 1500, 2000
        "n_utterances": TEST_UTTERANCES,  # 1000
        "checkpoint_every": 1,  # 100 steps
        "threads": 1,  # 2
        "gpu": 0,  # 1
    },
    "results": {"bootstrap_samples": 200},  # 2000
}


class _Zenodo(http.server.SimpleHTTPRequestHandler):
    """Serves a folder as Zenodo serves a record's files (the query string is ignored); records every request."""

    requests: ClassVar[list[tuple[str, str]]] = []  # one list per server: paper_inputs subclasses this

    def log_message(self, *args) -> None:
        type(self).requests.append((self.command, self.path))


@pytest.fixture(scope="module")
def paper_inputs(tmp_path_factory):
    """(overlay with the Common Voice archive and the pinned pre-trained URL and sha256, environment of the
    workflow, stand-in zip, request log of the stand-in Zenodo)."""
    from hne_core.pretrained import sha256_of
    from hne_core.text import normalize_transcript

    base = tmp_path_factory.mktemp("paper_inputs")
    release = make_unbalanced_release(base / "cv")
    archive = base / f"{RELEASE}-en.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(release, arcname=RELEASE)
    zenodo = base / "zenodo"
    files = zenodo / "record" / "4604011" / "files"
    files.mkdir(parents=True)
    wavs = []
    for i, sentence in enumerate(SENTENCES[:4]):  # the stand-in's "LibriSpeech": statistics from espeak-ng speech
        wavs.append(base / f"stats{i}.wav")
        subprocess.run(["espeak-ng", "-w", str(wavs[-1]), sentence], check=True, capture_output=True)
    zipped = make_standin_zip(files, [normalize_transcript(s, "upper") for s in SENTENCES], wavs)
    # HTTPS as Zenodo's (the config accepts https:// only), with a certificate made here and trusted by the
    # workflow's downloads through REQUESTS_CA_BUNDLE
    cert, key = base / "cert.pem", base / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    handler = type("Zenodo", (_Zenodo,), {"requests": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(handler, directory=str(zenodo)))
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(cert, key)
    server.socket = tls.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"https://127.0.0.1:{server.server_port}/record/4604011/files/{zipped.name}?download=1"
    overlay = base / "inputs.yaml"
    overlay.write_text(
        yaml.safe_dump(
            {"commonvoice": {"archive": str(archive)}, "pretrained": {"url": url, "sha256": sha256_of(zipped)}}
        )
    )
    env = {"REQUESTS_CA_BUNDLE": str(cert), "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1"}
    try:
        yield overlay, env, zipped, handler.requests
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_paper_sizes_plan_the_whole_grid(tmp_path, paper_inputs):
    """The same inputs at the paper's own sizes (1000 attacked utterances, PGD 500-2000): the full DAG."""
    overlay, _, _, _ = paper_inputs
    proc = run_snakemake(tmp_path, "-n", "--cores", "2", "--configfile", str(PAPER), str(overlay))
    assert planned_jobs(proc) == PAPER_JOBS
    for steps in (500, 1000, 1500, 2000):
        assert f"{R}/attacks/la0.7_lc0.5/infer0.0/pgd{steps}/summary.json" in proc.stdout


def _leaves(tree: dict, prefix: str = ""):
    for key, value in tree.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _get(tree: dict, dotted: str):
    for key in dotted.split("."):
        tree = tree[key]
    return tree


def _merged(base: dict, overlay: dict) -> dict:
    """Snakemake's --configfile merge: maps merged key by key, anything else replaced."""
    out = dict(base)
    for key, value in overlay.items():
        out[key] = _merged(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def test_the_overlay_only_shrinks_sizes():
    """A rehearsal that changed the experiment would prove nothing about it."""
    paper = _merged(yaml.safe_load((REPO / "config.yaml").read_text()), yaml.safe_load(PAPER.read_text()))
    for key, value in _leaves(SIZES):
        was = _get(paper, key)
        if key == "attack.steps":
            assert 2 <= len(value) <= len(was) and value == sorted(value) and max(value) < min(was)  # chained
        elif key.endswith(".gpu"):
            assert value == 0  # a CPU run
        elif was is not None:
            assert value is not None and value <= was, key
    assert SIZES["attack"]["n_utterances"] == SIZES["commonvoice"]["subsample"]["test"]  # as 1000 of 1000


def _model_ids(paper: dict) -> list[str]:
    return [f"la{float(p['lambda_a'])}_lc{float(p['lambda_c'])}" for p in paper["finetune"]["grid"]]


def _pairs(paper: dict) -> set[tuple[str, str]]:
    return {
        (f"la{float(c['lambda_a'])}_lc{float(c['lambda_c_train'])}", str(float(c["lambda_c_infer"])))
        for t in paper["tables"]
        for c in t["columns"]
    }


@pytest.fixture(scope="module")
def rehearsal(paper_inputs, tmp_path_factory):
    """One run of the paper config with the sizes overlay: (working directory, the run, its configs, minutes)."""
    overlay, env, _, _ = paper_inputs
    base = tmp_path_factory.mktemp("rehearsal")
    sizes = base / "sizes.yaml"
    sizes.write_text(yaml.safe_dump(SIZES))
    workdir = base / "run"
    workdir.mkdir()
    configs = ["--configfile", str(PAPER), str(overlay), str(sizes)]
    t0 = time.perf_counter()
    proc = run_snakemake(workdir, "--cores", "2", *configs, env=env)
    minutes = (time.perf_counter() - t0) / 60
    print(f"\nrehearsal of the paper run: {minutes:.1f} min")  # shown with pytest -s
    return workdir, proc, configs, minutes


@pytest.fixture(scope="module")
def paper():
    return yaml.safe_load(PAPER.read_text())


@pytest.mark.slow
def test_rehearsal_runs_every_rule_of_the_papers_dag(rehearsal, paper, paper_inputs):
    workdir, proc, configs, _ = rehearsal
    # the job table the run printed: every rule of the paper's DAG, as many jobs but for the fewer milestones
    assert planned_jobs(proc) == {**PAPER_JOBS, "attack": len(_pairs(paper)) * len(SIZES["attack"]["steps"])}
    # every output of the DAG is there and up to date: a second plan has nothing to do
    again = run_snakemake(workdir, "-n", "--cores", "2", *configs, env=paper_inputs[1])
    assert "Nothing to be done" in again.stdout + again.stderr


@pytest.mark.slow
def test_rehearsal_downloads_verifies_and_lays_out_the_model(rehearsal, paper_inputs):
    workdir = rehearsal[0]
    _, _, zipped, requests = paper_inputs
    assert ("GET", f"/record/4604011/files/{zipped.name}?download=1") in requests  # through the downloader
    downloaded = list((workdir / "resources/model_zoo_cache").rglob(zipped.name))
    assert downloaded and downloaded[0].read_bytes() == zipped.read_bytes()
    base = workdir / "resources/pretrained/zenodo"
    assert sorted(p.name for p in base.iterdir()) == sorted(
        ["config.yaml", "model.pth", "bpe.model", "tokens.txt", "feats_stats.npz"]
    )
    base_cfg = yaml.safe_load((base / "config.yaml").read_text())
    assert (base_cfg["frontend_conf"]["n_fft"], base_cfg["frontend_conf"]["hop_length"]) == (512, 256)
    assert (base_cfg["encoder"], base_cfg["decoder"], base_cfg["normalize"]) == (
        "conformer",
        "transformer",
        "global_mvn",
    )
    out = workdir / R
    assert (out / "tokenizer/tokens.txt").read_text() == (base / "tokens.txt").read_text()
    assert (out / "tokenizer/bpe.model").read_bytes() == (base / "bpe.model").read_bytes()


@pytest.mark.slow
def test_rehearsal_reads_common_voice_and_keeps_its_accent_mix(rehearsal):
    """The CV >= 8.0 labels read, multi-accent rows dropped, dev and test subsampled; the attacked set is the whole
    test split (as the paper attacks all 1000 of its subsample), so its mix is the split's own: unbalanced."""
    out = rehearsal[0] / R
    report = json.loads((out / "data/report.json").read_text())
    kept = {(r["split"], r["accent"]): r["utterances"] for r in report["kept"]}
    assert {a: kept[("train", a)] for a in ("us", "indian")} == expected_kept("train")
    assert kept[("dev", "us")] + kept[("dev", "indian")] == SIZES["commonvoice"]["subsample"]["dev"]
    test_mix = {a: kept[("test", a)] for a in ("us", "indian")}
    assert sum(test_mix.values()) == TEST_UTTERANCES and test_mix["us"] > test_mix["indian"] > 0
    drops = {(d["split"], d["reason"]): d["rows"] for d in report["dropped"]}
    assert drops == {
        ("train", "multi_accent"): 2,
        ("train", "other_accent"): 1,
        ("train", "no_accent"): 1,
        ("dev", "multi_accent"): 1,
        ("dev", "subsampled"): 1,
        ("test", "multi_accent"): 1,
        ("test", "other_accent"): 1,
        ("test", "subsampled"): 4,
    }
    classes = (out / "data/accent_classes.txt").read_text().split()[1::2]
    last = SIZES["attack"]["steps"][-1]
    for cell in out.glob(f"attacks/*/infer*/pgd{last}/utterances.csv"):
        attacked = pd.read_csv(cell)["accent_id"].map(lambda i: classes[i]).value_counts().to_dict()
        assert attacked == test_mix, cell


@pytest.mark.slow
def test_rehearsal_fine_tunes_evaluates_and_attacks_the_grid(rehearsal, paper):
    out = rehearsal[0] / R
    for model in _model_ids(paper):  # with the paper's discriminator, exported for Speech2Text and with its head
        for name in (
            "config.yaml",
            "model.pth",
            "mtl_config.yaml",
            "mtl_model.pth",
            "train_curve.csv",
            "train_curve.png",
        ):
            assert (out / "models" / model / name).is_file(), (model, name)
        mtl = yaml.safe_load((out / "models" / model / "mtl_config.yaml").read_text())
        assert mtl["model_conf"]["dis_hidden"] == paper["discriminator"]["hidden"]
        assert (out / f"eval/{model}/infer{model.split('_lc')[1]}/summary.json").is_file()
    assert (out / "eval/pretrained/infer0.0/summary.json").is_file()
    for m, lci in _pairs(paper):
        assert (out / f"eval/{m}/infer{lci}/summary.json").is_file()
        for steps in SIZES["attack"]["steps"]:
            cell = out / f"attacks/{m}/infer{lci}/pgd{steps}"
            summary = json.loads((cell / "summary.json").read_text())
            assert (summary["n_utts"], summary["steps"], summary["eps"], summary["step_size"]) == (
                TEST_UTTERANCES,
                steps,
                paper["attack"]["epsilon"],
                paper["attack"]["step_size"],
            )
            assert summary["max_l2_norm"] <= paper["attack"]["epsilon"] and (cell / "state.npz").is_file()


@pytest.mark.slow
def test_rehearsal_writes_the_papers_tables_and_figure(rehearsal, paper):
    out = rehearsal[0] / R
    steps = SIZES["attack"]["steps"]
    advtwer = pd.read_csv(out / "tables/advtwer.csv")
    assert len(advtwer) == len(_pairs(paper)) * len(steps) and set(advtwer["n_utts"]) == {TEST_UTTERANCES}
    for table in paper["tables"]:
        frame = pd.read_csv(out / f"tables/{table['name']}.csv")
        labels = [c.removesuffix(" (baseline)") for c in frame.columns[1 : 1 + len(table["columns"])]]
        assert labels == [c["label"] for c in table["columns"]]
        assert frame["steps"].tolist() == [f"PGD-{s}" for s in steps]
        assert frame[frame.columns[1 : 1 + len(labels)]].notna().all().all()  # every cell filled
        for ext in ("md", "tex", "html"):
            assert (out / f"tables/{table['name']}.{ext}").stat().st_size > 0
    for name in ("benign.csv", "benign.md", "benign.tex", "benign.html", "paper_comparison.md"):
        assert (out / "tables" / name).stat().st_size > 0
    for name in ("figure1.png", "figure1.pdf", "training_curves.png"):
        assert (out / "figures" / name).stat().st_size > 0
