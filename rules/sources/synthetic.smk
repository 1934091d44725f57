# Source synthetic (hne_core.data.sources.synthetic): the seeded plan of the self-made corpus, kept as a file a
# user may edit; the prepare job (synthesize_corpus) speaks it, so editing one sentence re-synthesises only
# what depends on it.


rule synthetic_script:
    output:
        script=data_path("synthetic_script.tsv"),
    log:
        f"{R}/logs/data/synthetic_script.log",
    conda:
        "../../envs/hne.yaml"
    params:
        spec=config["synthetic"],
        seed=config["seed"],
    script:
        "../../workflow_scripts/synthetic_script.py"
