"""One split of the manifest -> an ESPnet data directory (wav.scp, text, utt2spk, spk2utt, accent, ...)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.data.corpus import read_manifest, write_espnet_dir
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    out = write_espnet_dir(read_manifest(snakemake.input.manifest), snakemake.wildcards.split, snakemake.params.out_dir)
    log.info("wrote %s", out)
