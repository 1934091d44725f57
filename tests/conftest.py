"""Shared fixtures: the repository, its virtual environment's tools, and a small real espeak-ng corpus."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from hne_core.bench.plan import job_counts

REPO = Path(__file__).resolve().parent.parent
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))
SMOKE = REPO / "tests" / "configs" / "smoke.yaml"

DATA_JOBS = {  # the data stage of the synthetic source and its tokenizer
    "synthetic_script": 1,
    "synthesize_corpus": 1,
    "espnet_data_dir": 3,
    "data_report": 1,
    "train_tokenizer": 1,
    "tokenizer_coverage": 1,
}
# The model and results jobs of a full grid (13 models, the three tables) as `snakemake -n` counts them.
# Evaluated at λC(i) = λC(t) (13) and at the tables' other inference weights (table 1: 3, table 3: 3); 16 attacked
# (model, λC(i)) pairs (the tables' unique columns) x 4 milestones.
MODEL_JOBS = {
    "collect_stats": 1,
    "finetune": 13,
    "evaluate": 19,
    "evaluate_base": 1,
    "attack_targets": 1,
    "attack": 64,
    "all": 1,
    # results: the tidy frame, one job per table (3), benign table, comparison, Figure 1, training curves
    "results_advtwer": 1,
    "results_table": 3,
    "results_benign": 1,
    "results_comparison": 1,
    "results_figure1": 1,
    "results_training_curves": 1,
    # how the attacks sound: the perceptual table of every milestone, the listening page of the last
    "results_perceptual": 1,
    "listen_page": 1,
}
# The paper's DAG on a Common Voice archive: fetch and prepare the data, fetch the Zenodo base, then the grid.
PAPER_JOBS = {
    "fetch_commonvoice": 1,
    "prepare_commonvoice": 1,
    "espnet_data_dir": 3,
    "data_report": 1,
    "fetch_pretrained": 1,
    "pretrained_tokenizer": 1,
    "tokenizer_coverage": 1,
    **MODEL_JOBS,
}


def run_snakemake(
    workdir: Path, *args: str, check: bool = True, env: dict | None = None, timeout: int = 1800
) -> subprocess.CompletedProcess:
    """Run the real workflow in ``workdir`` (outputs land there, never in the repository)."""
    cmd = [SNAKEMAKE, "-s", str(REPO / "Snakefile"), "--directory", str(workdir), *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


def planned_jobs(proc: subprocess.CompletedProcess) -> dict[str, int]:
    """The job counts of a dry run's 'Job stats' table."""
    return job_counts(proc.stdout + proc.stderr)


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory) -> Path:
    """One real run of the default target on the smoke config, shared by the tests that read its outputs."""
    workdir = tmp_path_factory.mktemp("smoke_run")
    run_snakemake(workdir, "--configfile", str(SMOKE), "--cores", "2")
    return workdir


def pytest_collection_modifyitems(config, items):
    """Every test that needs the shared smoke run is `slow` (a whole workflow run); `pytest -m "not slow"` is the
    everyday loop, the full suite is CI's."""
    for item in items:
        if "smoke_run" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
