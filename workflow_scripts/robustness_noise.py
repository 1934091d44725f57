"""Random perturbations at the attack's final norms, decoded by the model (robustness check: noise floor)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.robustness.noise import noise_job

with logged_to(snakemake.log[0]) as log:
    i, p = snakemake.input, snakemake.params
    utt_ids = open(i.utterances, encoding="utf-8").read().split()
    summary = noise_job(
        p.model_dir,
        p.test_dir,
        utt_ids,
        p.lambda_c_infer,
        {"lambda_a": p.weights["lambda_a"], "lambda_c_train": p.weights["lambda_c"]},
        i.state,
        i.targets,
        p.draws,
        p.seed,
        snakemake.output.csv,
        snakemake.output.summary,
        clip=p.clip,
        text_case=p.text_case,
        target_length=p.target_length,
        decoding=p.decoding,
        device="cuda" if snakemake.resources.gpu else "cpu",
        threads=snakemake.threads,
    )
    log.info("%s", summary)
