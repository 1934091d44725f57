# Models: the pre-trained base (downloaded or pre-trained here), per-(λA, λC) fine-tuning, benign evaluation.


rule collect_stats:
    input:
        train=multiext(data_path("train/"), "wav.scp", "text"),
        dev=multiext(data_path("dev/"), "wav.scp", "text"),
        bpe=TOKENIZER["bpe"],
        tokens=TOKENIZER["tokens"],
    output:
        train=multiext(f"{R}/stats/train/", *STATS_FILES),
        valid=multiext(f"{R}/stats/valid/", *STATS_FILES),
    log:
        f"{R}/logs/model/collect_stats.log",
    benchmark:
        f"{R}/benchmarks/model/collect_stats.tsv"
    conda:
        "../envs/hne.yaml"
    threads: config["pretrain"]["threads"]
    resources:
        mem_mb=config["pretrain"]["mem_mb"],
        runtime=30,
    params:
        model=config["model"],
        pretrain=trainer_settings("pretrain"),
        train_dir=input_dir("train"),
        dev_dir=input_dir("dev"),
        out_dir=output_dir("train", up=2),
    script:
        "../workflow_scripts/collect_stats.py"


if config["pretrained"]["source"] == "zenodo":

    rule fetch_pretrained:
        output:
            expand("{dir}/{f}", dir=pretrained_dir(), f=PRETRAINED_FILES),
        log:
            f"{R}/logs/model/fetch_pretrained.log",
        conda:
            "../envs/hne.yaml"
        params:
            url=config["pretrained"]["url"],
            sha256=config["pretrained"]["sha256"],
            cache=f"{RES}/model_zoo_cache",
            out_dir=pretrained_dir(),
        script:
            "../workflow_scripts/fetch_pretrained.py"

else:

    rule pretrain:
        input:
            stats=multiext(f"{R}/stats/train/", *STATS_FILES),
            valid_stats=multiext(f"{R}/stats/valid/", *STATS_FILES),
            train=expand(data_path("train", "{f}"), f=ESPNET_FILES),
            dev=expand(data_path("dev", "{f}"), f=ESPNET_FILES),
            bpe=TOKENIZER["bpe"],
            tokens=TOKENIZER["tokens"],
        output:
            expand("{dir}/{f}", dir=pretrained_dir(), f=PRETRAINED_FILES),
            curve=f"{pretrained_dir()}/train_curve.csv",
        log:
            f"{R}/logs/model/pretrain.log",
        benchmark:
            f"{R}/benchmarks/model/pretrain.tsv"
        conda:
            "../envs/hne.yaml"
        threads: config["pretrain"]["threads"]
        resources:
            **job_resources("pretrain"),
        params:
            model=config["model"],
            train=trainer_settings("pretrain"),
            seed=config["seed"],
            train_dir=input_dir("train"),
            dev_dir=input_dir("dev"),
            stats_dir=input_dir("stats", up=2),
            exp_dir=f"{R}/training/pretrain",
            out_dir=output_dir("curve"),
        script:
            "../workflow_scripts/pretrain.py"


rule finetune:
    input:
        base=expand("{dir}/{f}", dir=pretrained_dir(), f=PRETRAINED_FILES),
        stats=multiext(f"{R}/stats/train/", *STATS_FILES),
        valid_stats=multiext(f"{R}/stats/valid/", *STATS_FILES),
        train=expand(data_path("train", "{f}"), f=ESPNET_FILES),
        dev=expand(data_path("dev", "{f}"), f=ESPNET_FILES),
        labels=lambda wc: task_label_files("train", wc.model) + task_label_files("dev", wc.model),
    output:
        model=multiext(f"{R}/models/{{model}}/", *EXPORT_FILES),
        curve=f"{R}/models/{{model}}/train_curve.csv",
        plot=f"{R}/models/{{model}}/train_curve.png",
    log:
        f"{R}/logs/model/finetune_{{model}}.log",
    benchmark:
        f"{R}/benchmarks/model/finetune_{{model}}.tsv"
    conda:
        "../envs/hne.yaml"
    threads: config["finetune"]["threads"]
    resources:
        **job_resources("finetune"),
    params:
        weights=lambda wc: model_weights(wc.model),
        num_accents=len(accent_classes()),
        tasks=lambda wc: task_spec(wc.model),
        discriminator=config["discriminator"],
        train=trainer_settings("finetune"),
        seed=config["seed"],
        base_dir=input_dir("base"),
        train_dir=input_dir("train"),
        dev_dir=input_dir("dev"),
        stats_dir=input_dir("stats", up=2),
        exp_dir=lambda wc: f"{R}/training/{wc.model}",
        out_dir=output_dir("curve"),
    script:
        "../workflow_scripts/finetune.py"


rule evaluate:
    input:
        model=multiext(f"{R}/models/{{model}}/", *EXPORT_FILES),
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
        labels=lambda wc: task_label_files("test", wc.model),
    output:
        hyps=f"{eval_dir(R, '{model}', '{lci}')}/hypotheses.tsv",
        summary=f"{eval_dir(R, '{model}', '{lci}')}/summary.json",
    log:
        f"{R}/logs/eval/{{model}}_infer{{lci}}.log",
    benchmark:
        f"{R}/benchmarks/eval/{{model}}_infer{{lci}}.tsv"
    conda:
        "../envs/hne.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        **job_resources("evaluation"),
    params:
        weights=lambda wc: model_weights(wc.model),
        lambda_c_infer=lambda wc: float(wc.lci),
        model_dir=input_dir("model"),
        test_dir=input_dir("test"),
        n_utterances=config["evaluation"]["n_utterances"],
        composition=config["evaluation"]["composition"],
        decoding=config["decoding"]["mode"],
        decoding_batch_size=config["decoding"]["batch_size"],
        seed=config["seed"],
        text_case=config["data"]["text_case"],
    script:
        "../workflow_scripts/evaluate.py"


rule evaluate_base:
    input:
        model=expand("{dir}/{f}", dir=pretrained_dir(), f=["config.yaml", "model.pth", "bpe.model", "tokens.txt"]),
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
    output:
        hyps=f"{eval_dir(R, 'pretrained', '{lci}')}/hypotheses.tsv",
        summary=f"{eval_dir(R, 'pretrained', '{lci}')}/summary.json",
    log:
        f"{R}/logs/eval/pretrained_infer{{lci}}.log",
    conda:
        "../envs/hne.yaml"
    threads: config["evaluation"]["threads"]
    resources:
        **job_resources("evaluation"),
    params:
        weights={"lambda_a": 1.0, "lambda_c": config["model"]["ctc_weight"]},
        lambda_c_infer=lambda wc: float(wc.lci),
        model_dir=input_dir("model"),
        test_dir=input_dir("test"),
        n_utterances=config["evaluation"]["n_utterances"],
        composition=config["evaluation"]["composition"],
        decoding=config["decoding"]["mode"],
        decoding_batch_size=config["decoding"]["batch_size"],
        seed=config["seed"],
        text_case=config["data"]["text_case"],
    script:
        "../workflow_scripts/evaluate.py"
