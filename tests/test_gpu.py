"""hne_core.gpu: jobs of a local multi-GPU run get devices of their own (real flock locks, real processes)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from hne_core.gpu import claim_gpus


def holder(directory, count: int, n: int, hold_s: float) -> subprocess.Popen:
    """Another job: claims ``n`` of ``count`` devices, prints them, holds them for ``hold_s`` seconds."""
    code = textwrap.dedent(f"""
        import os, sys, time
        os.environ.pop("CUDA_VISIBLE_DEVICES", None)
        from hne_core.gpu import claim_gpus
        print(claim_gpus({n}, count={count}, directory={str(directory)!r}, timeout_s=0), flush=True)
        time.sleep({hold_s})
    """)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)


def test_jobs_get_distinct_devices_and_a_dead_job_frees_its_own(tmp_path, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    a = holder(tmp_path, 3, 1, 60)
    assert a.stdout.readline().strip() == "[0]"
    b = holder(tmp_path, 3, 1, 60)
    assert b.stdout.readline().strip() == "[1]"
    try:
        assert claim_gpus(1, count=3, directory=tmp_path, timeout_s=0) == [2]
        assert os.environ["CUDA_VISIBLE_DEVICES"] == "2"
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
        with pytest.raises(TimeoutError, match="no 1 free GPU"):  # all three held
            claim_gpus(1, count=3, directory=tmp_path, timeout_s=0)
        a.kill()
        a.wait()
        assert claim_gpus(1, count=3, directory=tmp_path, timeout_s=5) == [0]  # the kernel released a's lock
    finally:
        for p in (a, b):
            p.kill()
            p.wait()


def test_nothing_is_chosen_where_something_else_chose(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3")  # SLURM's --gpus, or the user
    assert claim_gpus(1, count=4, directory=tmp_path) == [] and os.environ["CUDA_VISIBLE_DEVICES"] == "3"
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert claim_gpus(0, count=4, directory=tmp_path) == []  # a CPU job
    assert claim_gpus(1, count=1, directory=tmp_path) == []  # one device: nothing to choose
    assert "CUDA_VISIBLE_DEVICES" not in os.environ
