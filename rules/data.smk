# Data stage: the configured source (data.source; hne_core.data.sources) -> manifest.tsv + dropped.tsv -> ESPnet
# data directories per split, a data report, and the tokenizer.


# Jobs a source needs before its prepare job (a plan to edit, a download), when it needs any.
if os.path.isfile(os.path.join(workflow.basedir, "rules", "sources", f"{DATA_SOURCE}.smk")):

    include: f"sources/{DATA_SOURCE}.smk"


# One prepare rule for every source, named as the source says (synthesize_corpus, prepare_commonvoice,
# prepare_folder): its inputs and settings come from the source (common.smk: source_inputs, source_params).
rule prepare_data:
    name:
        SOURCE.RULE
    input:
        unpack(source_inputs),
    output:
        manifest=data_path("manifest.tsv"),
        dropped=data_path("dropped.tsv"),
        wavs=directory(data_path("wav")),
    log:
        f"{R}/logs/data/{SOURCE.RULE}.log",
    benchmark:
        f"{R}/benchmarks/data/{SOURCE.RULE}.tsv"
    conda:
        "../envs/hne.yaml"
    threads: config["data"]["threads"]
    params:
        **source_params(),
    script:
        "../workflow_scripts/prepare_data.py"


rule espnet_data_dir:
    input:
        manifest=data_path("manifest.tsv"),
    output:
        multiext(data_path("{split}/"), *ESPNET_FILES),
    log:
        f"{R}/logs/data/espnet_data_dir_{{split}}.log",
    conda:
        "../envs/hne.yaml"
    params:
        out_dir=lambda wc, output: os.path.dirname(output[0]),
    script:
        "../workflow_scripts/espnet_data_dir.py"


# The labels of an auxiliary task other than accent (config `tasks`), for the models that train it: class indices
# in the order of tasks.<task>.classes, -1 where the manifest has no label.
rule task_labels:
    input:
        manifest=data_path("manifest.tsv"),
    output:
        data_path("{split}", "labels_{task}"),
    log:
        f"{R}/logs/data/task_labels_{{split}}_{{task}}.log",
    benchmark:
        f"{R}/benchmarks/data/task_labels_{{split}}_{{task}}.tsv"
    wildcard_constraints:
        task="|".join(config["tasks"]) or "(?!)",
    conda:
        "../envs/hne.yaml"
    params:
        classes=lambda wc: task_classes(wc.task),
    script:
        "../workflow_scripts/task_labels.py"


rule data_report:
    input:
        manifest=data_path("manifest.tsv"),
        dropped=data_path("dropped.tsv"),
    output:
        md=report(data_path("report.md"), caption="../report/data.rst", category="Data"),
        json=data_path("report.json"),
        classes=data_path("accent_classes.txt"),
    log:
        f"{R}/logs/data/data_report.log",
    conda:
        "../envs/hne.yaml"
    params:
        title=f"{DATA_SOURCE} corpus",
        classes=accent_classes(),
        tasks=config["tasks"],
    script:
        "../workflow_scripts/data_report.py"


if config["tokenizer"]["source"] == "train":

    rule train_tokenizer:
        input:
            text=data_path("train", "text"),
        output:
            bpe=TOKENIZER["bpe"],
            tokens=TOKENIZER["tokens"],
        log:
            f"{R}/logs/tokenizer/train_tokenizer.log",
        conda:
            "../envs/hne.yaml"
        params:
            model_type=config["tokenizer"]["model_type"],
            vocab_size=config["tokenizer"]["vocab_size"],
        script:
            "../workflow_scripts/train_tokenizer.py"

else:

    rule pretrained_tokenizer:
        input:
            bpe=f"{pretrained_dir()}/bpe.model",
            tokens=f"{pretrained_dir()}/tokens.txt",
        output:
            bpe=TOKENIZER["bpe"],
            tokens=TOKENIZER["tokens"],
        log:
            f"{R}/logs/tokenizer/pretrained_tokenizer.log",
        conda:
            "../envs/hne.yaml"
        script:
            "../workflow_scripts/pretrained_tokenizer.py"


rule tokenizer_coverage:
    input:
        bpe=TOKENIZER["bpe"],
        tokens=TOKENIZER["tokens"],
        texts=expand(data_path("{split}", "text"), split=SPLITS),
    output:
        coverage=f"{R}/tokenizer/coverage.json",
    log:
        f"{R}/logs/tokenizer/tokenizer_coverage.log",
    conda:
        "../envs/hne.yaml"
    script:
        "../workflow_scripts/tokenizer_coverage.py"
