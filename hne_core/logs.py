"""Send a job's output to its Snakemake log file, so every rule's log holds its warnings and errors."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import traceback
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def logged_to(path: str | Path | None) -> Iterator[logging.Logger]:
    """Redirect stdout, stderr and ``logging`` to ``path`` for the block; an exception is logged, then re-raised
    (Snakemake shows the log of a failed job). Inside a SLURM job the log opens with the SLURM job id."""
    if not path:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
        yield logging.getLogger("hne")
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "w", encoding="utf-8", buffering=1) as fh,
        contextlib.redirect_stdout(fh),
        contextlib.redirect_stderr(fh),
    ):
        handler = logging.StreamHandler(fh)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        log = logging.getLogger("hne")
        if os.environ.get("SLURM_JOB_ID"):  # a cluster job: say which one, so its log can be matched to SLURM's
            log.info(
                "SLURM job %s (partition %s) on %s",
                os.environ["SLURM_JOB_ID"],
                os.environ.get("SLURM_JOB_PARTITION", "?"),
                socket.gethostname(),
            )
        try:
            yield log
        except BaseException:
            traceback.print_exc(file=fh)
            raise
        finally:
            root.removeHandler(handler)
