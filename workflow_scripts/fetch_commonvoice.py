"""Unpack a local Common Voice archive, or one downloaded from Mozilla Data Collective -> corpus folder."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.data.sources.commonvoice import download_mdc, extract_archive
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    archive = snakemake.input.get("archive") or download_mdc(
        snakemake.params.mdc_dataset_id, snakemake.params.download_dir
    )
    extract_archive(archive, snakemake.output.corpus)
    log.info("Common Voice from %s ready in %s", archive, snakemake.output.corpus)
