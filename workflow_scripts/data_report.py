"""manifest.tsv + dropped.tsv -> the data report (markdown + JSON; with each task's labels per split and class) and
the accent class index."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
import pandas as pd

from hne_core.data.corpus import read_manifest, write_accent_classes, write_report
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    manifest = read_manifest(snakemake.input.manifest)
    dropped = pd.read_csv(snakemake.input.dropped, sep="\t", dtype=str, keep_default_na=False)
    p = snakemake.params
    summary = write_report(manifest, dropped, p.title, snakemake.output.md, snakemake.output.json, tasks=p.tasks)
    write_accent_classes(snakemake.params.classes, snakemake.output.classes)
    log.info("%d utterances, %d dropped", summary["total_utterances"], summary["total_dropped"])
    for task, info in summary["tasks"].items():
        log.info("%s labels per split: %s", task, info["splits"])
