"""Hear No Evil core library: data, models and attacks for the workflow.

Nothing in here reads Snakemake globals: the thin entry points in ``workflow_scripts/`` translate
``snakemake.input/params/output`` into plain arguments, so a notebook can use the same functions.
"""

import os

__version__ = "0.1.0"


def _skip_typeguard_instrumentation() -> None:
    """Make typeguard's ``@typechecked`` a no-op, as ``python -O`` does, before ESPnet is imported.

    Why: ESPnet decorates ~570 functions with ``@typechecked``, and typeguard instruments each one at import time
    by re-reading its source and recompiling it. That alone made ``import espnet2.tasks.asr`` ~2x slower (4.5 s
    against 8-11 s here), paid again by each of the ~100 short jobs of a default run. The checks it adds are
    development aids (typeguard's own docs: "not meant to be run in production"); ``python -O`` would drop them
    too, but would also drop ``assert`` and find no cached bytecode. Set HNE_TYPEGUARD=1 to keep them.
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


_skip_typeguard_instrumentation()
