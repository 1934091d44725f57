"""Targeted L2 PGD on one (model, λC(i)) up to one milestone, continuing from the previous milestone's δ."""
from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.gpu import claim_gpus

claim_gpus(snakemake.resources.gpu)  # before CUDA starts: devices of its own on a multi-GPU machine
from hne_core.attack.job import attack_job
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    p = snakemake.params
    utt_ids = open(snakemake.input.utterances, encoding="utf-8").read().split()
    summary = attack_job(
        p.model_dir, p.test_dir, utt_ids, snakemake.input.targets, p.lambda_c_infer, p.epsilon, p.step_size,
        p.steps, snakemake.input.get("prev_state"), p.clip, p.engine,
        "cuda" if snakemake.resources.gpu else "cpu", p.batch_size, p.checkpoint,
        snakemake.output.csv, snakemake.output.state, snakemake.output.summary,
        text_case=p.text_case, checkpoint_every=p.checkpoint_every, on_nan=p.on_nan, threads=snakemake.threads,
        target_length=p.target_length, label_smoothing=p.label_smoothing, decoding=p.decoding,
        decoding_batch_size=p.decoding_batch_size,
        batch_samples=p.batch_samples, autocast=p.autocast,
        model_weights={"lambda_a": p.weights["lambda_a"], "lambda_c_train": p.weights["lambda_c"]})
    log.info("%s", summary)
