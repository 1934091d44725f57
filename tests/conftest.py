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
