"""Benign greedy decoding (Eq. 2) of the test split by one (model, λC(i)): hypotheses, WER, accent accuracy."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.gpu import claim_gpus

claim_gpus(snakemake.resources.gpu)  # before CUDA starts: devices of its own on a multi-GPU machine
import json

from hne_core.atomic import write_text_atomic
from hne_core.data.corpus import write_tsv
from hne_core.logs import logged_to
from hne_core.model.train import set_threads
from hne_core.naming import summary_weights

with logged_to(snakemake.log[0]) as log:
    set_threads(snakemake.threads)
    from hne_core.model.evaluate import EvalSettings, evaluate

    p = snakemake.params
    settings = EvalSettings(p.text_case, p.n_utterances, p.seed, p.composition, p.decoding, p.decoding_batch_size)
    device = "cuda" if snakemake.resources.gpu else "cpu"
    frame, summary = evaluate(p.model_dir, p.test_dir, p.lambda_c_infer, settings, device)
    summary = {**summary_weights(p.weights), **summary}
    write_tsv(frame, snakemake.output.hyps)
    write_text_atomic(snakemake.output.summary, json.dumps(summary, indent=2) + "\n")
    log.info("%s", summary)
