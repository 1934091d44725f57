"""Parallel map for the data stage's per-file work.

Threads, not processes: the heavy lifting happens in child programs (espeak-ng, ffmpeg) and in C code that
releases the GIL (resampling, WAV encoding), so threads keep the cores busy. Processes would be worse here:
``spawn`` re-imports the calling module, which for a Snakemake ``script:`` reruns the whole script in every
worker, and ``fork`` from a process that already runs torch/BLAS threads can deadlock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def parallel_map(fn: Callable[[T], R], jobs: Iterable[T], workers: int) -> Iterator[R]:
    """``map(fn, jobs)`` on ``workers`` threads, results in job order; the first exception propagates."""
    workers = max(1, int(workers))
    if workers == 1:
        yield from map(fn, jobs)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(fn, jobs)
