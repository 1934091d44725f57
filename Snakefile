# Hear No Evil: adversarial robustness of multi-task ASR (Das & Chau, Interspeech 2022), as a workflow.
# config -> rules -> workflow_scripts -> hne_core -> files. See README.md.
from snakemake.utils import min_version

min_version("9.0")


# The default config sits beside this file, so `--directory elsewhere` and `--configfile other.yaml`
# (merged on top of it) both work.
configfile: workflow.source_path("config.yaml")


report: "report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    split="|".join(SPLITS),
    model=MODEL_PATTERN,
    lci=r"[0-9.]+",
    steps=r"[0-9]+",


include: "rules/data.smk"
include: "rules/model.smk"
include: "rules/attack.smk"
include: "rules/results.smk"
include: "rules/listen.smk"
include: "rules/robustness.smk"


rule all:
    default_target: True
    input:
        get_final_output(),
