"""L2 PGD on one (model, λC(i)) up to one milestone, continuing from the previous milestone's δ: targeted at the
lorem-ipsum targets, or (robustness checks) untargeted, ascending the loss of the references."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.gpu import claim_gpus

claim_gpus(snakemake.resources.gpu)  # before CUDA starts: devices of its own on a multi-GPU machine
from hne_core.attack.job import AttackJob, AttackOutputs, AttackSettings, attack_job
from hne_core.logs import logged_to
from hne_core.naming import summary_weights

with logged_to(snakemake.log[0]) as log:
    p, out = snakemake.params, snakemake.output
    utt_ids = open(snakemake.input.utterances, encoding="utf-8").read().split()
    job = AttackJob(
        p.model_dir,
        p.test_dir,
        utt_ids,
        snakemake.input.get("targets"),  # none for an untargeted attack
        p.lambda_c_infer,
        p.steps,
        prev_state=snakemake.input.get("prev_state"),
        model_weights=summary_weights(p.weights),
    )
    summary = attack_job(
        job,
        AttackSettings(**p.settings),
        AttackOutputs(out.csv, out.state, out.summary, p.checkpoint),
        device="cuda" if snakemake.resources.gpu else "cpu",
        threads=snakemake.threads,
    )
    log.info("%s", summary)
