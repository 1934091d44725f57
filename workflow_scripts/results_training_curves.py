"""Every model's train_curve.csv -> one small-multiples figure of the fine-tuning curves."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from pathlib import Path

import pandas as pd

from hne_core.logs import logged_to
from hne_core.results.figures import training_curves

with logged_to(snakemake.log[0]) as log:
    curves = {Path(f).parent.name: pd.read_csv(f) for f in snakemake.input.curves}  # models/<model>/train_curve.csv
    training_curves(curves, [snakemake.output.png])
    log.info("%d models", len(curves))
