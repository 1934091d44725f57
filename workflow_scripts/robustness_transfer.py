"""Every other column's final δ of the victim's tables, decoded by the victim (robustness check: transfer)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.naming import summary_weights
from hne_core.results.aggregate import read_summary, sibling
from hne_core.robustness.transfer import transfer_job
from hne_core.robustness.victim import Victim

with logged_to(snakemake.log[0]) as log:
    i, p = snakemake.input, snakemake.params
    utt_ids = open(i.utterances, encoding="utf-8").read().split()
    sources = [(read_summary(f), sibling(f, "state.npz", i.states)) for f in i.summaries]
    weights = summary_weights(p.weights)  # λA, λC(t) and the tasks id of a model with other tasks
    victim = Victim(p.model_dir, p.test_dir, utt_ids, p.lambda_c_infer, weights, p.text_case, p.decoding)
    frame = transfer_job(
        victim,
        sources,
        snakemake.output.csv,
        eps=p.epsilon,
        clip=p.clip,
        device="cuda" if snakemake.resources.gpu else "cpu",
        threads=snakemake.threads,
    )
    log.info("%d rows from %d sources", len(frame), len(sources))
