# Attacks: targeted L2 PGD per (model, λC(i)), one job per milestone, each continuing from the previous one.


rule attack_targets:
    input:
        bpe=TOKENIZER["bpe"],
        tokens=TOKENIZER["tokens"],
        accent=data_path("test", "accent"),
    output:
        targets=f"{R}/attacks/targets.txt",
        utterances=f"{R}/attacks/utterances.txt",
    log:
        f"{R}/logs/attacks/attack_targets.log",
    conda:
        "../envs/hne.yaml"
    params:
        n_targets=config["attack"]["n_targets"],
        n_utterances=config["attack"]["n_utterances"],
        composition=config["attack"]["composition"],
        seed=config["seed"],
        text_case=config["data"]["text_case"],
    script:
        "../workflow_scripts/attack_targets.py"


ATTACK_DIR = attack_dir(R, "{model}", "{lci}", "{steps}")


rule attack:
    input:
        unpack(previous_milestone_state),
        model=multiext(f"{R}/models/{{model}}/", *EXPORT_FILES),
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
        targets=f"{R}/attacks/targets.txt",
        utterances=f"{R}/attacks/utterances.txt",
    output:
        csv=f"{ATTACK_DIR}/utterances.csv",
        summary=f"{ATTACK_DIR}/summary.json",
        state=f"{ATTACK_DIR}/state.npz",
    log:
        f"{R}/logs/attacks/{{model}}_infer{{lci}}_pgd{{steps}}.log",
    benchmark:
        f"{R}/benchmarks/attacks/{{model}}_infer{{lci}}_pgd{{steps}}.tsv"
    conda:
        "../envs/hne.yaml"
    threads: config["attack"]["threads"]
    resources:
        **job_resources("attack"),
    params:
        model_dir=input_dir("model"),
        test_dir=input_dir("test"),
        weights=lambda wc: model_weights(wc.model),
        lambda_c_infer=lambda wc: float(wc.lci),
        steps=lambda wc: int(wc.steps),
        settings=attack_settings(),
        # in-job checkpoint: not an output, so a killed job's progress survives for --rerun-incomplete
        checkpoint=lambda wc: attack_checkpoint(R, wc.model, wc.lci, wc.steps),
    script:
        "../workflow_scripts/attack.py"
