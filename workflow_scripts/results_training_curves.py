"""Every model's train_curve.csv -> one small-multiples figure of the fine-tuning curves."""
from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
import pandas as pd

from hne_core.logs import logged_to
from hne_core.results.figures import training_curves

with logged_to(snakemake.log[0]) as log:
    curves = {m: pd.read_csv(f) for m, f in zip(snakemake.params.models, snakemake.input.curves, strict=True)}
    training_curves(curves, [snakemake.output.png])
    log.info("%d models", len(curves))
