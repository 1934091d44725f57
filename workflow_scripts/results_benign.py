"""Evaluation summaries -> the benign table: WER per model and inference weight, accent accuracy."""
from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
import json

from hne_core.logs import logged_to
from hne_core.results.tables import benign_frame, benign_layout, frame_csv, write_grid

with logged_to(snakemake.log[0]) as log:
    paths = [*snakemake.input.evals, snakemake.input.base]
    names = [*snakemake.params.models, "pretrained"]
    summaries = [{**json.loads(open(p, encoding="utf-8").read()), "model": m} for p, m in zip(paths, names, strict=True)]
    wide, grid = benign_layout(benign_frame(summaries))
    out = snakemake.output
    write_grid(grid, frame_csv(wide), {"csv": out.csv, "md": out.md, "tex": out.tex, "html": out.html})
    log.info("%d models", len(wide))
