"""Plan every utterance of the self-made corpus (seeded) -> synthetic_script.tsv."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.data.corpus import write_tsv
from hne_core.data.sources.synthetic import SyntheticSpec, build_script
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    spec = SyntheticSpec.from_config(snakemake.params.spec, seed=snakemake.params.seed)
    script = build_script(spec)
    write_tsv(script, snakemake.output.script)
    log.info("planned %d utterances", len(script))
