"""Download the pinned pre-trained ESPnet2 model, verify its sha256, unpack it into a fixed layout."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.pretrained import fetch_pretrained

with logged_to(snakemake.log[0]):
    fetch_pretrained(snakemake.params.url, snakemake.params.sha256, snakemake.params.cache, snakemake.params.out_dir)
