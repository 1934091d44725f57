"""Hear No Evil core library: data, models and attacks for the workflow.

Nothing in here reads Snakemake globals: the thin entry points in ``workflow_scripts/`` translate
``snakemake.input/params/output`` into plain arguments, so a notebook can use the same functions.
"""

__version__ = "0.1.0"
