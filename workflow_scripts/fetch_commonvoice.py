"""Unpack a local Common Voice archive, or download it from Mozilla Data Collective -> corpus folder."""
from hne_core.data.commonvoice import download_mdc, extract_archive
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    if snakemake.input.get("archive"):
        extract_archive(snakemake.input.archive, snakemake.output.corpus)
    else:
        download_mdc(snakemake.params.mdc_dataset_id, snakemake.output.corpus)
    log.info("Common Voice ready in %s", snakemake.output.corpus)
