"""One split's labels of one auxiliary task (``labels_<task>`` beside the ESPnet files) from the manifest."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.data.corpus import write_task_labels
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    w = snakemake.wildcards
    counts = write_task_labels(snakemake.input.manifest, w.split, w.task, snakemake.params.classes, snakemake.output[0])
    log.info("%s labels of %s: %s", w.task, w.split, counts)
