"""Lorem-ipsum target transcriptions (seeded, checked against the token set) and the attacked utterances."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.atomic import write_text_atomic
from hne_core.attack.targets import check_spellable, make_targets, select_utterances, write_targets
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    p = snakemake.params
    targets = make_targets(p.n_targets, p.seed, p.text_case)
    token_list = open(snakemake.input.tokens, encoding="utf-8").read().split()
    for target in targets:
        check_spellable(target, token_list, snakemake.input.bpe)
    write_targets(snakemake.output.targets, targets)
    utts = select_utterances(snakemake.input.accent, p.n_utterances, p.seed, p.composition)
    write_text_atomic(snakemake.output.utterances, "".join(f"{u}\n" for u in utts))
    log.info("%d targets, %d attacked utterances", len(targets), len(utts))
