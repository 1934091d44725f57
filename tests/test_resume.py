"""A fine-tuning job killed part-way resumes from its last epoch when the workflow is rerun."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pandas as pd
import pytest
import yaml
from conftest import REPO, SMOKE, SNAKEMAKE, run_snakemake

MODEL = "la0.7_lc0.3"
TARGET = f"results/models/{MODEL}/train_curve.png"


@pytest.mark.slow
def test_killed_finetune_resumes_from_its_last_epoch(tmp_path):
    # Smoke epochs take about a second: six leave the kill below ample time to land mid-training.
    overlay = tmp_path / "six_epochs.yaml"
    overlay.write_text(yaml.safe_dump({"finetune": {"epochs": 6}}))
    args = [TARGET, "--cores", "1", "--configfile", str(SMOKE), str(overlay)]
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(tmp_path), *args]
    first = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    epoch_one = tmp_path / "results/training" / MODEL / "1epoch.pth"
    deadline = time.time() + 600
    try:
        while not epoch_one.exists():
            assert first.poll() is None, "the workflow ended before fine-tuning finished an epoch"
            assert time.time() < deadline, "no epoch finished within 10 minutes"
            time.sleep(0.05)
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
    assert not (tmp_path / TARGET).exists(), "killed before the job finished"

    run_snakemake(tmp_path, "--unlock", *args[1:])
    run_snakemake(tmp_path, *args, "--rerun-incomplete")
    log = (tmp_path / f"results/logs/model/finetune_{MODEL}.log").read_text()
    assert "resuming training in" in log and "The training was resumed using" in log
    assert "1epoch results" not in log, "epoch 1 was trained again"
    assert "6epoch results" in log
    curve = pd.read_csv(tmp_path / "results/models" / MODEL / "train_curve.csv")
    assert sorted(curve[curve.phase == "valid"].epoch) == [1, 2, 3, 4, 5, 6]

    again = run_snakemake(tmp_path, *args, "-n")
    assert "Nothing to be done" in again.stdout + again.stderr, "a finished job is never redone"


def test_a_torn_checkpoint_starts_over_and_a_whole_one_resumes(tmp_path):
    import torch

    from hne_core.model.train import prepare_output_dir

    out, recipe, args = tmp_path / "exp", {"epochs": 2}, ["--x", "1"]
    assert prepare_output_dir(out, recipe, args) is False
    torch.save({"epoch": 1}, out / "checkpoint.pth")
    (out / "1epoch.pth").write_bytes(b"weights")
    assert prepare_output_dir(out, recipe, args) is True, "a whole checkpoint of the same recipe resumes"
    (out / "checkpoint.pth").write_bytes((out / "checkpoint.pth").read_bytes()[:40])  # killed mid-save
    assert prepare_output_dir(out, recipe, args) is False
    assert not (out / "1epoch.pth").exists(), "a torn checkpoint's folder starts over"
    torch.save({"epoch": 1}, out / "checkpoint.pth")
    assert prepare_output_dir(out, {"epochs": 3}, args) is False, "another recipe starts over"
