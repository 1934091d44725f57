"""Random perturbations at the attack's final norms, decoded by the model (robustness check: noise floor)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.naming import summary_weights
from hne_core.robustness.noise import NoiseDraws, noise_job
from hne_core.robustness.victim import Victim

with logged_to(snakemake.log[0]) as log:
    i, p = snakemake.input, snakemake.params
    utt_ids = open(i.utterances, encoding="utf-8").read().split()
    weights = summary_weights(p.weights)  # λA, λC(t) and the tasks id of a model with other tasks
    victim = Victim(p.model_dir, p.test_dir, utt_ids, p.lambda_c_infer, weights, p.text_case, p.decoding)
    summary = noise_job(
        victim,
        i.state,
        i.targets,
        NoiseDraws(p.draws, p.seed, p.clip, p.target_length),
        snakemake.output.csv,
        snakemake.output.summary,
        device="cuda" if snakemake.resources.gpu else "cpu",
        threads=snakemake.threads,
    )
    log.info("%s", summary)
