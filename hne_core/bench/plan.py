"""How long ``snakemake -n`` takes to plan the paper-scale grid, and how many jobs the plan holds.

The paper config (``configs/paper.yaml``) reads Common Voice: an empty stand-in archive in a temporary working
directory lets Snakemake plan everything without the corpus (nothing runs; the archive is never opened). The
first repetition also pays Python's imports and Snakemake's source cache; the report gives every repetition.
Last line: ``name=value`` pairs.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def plan_once(snakemake: str, snakefile: Path, configs: list[str], workdir: Path) -> tuple[float, dict[str, int]]:
    cmd = [snakemake, "-s", str(snakefile), "--directory", str(workdir), "-n", "--cores", "1", "--configfile", *configs]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"snakemake -n failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    return seconds, job_counts(proc.stdout + proc.stderr)


def job_counts(text: str) -> dict[str, int]:
    """Rule -> job count from a dry run's 'Job stats' table (total excluded)."""
    counts: dict[str, int] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("job ") and "count" in line:
            inside = True
            continue
        if inside:
            m = re.match(r"^(\S+)\s+(\d+)\s*$", line)
            if m is None:
                continue
            if m.group(1) == "total":
                break
            counts[m.group(1)] = int(m.group(2))
    return counts


def run(args: argparse.Namespace) -> int:
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    with tempfile.TemporaryDirectory(prefix="hne-plan-") as tmp:
        workdir = Path(tmp)
        archive = workdir / "cv-corpus-7.0-2021-07-21-en.tar.gz"
        archive.write_bytes(b"")
        overlay = workdir / "archive.yaml"
        overlay.write_text(f"commonvoice: {{archive: {archive}}}\n")
        configs = [str(REPO / args.config), str(overlay)]
        times, counts = [], {}
        for _ in range(args.repeat):
            seconds, counts = plan_once(snakemake, REPO / "Snakefile", configs, workdir)
            times.append(seconds)
    total = sum(counts.values())
    print(f"planned {args.config} with a stand-in Common Voice archive: {total} jobs")
    for rule, n in sorted(counts.items(), key=lambda kv: -kv[1]):
        print(f"  {rule:24s} {n:5d}")
    print(
        "snakemake -n wall seconds per repetition (process start, imports, parse, DAG, dry-run printout): "
        + ", ".join(f"{t:.2f}" for t in times)
    )
    best = min(times)
    goal = args.goal
    print(
        f"plan_seconds_best={best:.2f} plan_seconds_first={times[0]:.2f} jobs={total} "
        f"goal_seconds={goal:g} within_goal={'yes' if best < goal else 'no'}"
    )
    return 0 if best < goal or not args.strict else 1
