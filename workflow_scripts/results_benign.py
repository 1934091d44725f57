"""Evaluation summaries -> the benign table: WER per model and inference weight, accent accuracy (and each other
auxiliary task's accuracy where a model has other tasks)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.naming import model_id
from hne_core.results.aggregate import read_summary
from hne_core.results.tables import benign_frame, benign_layout, frame_csv, write_grid

with logged_to(snakemake.log[0]) as log:
    # the grid's models named by the weights and tasks their own summaries carry; the base by its input's name
    summaries = [
        {**(s := read_summary(p)), "model": model_id(s["lambda_a"], s["lambda_c_train"], s.get("tasks"))}
        for p in snakemake.input.evals
    ]
    summaries.append({**read_summary(snakemake.input.base), "model": "pretrained"})
    wide, grid = benign_layout(benign_frame(summaries))
    out = snakemake.output
    write_grid(grid, frame_csv(wide), {"csv": out.csv, "md": out.md, "tex": out.tex, "html": out.html})
    log.info("%d models", len(wide))
