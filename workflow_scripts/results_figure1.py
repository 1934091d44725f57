"""advtwer.csv -> Figure 1 (PNG and PDF): AdvTWER against PGD steps for config `figure1.series`."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.results.aggregate import read_advtwer
from hne_core.results.figures import figure1
from hne_core.results.paper import load_paper_results

with logged_to(snakemake.log[0]) as log:
    p = snakemake.params
    figure1(
        read_advtwer(snakemake.input.advtwer),
        p.series,
        p.steps,
        [snakemake.output.png, snakemake.output.pdf],
        p.overlay_paper,
        load_paper_results(snakemake.input.paper),
    )
    log.info("%d series over milestones %s", len(p.series), p.steps)
