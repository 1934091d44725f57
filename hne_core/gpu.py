"""Which GPU(s) a job of a local multi-GPU run uses. Imports nothing heavy: called before torch touches CUDA.

Snakemake's ``--resources gpu=N`` bounds how many GPUs the running jobs ask for together, but on one machine it
does not say which devices a job gets: every job would open ``cuda:0`` and stack on it. ``claim_gpus(n)`` picks
``n`` devices no other job holds, by an exclusive ``flock`` on one lock file per device, held until the process
ends (the kernel releases it when the job exits or is killed, so a crash leaves nothing stale), and sets
``CUDA_VISIBLE_DEVICES`` to them, so that ``cuda`` and ESPnet's ``--ngpu`` see only those. Where something else
already chose (``CUDA_VISIBLE_DEVICES`` set: SLURM does for ``--gpus`` jobs, or the user), or the machine has no
more devices than asked, it does nothing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

_HELD: list[IO] = []  # open lock files: the claim lasts as long as the process


def visible_gpu_count() -> int:
    """Devices ``nvidia-smi -L`` lists (0 without the NVIDIA driver), without initialising CUDA in this process."""
    if shutil.which("nvidia-smi") is None:
        return 0
    try:
        out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=60, check=True).stdout
    except (subprocess.SubprocessError, OSError):
        return 0
    return sum(1 for line in out.splitlines() if line.startswith("GPU "))


def lock_dir() -> Path:
    """One directory for every job of the machine: ``$HNE_GPU_LOCK_DIR`` or ``<tmp>/hne-gpu-locks``."""
    return Path(os.environ.get("HNE_GPU_LOCK_DIR") or Path(tempfile.gettempdir()) / "hne-gpu-locks")


def claim_gpus(
    n: int, count: int | None = None, directory: str | Path | None = None, timeout_s: float = 3600.0
) -> list[int]:
    """Claim ``n`` free devices of ``count`` (default: ``visible_gpu_count()``) for this process and make them its
    ``CUDA_VISIBLE_DEVICES``; returns their indices ([] when nothing was chosen). Waits (polling each second) while
    fewer than ``n`` are free, which happens only when something besides this workflow's Snakemake holds them,
    and fails after ``timeout_s``."""
    if n <= 0 or os.environ.get("CUDA_VISIBLE_DEVICES") is not None:
        return []
    count = visible_gpu_count() if count is None else count
    if count <= n:
        return []
    d = Path(directory) if directory is not None else lock_dir()
    d.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + timeout_s
    while True:
        held: list[tuple[int, IO]] = []
        for i in range(count):
            fh = open(d / f"gpu{i}.lock", "a")
            try:
                fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                fh.close()
                continue
            held.append((i, fh))
            if len(held) == n:
                break
        if len(held) == n:
            _HELD.extend(fh for _, fh in held)
            ids = [i for i, _ in held]
            os.environ["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in ids)
            return ids
        for _, fh in held:  # not enough: let the others go, and wait
            fh.close()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {n} free GPU(s) of {count} in {timeout_s:.0f} s (locks in {d})")
        time.sleep(1.0)
