"""Kill the workflow during fine-tuning and during an attack (SIGTERM and SIGKILL), rerun with --rerun-incomplete:
interrupted jobs resume from their checkpoints, finished jobs are not redone, and the final results equal those of
an uninterrupted run of the same config.

One workflow lives through four interruptions (fine-tuning: SIGTERM, then SIGKILL of the resumed job; attack:
SIGTERM, then SIGKILL of the resumed job), so the whole test costs two smoke runs: that one and the reference.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SMOKE, SNAKEMAKE, planned_jobs, run_snakemake
from run_outputs import assert_same_results

pytestmark = pytest.mark.slow  # real workflow runs (minutes each)

# Long enough to be caught in the act on a fast machine: 6 epochs of about a second, a 200-step milestone
# checkpointed every 10 steps.
OVERLAY = {"finetune": {"epochs": 6}, "attack": {"steps": [2, 200], "checkpoint_every": 10}}
UPSTREAM = (
    "results/data/manifest.tsv",
    "results/data/train/text",
    "results/tokenizer/tokens.txt",
    "results/stats/train/feats_stats.npz",
    "results/pretrained/model.pth",
)


def configs(tmp_path: Path) -> list[str]:
    overlay = tmp_path / "interrupt.yaml"
    overlay.write_text(yaml.safe_dump(OVERLAY))
    return ["--configfile", str(SMOKE), str(overlay)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("uninterrupted")
    run_snakemake(workdir, "--cores", "2", *configs(workdir))
    return workdir


def start(workdir: Path, args: list[str], name: str) -> tuple[subprocess.Popen, Path]:
    out = workdir / f"{name}.out"
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), "--cores", "2", *args]
    proc = subprocess.Popen(cmd, stdout=out.open("w"), stderr=subprocess.STDOUT, start_new_session=True)
    return proc, out


def interrupt_when(proc: subprocess.Popen, out: Path, ready, sig: signal.Signals, what: str) -> None:
    """Wait until ``ready()`` holds while the workflow runs, then send ``sig`` to its whole process group."""
    deadline = time.time() + 900
    try:
        while not ready():
            assert proc.poll() is None, f"the workflow ended before {what}:\n{out.read_text()[-3000:]}"
            assert time.time() < deadline, f"no {what} within 15 minutes"
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, sig)
        proc.wait(timeout=300)
    if sig == signal.SIGKILL:  # the process group is gone: reap any straggler still holding the group
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def mtimes(workdir: Path, rels) -> dict[str, int]:
    return {r: (workdir / r).stat().st_mtime_ns for r in rels}


def test_interrupted_jobs_resume_and_the_results_equal_an_uninterrupted_run(tmp_path, reference):
    work = tmp_path / "run"
    work.mkdir()
    cfg = configs(tmp_path)
    training = work / "results/training"
    attacks = work / "results/attacks"

    # 1. SIGTERM while fine-tuning: some model has finished an epoch, not yet its last
    proc, out = start(work, cfg, "run1")
    epoch_done = lambda: any(
        p.parent.name.startswith("la") and not (work / "results/models" / p.parent.name / "train_curve.png").exists()
        for p in training.glob("*/1epoch.pth")
    )
    interrupt_when(proc, out, epoch_done, signal.SIGTERM, "a fine-tuning epoch")
    upstream = mtimes(work, UPSTREAM)
    # interrupted models with a saved epoch (a finished model keeps its checkpoint.pth too)
    resumable = sorted(
        p.parent.name
        for p in training.glob("la*/checkpoint.pth")
        if not (work / "results/models" / p.parent.name / "train_curve.png").exists()
    )
    assert resumable

    # 2. rerun; SIGKILL the resumed fine-tuning once it has saved another epoch
    model = resumable[0]
    ckpt = training / model / "checkpoint.pth"
    before = ckpt.stat().st_mtime_ns
    log = work / f"results/logs/model/finetune_{model}.log"
    proc, out = start(work, [*cfg, "--rerun-incomplete"], "run2")
    interrupt_when(
        proc,
        out,
        lambda: (
            ckpt.stat().st_mtime_ns != before and not (work / "results/models" / model / "train_curve.png").exists()
        ),
        signal.SIGKILL,
        "another epoch of the resumed fine-tuning",
    )
    assert "resuming training in" in log.read_text()
    planned = planned_jobs(subprocess.CompletedProcess([], 0, out.read_text(), ""))
    assert planned and not {"synthetic_script", "synthesize_corpus", "pretrain", "collect_stats"} & set(planned)
    run_snakemake(work, "--unlock", *cfg)

    # 3. rerun; SIGTERM during the 200-step attack (after its first in-job checkpoint)
    checkpoints = lambda: sorted(attacks.glob("*/infer*/pgd200.checkpoint"))
    proc, out = start(work, [*cfg, "--rerun-incomplete"], "run3")
    interrupt_when(proc, out, lambda: bool(checkpoints()), signal.SIGTERM, "an attack checkpoint")
    planned = planned_jobs(subprocess.CompletedProcess([], 0, out.read_text(), ""))
    assert planned and not {"synthetic_script", "synthesize_corpus", "pretrain", "collect_stats"} & set(planned)
    first = checkpoints()[0]
    attack_log = work / "results/logs/attacks" / (f"{first.parent.parent.name}_{first.parent.name}_pgd200.log")
    models_done = mtimes(work, sorted(p.relative_to(work) for p in (work / "results/models").rglob("*.pth")))

    # 4. rerun; SIGKILL the resumed attack once it has checkpointed again
    before = first.stat().st_mtime_ns
    proc, out = start(work, [*cfg, "--rerun-incomplete"], "run4")
    interrupt_when(
        proc,
        out,
        lambda: first.exists() and first.stat().st_mtime_ns != before,
        signal.SIGKILL,
        "another checkpoint of the resumed attack",
    )
    assert "resuming the attack from step" in attack_log.read_text()
    run_snakemake(work, "--unlock", *cfg)

    # 5. finish
    final = run_snakemake(work, *cfg, "--rerun-incomplete", "--cores", "2")
    done = planned_jobs(final)
    assert not {"synthetic_script", "synthesize_corpus", "pretrain", "collect_stats"} & set(done), done
    text = attack_log.read_text()
    assert "resuming the attack from step" in text
    summary = json.loads((first.parent / "pgd200" / "summary.json").read_text())
    assert summary["resumed_from_checkpoint"] > 0
    assert mtimes(work, UPSTREAM) == upstream, "a finished upstream job was redone"
    assert mtimes(work, models_done) == models_done, "a finished model was redone"
    again = run_snakemake(work, "-n", *cfg)
    assert "Nothing to be done" in again.stdout + again.stderr
    assert_same_results(
        work,
        reference,
        must_include=(
            "results/models/*/model.pth",
            "results/tables/*.csv",
            "results/attacks/*/infer*/pgd200/state.npz",
        ),
    )
