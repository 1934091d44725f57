# Is the robustness real? Transfer of final perturbations between the models of a table, an ε budget
# sweep, a random-noise floor and an untargeted attack, then one aggregate job with every verdict. Planned only
# when robustness.enabled (configs/robustness.yaml); see docs/robustness.md.
# Its helpers (pairs, seeds, sources and victims, outputs) are in rules/common.smk, section "robustness".


rule robustness_transfer:
    input:
        unpack(transfer_sources),
        model=multiext(f"{R}/models/{{model}}/", *EXPORT_FILES),
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
        utterances=f"{R}/attacks/utterances.txt",
    output:
        csv=transfer_file(R, "{model}", "{lci}"),
    log:
        f"{R}/logs/robustness/transfer_{{model}}_infer{{lci}}.log",
    benchmark:
        f"{R}/benchmarks/robustness/transfer_{{model}}_infer{{lci}}.tsv"
    conda:
        "../envs/hne.yaml"
    threads: ROB["threads"]
    resources:
        **job_resources("robustness"),
    params:
        model_dir=input_dir("model"),
        test_dir=input_dir("test"),
        weights=lambda wc: model_weights(wc.model),
        lambda_c_infer=lambda wc: float(wc.lci),
        epsilon=config["attack"]["epsilon"],
        clip=config["attack"]["clip"],
        decoding=config["decoding"]["mode"],
        text_case=config["data"]["text_case"],
    script:
        "../workflow_scripts/robustness_transfer.py"


SWEEP_DIR = sweep_dir(R, "{scale}", "{model}", "{lci}", "{steps}")


rule robustness_sweep:
    input:
        model=multiext(f"{R}/models/{{model}}/", *EXPORT_FILES),
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
        targets=f"{R}/attacks/targets.txt",
        utterances=f"{R}/attacks/utterances.txt",
    output:
        csv=f"{SWEEP_DIR}/utterances.csv",
        summary=f"{SWEEP_DIR}/summary.json",
        state=f"{SWEEP_DIR}/state.npz",
    log:
        f"{R}/logs/robustness/sweep_eps{{scale}}_{{model}}_infer{{lci}}_pgd{{steps}}.log",
    benchmark:
        f"{R}/benchmarks/robustness/sweep_eps{{scale}}_{{model}}_infer{{lci}}_pgd{{steps}}.tsv"
    wildcard_constraints:
        scale=r"[0-9.]+",
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
        settings=lambda wc: attack_settings(
            eps=float(wc.scale) * config["attack"]["epsilon"],
            step_size=float(wc.scale) * config["attack"]["step_size"],
        ),
        checkpoint=lambda wc: f"{sweep_dir(R, wc.scale, wc.model, wc.lci, wc.steps)}.checkpoint",
    script:
        "../workflow_scripts/attack.py"  # the attack job itself, with its ε and α


rule robustness_noise:
    input:
        model=multiext(f"{R}/models/{{model}}/", *EXPORT_FILES),
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
        targets=f"{R}/attacks/targets.txt",
        utterances=f"{R}/attacks/utterances.txt",
        state=f"{attack_dir(R, '{model}', '{lci}', LAST)}/state.npz",
    output:
        csv=f"{noise_dir(R, '{model}', '{lci}')}/utterances.csv",
        summary=f"{noise_dir(R, '{model}', '{lci}')}/summary.json",
    log:
        f"{R}/logs/robustness/noise_{{model}}_infer{{lci}}.log",
    benchmark:
        f"{R}/benchmarks/robustness/noise_{{model}}_infer{{lci}}.tsv"
    conda:
        "../envs/hne.yaml"
    threads: ROB["threads"]
    resources:
        **job_resources("robustness"),
    params:
        model_dir=input_dir("model"),
        test_dir=input_dir("test"),
        weights=lambda wc: model_weights(wc.model),
        lambda_c_infer=lambda wc: float(wc.lci),
        draws=ROB["noise_draws"],
        seed=config["seed"],
        clip=config["attack"]["clip"],
        target_length=config["attack"]["target_length"],
        decoding=config["decoding"]["mode"],
        text_case=config["data"]["text_case"],
    script:
        "../workflow_scripts/robustness_noise.py"


UNTARGETED_DIR = untargeted_dir(R, "{model}", "{lci}", "{steps}")


rule robustness_untargeted:
    input:
        unpack(previous_untargeted_state),
        model=multiext(f"{R}/models/{{model}}/", *EXPORT_FILES),
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
        utterances=f"{R}/attacks/utterances.txt",
    output:
        csv=f"{UNTARGETED_DIR}/utterances.csv",
        summary=f"{UNTARGETED_DIR}/summary.json",
        state=f"{UNTARGETED_DIR}/state.npz",
    log:
        f"{R}/logs/robustness/untargeted_{{model}}_infer{{lci}}_pgd{{steps}}.log",
    benchmark:
        f"{R}/benchmarks/robustness/untargeted_{{model}}_infer{{lci}}_pgd{{steps}}.tsv"
    conda:
        "../envs/hne.yaml"
    threads: config["attack"]["threads"]
    resources:
        **job_resources("attack"),
    params:  # the attack rule's, ascending the loss of the references (no targets file)
        model_dir=input_dir("model"),
        test_dir=input_dir("test"),
        weights=lambda wc: model_weights(wc.model),
        lambda_c_infer=lambda wc: float(wc.lci),
        steps=lambda wc: int(wc.steps),
        settings=attack_settings(targeted=False),
        checkpoint=lambda wc: f"{untargeted_dir(R, wc.model, wc.lci, wc.steps)}.checkpoint",
    script:
        "../workflow_scripts/attack.py"  # the attack job itself, untargeted


ADAPTIVE_DIR = adaptive_dir(R, "{attacker}", "{model}", "{lci}", "{steps}")


rule robustness_adaptive:
    input:
        unpack(previous_adaptive_state),
        model=multiext(f"{R}/models/{{model}}/", *EXPORT_FILES),  # the discriminator is in the mtl_* files
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
        targets=f"{R}/attacks/targets.txt",
        utterances=f"{R}/attacks/utterances.txt",
    output:
        csv=f"{ADAPTIVE_DIR}/utterances.csv",
        summary=f"{ADAPTIVE_DIR}/summary.json",
        state=f"{ADAPTIVE_DIR}/state.npz",
    log:
        f"{R}/logs/robustness/adaptive_{{attacker}}_{{model}}_infer{{lci}}_pgd{{steps}}.log",
    benchmark:
        f"{R}/benchmarks/robustness/adaptive_{{attacker}}_{{model}}_infer{{lci}}_pgd{{steps}}.tsv"
    wildcard_constraints:
        attacker=ATTACKER_PATTERN,
    conda:
        "../envs/hne.yaml"
    threads: config["attack"]["threads"]
    resources:
        **job_resources("attack"),
    params:  # the attack rule's, with the attacker's own λC(a) and μ; the victim decodes at λC(i)
        model_dir=input_dir("model"),
        test_dir=input_dir("test"),
        weights=lambda wc: model_weights(wc.model),
        lambda_c_infer=lambda wc: float(wc.lci),
        steps=lambda wc: int(wc.steps),
        settings=lambda wc: attack_settings(
            lambda_c_attack=parse_attacker(wc.attacker)[0], mu=parse_attacker(wc.attacker)[1]
        ),
        checkpoint=lambda wc: f"{adaptive_dir(R, wc.attacker, wc.model, wc.lci, wc.steps)}.checkpoint",
    script:
        "../workflow_scripts/attack.py"


rule robustness_seed_finetune:
    input:
        base=expand("{dir}/{f}", dir=pretrained_dir(), f=PRETRAINED_FILES),
        stats=multiext(f"{R}/stats/train/", *STATS_FILES),
        valid_stats=multiext(f"{R}/stats/valid/", *STATS_FILES),
        train=expand(data_path("train", "{f}"), f=ESPNET_FILES),
        dev=expand(data_path("dev", "{f}"), f=ESPNET_FILES),
        labels=lambda wc: task_label_files("train", wc.model) + task_label_files("dev", wc.model),
    output:
        model=multiext(f"{seed_model_dir(R, '{seed}', '{model}')}/", *EXPORT_FILES),
        curve=f"{seed_model_dir(R, '{seed}', '{model}')}/train_curve.csv",
        plot=f"{seed_model_dir(R, '{seed}', '{model}')}/train_curve.png",
    log:
        f"{R}/logs/robustness/finetune_seed{{seed}}_{{model}}.log",
    benchmark:
        f"{R}/benchmarks/robustness/finetune_seed{{seed}}_{{model}}.tsv"
    wildcard_constraints:
        seed=r"[0-9]+",
    conda:
        "../envs/hne.yaml"
    threads: config["finetune"]["threads"]
    resources:
        **job_resources("finetune"),
    params:  # the fine-tuning rule's, but the seed (which also draws the training subset)
        weights=lambda wc: model_weights(wc.model),
        num_accents=len(accent_classes()),
        tasks=lambda wc: task_spec(wc.model),
        discriminator=config["discriminator"],
        train=trainer_settings("finetune"),
        seed=lambda wc: int(wc.seed),
        base_dir=input_dir("base"),
        train_dir=input_dir("train"),
        dev_dir=input_dir("dev"),
        stats_dir=input_dir("stats", up=2),
        exp_dir=lambda wc: f"{seed_dir(R, wc.seed)}/training/{wc.model}",
        out_dir=output_dir("curve"),
    script:
        "../workflow_scripts/finetune.py"


SEED_ATTACK_DIR = seed_attack_dir(R, "{seed}", "{model}", "{lci}", "{steps}")


rule robustness_seed_attack:
    input:
        model=multiext(f"{seed_model_dir(R, '{seed}', '{model}')}/", *EXPORT_FILES),
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
        targets=f"{R}/attacks/targets.txt",
        utterances=f"{R}/attacks/utterances.txt",
    output:
        csv=f"{SEED_ATTACK_DIR}/utterances.csv",
        summary=f"{SEED_ATTACK_DIR}/summary.json",
        state=f"{SEED_ATTACK_DIR}/state.npz",
    log:
        f"{R}/logs/robustness/attack_seed{{seed}}_{{model}}_infer{{lci}}_pgd{{steps}}.log",
    benchmark:
        f"{R}/benchmarks/robustness/attack_seed{{seed}}_{{model}}_infer{{lci}}_pgd{{steps}}.tsv"
    wildcard_constraints:
        seed=r"[0-9]+",
    conda:
        "../envs/hne.yaml"
    threads: config["attack"]["threads"]
    resources:
        **job_resources("attack"),
    params:  # the attack rule's, straight to the milestone (no chain: only the last one is judged)
        model_dir=input_dir("model"),
        test_dir=input_dir("test"),
        weights=lambda wc: model_weights(wc.model),
        lambda_c_infer=lambda wc: float(wc.lci),
        steps=lambda wc: int(wc.steps),
        settings=attack_settings(),
        checkpoint=lambda wc: f"{seed_attack_dir(R, wc.seed, wc.model, wc.lci, wc.steps)}.checkpoint",
    script:
        "../workflow_scripts/attack.py"


rule robustness_report:
    input:
        attack_summaries=[f"{attack_dir(R, m, l, k)}/summary.json" for m, l in table_pairs() for k in MILESTONES],
        attack_csvs=[f"{attack_dir(R, m, l, k)}/utterances.csv" for m, l in table_pairs() for k in MILESTONES],
        transfer=[transfer_file(R, m, l) for m, l in transfer_victims()],
        sweep_summaries=[
            f"{sweep_dir(R, s, m, l, LAST)}/summary.json" for s in SWEEP_SCALES for m, l in ROBUSTNESS_PAIRS
        ],
        sweep_csvs=[f"{sweep_dir(R, s, m, l, LAST)}/utterances.csv" for s in SWEEP_SCALES for m, l in ROBUSTNESS_PAIRS],
        noise=[f"{noise_dir(R, m, l)}/utterances.csv" for m, l in ROBUSTNESS_PAIRS],
        untargeted_summaries=[
            f"{untargeted_dir(R, m, l, k)}/summary.json" for m, l in ROBUSTNESS_PAIRS for k in MILESTONES
        ],
        untargeted_csvs=[
            f"{untargeted_dir(R, m, l, k)}/utterances.csv" for m, l in ROBUSTNESS_PAIRS for k in MILESTONES
        ],
        seed_summaries=[
            f"{seed_attack_dir(R, s, m, l, LAST)}/summary.json" for s in ROB["seeds"] for m, l in SEED_PAIRS
        ],
        seed_csvs=[f"{seed_attack_dir(R, s, m, l, LAST)}/utterances.csv" for s in ROB["seeds"] for m, l in SEED_PAIRS],
        adaptive_summaries=adaptive_files("summary.json"),
        adaptive_csvs=adaptive_files("utterances.csv"),
    output:
        csv=report(
            results_path("tables", "robustness_checks.csv"),
            caption="../report/robustness.rst",
            category="Results",
            subcategory="Robustness checks",
        ),
        md=results_path("tables", "robustness_checks.md"),
        seeds=results_path("tables", "robustness_seeds.csv"),  # AdvTWER per retrained setting and seed
        sweep_png=report(
            results_path("figures", "budget_sweep.png"),
            caption="../report/robustness.rst",
            category="Results",
            subcategory="Robustness checks",
        ),
        transfer_png=report(
            results_path("figures", "transfer.png"),
            caption="../report/robustness.rst",
            category="Results",
            subcategory="Robustness checks",
        ),
        matrices=[results_path("tables", f"transfer_{n}.{ext}") for n in robustness_tables() for ext in ("csv", "md")],
        adaptive=[
            results_path("tables", f"{t['name']}_adaptive.{ext}") for t in config["tables"] for ext in ("csv", "md")
        ],
    log:
        f"{R}/logs/results/robustness.log",
    benchmark:
        f"{R}/benchmarks/results/robustness.tsv"
    conda:
        "../envs/hne.yaml"
    resources:
        mem_mb=config["results"]["mem_mb"],
        runtime=config["results"]["runtime"],
    params:
        tables=config["tables"],
        settings=[setting_text(m, l) for m, l in ROBUSTNESS_PAIRS],
        scales=ROB["epsilon_scales"],
        epsilon=config["attack"]["epsilon"],
        step_size=config["attack"]["step_size"],
        steps=MILESTONES,
        sweep_floor=ROB["sweep_floor"],
        noise_margin=ROB["noise_margin"],
        noise_draws=ROB["noise_draws"],
        run_seed=config["seed"],
        matrix_tables=robustness_tables(),
        bootstrap_samples=config["results"]["bootstrap_samples"],
        ci_level=config["results"]["ci_level"],
        seed=config["seed"],
    script:
        "../workflow_scripts/robustness_report.py"
