"""Attack and evaluation outputs -> results/tables/advtwer.csv (one row per setting and milestone, bootstrap CI)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.results.aggregate import advtwer_frame, attack_cells, write_frame

with logged_to(snakemake.log[0]) as log:
    i, p = snakemake.input, snakemake.params
    frame = advtwer_frame(attack_cells(i.summaries, i.attacks, i.evals), p.bootstrap_samples, p.ci_level, p.seed)
    write_frame(frame, snakemake.output.csv)
    log.info(
        "%d cells, %d utterances each, %d bootstrap resamples", len(frame), frame["n_utts"].max(), p.bootstrap_samples
    )
