# How the attacks sound: SNR, PESQ (wide band) and STOI of every attacked utterance with their medians per table
# column and milestone, and one self-contained page to hear and see a seeded handful. Light jobs, no GPU.


rule results_perceptual:
    input:
        states=attack_files("state.npz"),
        attacks=attack_files("utterances.csv"),
        summaries=attack_files("summary.json"),
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
    output:
        csv=report(
            results_path("tables", f"{PERCEPTUAL_TABLE}.csv"),
            caption="../report/perceptual.rst",
            category="Results",
            subcategory="Tables",
        ),
        md=results_path("tables", f"{PERCEPTUAL_TABLE}.md"),
        tex=results_path("tables", f"{PERCEPTUAL_TABLE}.tex"),
        html=report(
            results_path("tables", f"{PERCEPTUAL_TABLE}.html"),
            caption="../report/perceptual.rst",
            category="Results",
            subcategory="Tables",
        ),
        utterances=results_path("tables", f"{PERCEPTUAL_UTTERANCES}.csv"),
    log:
        f"{R}/logs/results/perceptual.log",
    benchmark:
        f"{R}/benchmarks/results/perceptual.tsv"
    conda:
        "../envs/hne.yaml"
    threads: config["perceptual"]["threads"]
    resources:
        mem_mb=config["perceptual"]["mem_mb"],
        runtime=config["perceptual"]["runtime"],
    params:
        test_dir=input_dir("test"),
        tables=config["tables"],
        steps=MILESTONES,
    script:
        "../workflow_scripts/results_perceptual.py"


rule listen_page:
    input:
        states=last_milestone_files("state.npz"),
        attacks=last_milestone_files("utterances.csv"),
        summaries=last_milestone_files("summary.json"),
        perceptual=results_path("tables", f"{PERCEPTUAL_UTTERANCES}.csv"),
        test=expand(data_path("test", "{f}"), f=ESPNET_FILES),
    output:
        html=report(
            LISTEN_PAGE,
            caption="../report/listen.rst",
            category="Results",
            subcategory="Listen to the attacks",
        ),
    log:
        f"{R}/logs/results/listen.log",
    benchmark:
        f"{R}/benchmarks/results/listen.tsv"
    conda:
        "../envs/hne.yaml"
    resources:
        mem_mb=config["listen"]["mem_mb"],
        runtime=config["listen"]["runtime"],
    params:
        test_dir=input_dir("test"),
        tables=config["tables"],
        steps=MILESTONES,
        n_utterances=config["listen"]["n_utterances"],
        delta_gain_db=config["listen"]["delta_gain_db"],
        seed=config["seed"],
    script:
        "../workflow_scripts/listen_page.py"
