"""Results: the tidy AdvTWER frame with bootstrap intervals, the paper's tables, Figure 1 and the comparison
with the published numbers. Plain pandas/numpy in and files out, usable without Snakemake."""
