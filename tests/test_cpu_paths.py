"""The float equivalences (tests marked ``numeric``) rerun under CPU code paths other than this machine's own.

A tolerance read off one machine's output would pass where it was written and fail on a CPU with another vector
width (AVX-512 against AVX2, Intel against AMD), where torch, MKL, oneDNN and OpenBLAS take other kernels and sum in
another order. Each of those libraries lets an environment variable cap the instruction set it dispatches to, so a
machine can run the code paths of older or other CPUs: a bound that is derived from the arithmetic holds on all of
them. Each run checks first that torch really took the forced path.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO

CODE_PATHS = {
    # torch's own kernels (ATen), MKL's BLAS, oneDNN's convolutions and numpy's OpenBLAS, each capped
    "avx2": (
        {
            "ATEN_CPU_CAPABILITY": "avx2",
            "MKL_CBWR": "AVX2",
            "ONEDNN_MAX_CPU_ISA": "AVX2",
            "OPENBLAS_CORETYPE": "Haswell",
        },
        "AVX2",
    ),
    "sse": (
        {
            "ATEN_CPU_CAPABILITY": "default",
            "MKL_CBWR": "COMPATIBLE",
            "ONEDNN_MAX_CPU_ISA": "SSE41",
            "OPENBLAS_CORETYPE": "Prescott",
        },
        "DEFAULT",
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("path", sorted(CODE_PATHS))
def test_numeric_equivalences_hold_under_a_forced_cpu_code_path(path):
    forced, capability = CODE_PATHS[path]
    env = {**os.environ, **forced}
    probe = subprocess.run(
        [sys.executable, "-c", "import torch; print(torch.backends.cpu.get_cpu_capability())"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert probe.stdout.strip() == capability, probe.stderr[-2000:]
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "numeric and not slow", "-p", "no:cacheprovider"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert run.returncode == 0, f"numeric tests under {forced}:\n{run.stdout[-6000:]}\n{run.stderr[-2000:]}"
    assert " passed" in run.stdout.splitlines()[-1]
