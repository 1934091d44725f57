"""What a job's entry point calls first, before anything imports ESPnet. Nothing here runs on import."""

from __future__ import annotations

import os


def skip_typeguard_instrumentation() -> None:
    """Make typeguard's ``@typechecked`` a no-op for this process, as ``python -O`` does; call before ESPnet loads.

    Why: ESPnet decorates ~570 functions with ``@typechecked``, and typeguard instruments each one at import time
    by re-reading its source and recompiling it. That alone made ``import espnet2.tasks.asr`` ~2x slower (4.5 s
    against 8-11 s), paid again by each of the ~100 short jobs of a default run. The checks it adds are
    development aids (typeguard's own docs: "not meant to be run in production"); ``python -O`` would drop them
    too, but would also drop ``assert`` and find no cached bytecode. A process-wide effect, hence an explicit
    call in the entry points (``workflow_scripts/``, ``python -m hne_core.bench``), never an import side effect.
    Set HNE_TYPEGUARD=1 to keep the checks.
    """
    if os.environ.get("HNE_TYPEGUARD", "0") == "1":
        return
    try:
        import typeguard
    except ImportError:  # ESPnet not installed: nothing to speed up
        return

    def typechecked(target=None, **_options):
        return (lambda t: t) if target is None else target

    typeguard.typechecked = typechecked
