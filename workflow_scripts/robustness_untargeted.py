"""Untargeted L2 PGD (ascending the loss of the references) to one milestone, chained (robustness check)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.robustness.untargeted import untargeted_job

with logged_to(snakemake.log[0]) as log:
    p = snakemake.params
    utt_ids = open(snakemake.input.utterances, encoding="utf-8").read().split()
    summary = untargeted_job(
        p.model_dir,
        p.test_dir,
        utt_ids,
        p.lambda_c_infer,
        {"lambda_a": p.weights["lambda_a"], "lambda_c_train": p.weights["lambda_c"]},
        p.epsilon,
        p.step_size,
        p.steps,
        snakemake.input.get("prev_state"),
        p.clip,
        p.engine,
        p.batch_size,
        p.checkpoint,
        snakemake.output.csv,
        snakemake.output.state,
        snakemake.output.summary,
        text_case=p.text_case,
        checkpoint_every=p.checkpoint_every,
        on_nan=p.on_nan,
        label_smoothing=p.label_smoothing,
        decoding=p.decoding,
        batch_samples=p.batch_samples,
        autocast=p.autocast,
        device="cuda" if snakemake.resources.gpu else "cpu",
        threads=snakemake.threads,
    )
    log.info("%s", summary)
