"""The configured data source's prepare job (hne_core.data.sources) -> WAVs, manifest.tsv, dropped.tsv."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.data import sources
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    p = snakemake.params
    out = sources.Outputs(
        manifest=snakemake.output.manifest, dropped=snakemake.output.dropped, wavs=snakemake.output.wavs
    )
    inputs = {k: v for k, v in snakemake.input.items()}
    line = sources.get(p.source).prepare(p.settings, inputs, out, threads=snakemake.threads, **p.data)
    log.info("%s", line)
