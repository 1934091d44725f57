"""Speak the planned corpus with espeak-ng, in parallel -> WAVs, manifest.tsv, dropped.tsv."""
from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.data.corpus import validate_manifest, write_tsv
from hne_core.data.synthetic import read_script, synthesize
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    script = read_script(snakemake.input.script)
    manifest, drops = synthesize(script, snakemake.output.wavs, processes=snakemake.threads,
                                 text_case=snakemake.params.text_case, min_samples=snakemake.params.min_samples)
    validate_manifest(manifest, snakemake.input.script)
    write_tsv(drops.frame(), snakemake.output.dropped)
    write_tsv(manifest, snakemake.output.manifest)
    log.info("synthesized %d utterances with %d processes", len(manifest), snakemake.threads)
