"""The smoke workflow on a real SLURM cluster (single node, Debian's slurmctld/slurmd/munge) through profiles/slurm.

scripts/slurm/start.sh brings the cluster up (root only; install.sh installs the packages) and scripts/slurm/stop.sh
stops it by pid file. These tests never skip: a cluster that cannot start is a failure, with the reason.
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO, SMOKE, planned_jobs, run_snakemake
from run_outputs import assert_same_results

pytestmark = pytest.mark.slow  # real workflow runs (minutes each)

START, STOP = REPO / "scripts/slurm/start.sh", REPO / "scripts/slurm/stop.sh"
PROFILES = ["--profile", str(REPO / "profiles/slurm"), "--profile", str(REPO / "tests/profiles/slurm-local")]
SUBMITTED = re.compile(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def _cluster_is_up() -> bool:
    try:
        return "is UP" in subprocess.run(["scontrol", "ping"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.fixture(scope="module")
def slurm_cluster():
    """A running single-node SLURM cluster; stopped afterwards if this fixture started it."""
    if os.geteuid() != 0:
        pytest.fail("tests/test_slurm.py starts a SLURM cluster and must run as root (as CI does)", pytrace=False)
    was_up = _cluster_is_up()
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        pytest.fail(
            f"the SLURM cluster did not start ({START}, exit {proc.returncode}):\n"
            f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}",
            pytrace=False,
        )
    yield proc.stdout
    if not was_up:
        subprocess.run(["bash", str(STOP)], capture_output=True, text=True, timeout=120)


def submissions(proc: subprocess.CompletedProcess) -> list[tuple[str, str, str]]:
    """(snakemake job id, SLURM job id, SLURM log) of every job the workflow submitted."""
    return SUBMITTED.findall(proc.stdout + proc.stderr)


@pytest.fixture(scope="module")
def slurm_run(slurm_cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm_run")
    plan = run_snakemake(workdir, "-n", *PROFILES, "--configfile", str(SMOKE))
    proc = run_snakemake(workdir, *PROFILES, "--configfile", str(SMOKE), timeout=2400)
    return workdir, planned_jobs(plan), proc


def test_every_job_ran_as_a_slurm_job(slurm_run):
    workdir, planned, proc = slurm_run
    subs = submissions(proc)
    # every planned job but the local target rule `all` went through sbatch, once
    assert len(subs) == sum(planned.values()) - planned.get("all", 0), proc.stdout[-3000:]
    slurm_ids = {sid for _, sid, _ in subs}
    assert len(slurm_ids) == len(subs)
    rules = {}
    for _, sid, slurm_log in subs:
        log = Path(slurm_log)
        assert log.is_file() and log.name == f"{sid}.log", log  # SLURM's own log of the job
        rule = log.relative_to(workdir / ".snakemake/slurm_logs").parts[0].removeprefix("rule_")
        rules[rule] = rules.get(rule, 0) + 1
    assert rules == {r: n for r, n in planned.items() if r != "all"}
    # each job's own log opens with the SLURM job that ran it (hne_core.logs.logged_to)
    logged = {}
    for log in (workdir / "results/logs").rglob("*.log"):
        found = re.findall(r"SLURM job (\d+) \(partition debug\)", log.read_text())
        assert len(found) == 1, f"{log} names {found or 'no'} SLURM job"
        logged[found[0]] = log
    assert set(logged) == slurm_ids


def test_slurm_outputs_equal_a_local_runs(slurm_run, smoke_run):
    workdir, _, _ = slurm_run
    compared = assert_same_results(
        workdir,
        smoke_run,
        must_include=(
            "results/attacks/*/infer*/pgd*/summary.json",
            "results/eval/*/infer*/summary.json",
            "results/models/*/model.pth",
            "results/tables/*.csv",
        ),
    )
    assert len(compared) > 30


def copy_run(workdir: Path, dest: Path) -> Path:
    """A copy of a finished run to rerun jobs in, without the first run's SLURM job logs."""
    shutil.copytree(workdir, dest, symlinks=True, ignore=shutil.ignore_patterns("slurm_logs"))
    return dest


def smoke_epoch_seconds(workdir: Path, tmp_path: Path, target: str) -> float:
    """Seconds per smoke fine-tuning epoch on this machine, from a 30-epoch local run in a copy of ``workdir``:
    the spacing of ESPnet's epoch lines after the first (which carries the warm-up)."""
    calibrate = copy_run(workdir, tmp_path / "calibrate")
    short = tmp_path / "short.yaml"
    short.write_text(yaml.safe_dump({"finetune": {"epochs": 30}}))
    run_snakemake(calibrate, target, "--configfile", str(SMOKE), str(short), "--cores", "all", "--forcerun", "finetune")
    log = (calibrate / "results/logs/model" / f"finetune_{Path(target).parent.name}.log").read_text()
    stamps = [
        datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S,%f")
        for m in re.finditer(r"^(\S+ \S+) INFO root: \d+epoch results", log, re.M)
    ]
    assert len(stamps) >= 10, log[-2000:]
    return (stamps[-1] - stamps[1]).total_seconds() / (len(stamps) - 2)


def test_a_job_past_its_time_limit_is_retried_and_resumes(slurm_run, tmp_path):
    """A fine-tuning job that SLURM kills at its time limit (1 minute, SLURM's smallest) comes back through
    Snakemake's `retries` (profiles/slurm) and resumes from its last epoch instead of starting over."""
    workdir, _, _ = slurm_run
    run = copy_run(workdir, tmp_path / "run")
    model = "la1.0_lc0.0"
    target = f"results/models/{model}/train_curve.csv"
    # SLURM ends an attempt 60-90 s in (one minute, slurmctld checks time limits every 30 s). A smoke epoch takes
    # 0.1-0.3 s depending on the machine, so the epoch count is sized from this machine's epoch time: about
    # 3 minutes of training, which no single attempt can finish and a few resumed ones do.
    epochs = max(400, math.ceil(180 / smoke_epoch_seconds(workdir, tmp_path, target)))
    overlay = tmp_path / "long.yaml"
    overlay.write_text(yaml.safe_dump({"finetune": {"epochs": epochs, "runtime": 1}}))
    proc = run_snakemake(
        run, target, *PROFILES, "--configfile", str(SMOKE), str(overlay), "--retries", "8", timeout=1800
    )
    subs = [s for s in submissions(proc) if "rule_finetune" in s[2]]
    assert len(subs) >= 2, f"the job did not hit its time limit: {subs}\n{proc.stdout[-3000:]}"
    # every attempt but the last ended at its time limit (the plugin reports the state squeue gave it)
    text = proc.stdout + proc.stderr
    ended = [bool(re.search(rf"SLURM-job '{sid}' failed, SLURM status is: 'TIMEOUT'", text)) for _, sid, _ in subs]
    assert ended == [True] * (len(subs) - 1) + [False], text[-3000:]
    log = (run / f"results/logs/model/finetune_{model}.log").read_text()
    assert "resuming training in" in log and "The training was resumed using" in log
    assert " 1epoch results" not in log, "the retry trained epoch 1 again"
    curve = pd.read_csv(run / target)
    assert sorted(curve[curve.phase == "valid"].epoch) == list(range(1, epochs + 1))


def test_paper_jobs_ask_for_gpus_and_data_jobs_for_cpus(tmp_path):
    """What profiles/slurm submits for the paper config: GPU rules `--gpus=1 --cpus-per-gpu=4`, the rest CPUs."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.utils import set_gres_string
    from snakemake_executor_plugin_slurm_jobstep import get_cpu_setting

    archive = tmp_path / "cv-corpus-7.0-2021-07-21-en.tar.gz"
    archive.write_bytes(b"")
    overlay = tmp_path / "archive.yaml"
    overlay.write_text(yaml.safe_dump({"commonvoice": {"archive": str(archive)}}))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(REPO / "configs/paper.yaml"), str(overlay))
    flags = {}
    for rule, res in re.findall(r"^rule (\w+):\n(?:    .*\n)*?    resources: (.*)$", proc.stdout, re.M):
        resources = {k: v for k, v in (kv.split("=", 1) for kv in res.split(", "))}
        resources = {k: int(v) if v.isdigit() else v for k, v in resources.items()}

        class Resources(dict):
            __getattr__ = dict.get

        job = SimpleNamespace(resources=Resources(resources), threads=1)
        gpu = bool(resources.get("gpu"))
        flags.setdefault(rule, set()).add(f"{set_gres_string(job).strip()} {get_cpu_setting(job, gpu)}".strip())
    paper = yaml.safe_load((REPO / "configs/paper.yaml").read_text())
    for rule in ("finetune", "attack", "evaluate", "evaluate_base"):
        assert flags[rule] == {"--gpus=1 --cpus-per-gpu=4"}, (rule, flags[rule])
    for rule in ("prepare_commonvoice", "espnet_data_dir", "collect_stats", "attack_targets"):
        assert all("--gpus" not in f and "--cpus-per-task" in f for f in flags[rule]), (rule, flags[rule])
    assert paper["finetune"]["cpus_per_gpu"] == 4
