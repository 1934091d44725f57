"""The attack with ε and α scaled (robustness check: budget sweep): the attack job itself, other ε and α."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.attack.job import AttackOutputs, AttackSettings, attack_job
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    p, out = snakemake.params, snakemake.output
    utt_ids = open(snakemake.input.utterances, encoding="utf-8").read().split()
    summary = attack_job(
        p.model_dir,
        p.test_dir,
        utt_ids,
        snakemake.input.targets,
        p.lambda_c_infer,
        p.steps,
        AttackSettings(**p.settings),
        AttackOutputs(out.csv, out.state, out.summary, p.checkpoint),
        device="cuda" if snakemake.resources.gpu else "cpu",
        threads=snakemake.threads,
        model_weights={"lambda_a": p.weights["lambda_a"], "lambda_c_train": p.weights["lambda_c"]},
    )
    log.info("%s", summary)
