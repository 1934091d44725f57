# Data stage: one source (synthetic or Common Voice) -> manifest.tsv + dropped.tsv -> ESPnet data
# directories per split, a data report, and the tokenizer.

if DATA_SOURCE == "synthetic":

    rule synthetic_script:
        output:
            script=data_path("synthetic_script.tsv"),
        log:
            f"{R}/logs/data/synthetic_script.log",
        params:
            spec=config["synthetic"],
            seed=config["seed"],
        conda:
            "../envs/hne.yaml"
        script:
            "../workflow_scripts/synthetic_script.py"

    rule synthesize_corpus:
        input:
            script=data_path("synthetic_script.tsv"),
        output:
            manifest=data_path("manifest.tsv"),
            dropped=data_path("dropped.tsv"),
            wavs=directory(data_path("wav")),
        log:
            f"{R}/logs/data/synthesize_corpus.log",
        benchmark:
            f"{R}/benchmarks/data/synthesize_corpus.tsv"
        params:
            text_case=config["data"]["text_case"],
            min_samples=config["data"]["min_samples"],
        threads: config["data"]["threads"]
        conda:
            "../envs/hne.yaml"
        script:
            "../workflow_scripts/synthesize_corpus.py"

else:

    if not commonvoice_is_folder():

        rule fetch_commonvoice:
            input:
                archive=config["commonvoice"]["archive"] or [],
            output:
                corpus=directory(f"{RES}/commonvoice/corpus"),
            log:
                f"{R}/logs/data/fetch_commonvoice.log",
            params:
                mdc_dataset_id=config["commonvoice"]["mdc_dataset_id"],
                download_dir=f"{RES}/commonvoice/download",
            conda:
                "../envs/hne.yaml"
            script:
                "../workflow_scripts/fetch_commonvoice.py"

    rule prepare_commonvoice:
        input:
            unpack(commonvoice_input),
        output:
            manifest=data_path("manifest.tsv"),
            dropped=data_path("dropped.tsv"),
            wavs=directory(data_path("wav")),
        log:
            f"{R}/logs/data/prepare_commonvoice.log",
        benchmark:
            f"{R}/benchmarks/data/prepare_commonvoice.tsv"
        params:
            root=config["commonvoice"]["archive"] if commonvoice_is_folder() else f"{RES}/commonvoice/corpus",
            classes=config["commonvoice"]["classes"],
            multi_accent=config["commonvoice"]["multi_accent"],
            subsample=config["commonvoice"]["subsample"],
            seed=config["seed"],
            on_bad_row=config["data"]["on_bad_row"],
            text_case=config["data"]["text_case"],
            min_samples=config["data"]["min_samples"],
        threads: config["data"]["threads"]
        conda:
            "../envs/hne.yaml"
        script:
            "../workflow_scripts/prepare_commonvoice.py"


rule espnet_data_dir:
    input:
        manifest=data_path("manifest.tsv"),
    output:
        multiext(data_path("{split}/"), *ESPNET_FILES),
    log:
        f"{R}/logs/data/espnet_data_dir_{{split}}.log",
    params:
        out_dir=lambda wc, output: os.path.dirname(output[0]),
    conda:
        "../envs/hne.yaml"
    script:
        "../workflow_scripts/espnet_data_dir.py"


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
    params:
        title=f"{DATA_SOURCE} corpus",
        classes=accent_classes(),
    conda:
        "../envs/hne.yaml"
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
        params:
            model_type=config["tokenizer"]["model_type"],
            vocab_size=config["tokenizer"]["vocab_size"],
        conda:
            "../envs/hne.yaml"
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
