"""The last milestone's attacks of every table column -> results/listen/index.html (players, spectrograms, texts,
SNR / PESQ / STOI of a seeded handful of utterances)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.atomic import write_text_atomic
from hne_core.logs import logged_to
from hne_core.results.aggregate import read_summary
from hne_core.results.listen import choose_utterances, listen_page, read_column
from hne_core.results.paper import budget_note
from hne_core.results.perceptual import column_labels, milestones, read_clean, read_utterances

with logged_to(snakemake.log[0]) as log:
    i, p = snakemake.input, snakemake.params
    labels = column_labels(p.tables)
    by_setting = {m.setting: m for m in milestones(i.summaries, i.states, i.attacks)}
    columns = [read_column(s, label, by_setting[s].state, by_setting[s].csv) for s, label in labels.items()]
    attacked = columns[0].rows["utt_id"].tolist()
    chosen = choose_utterances(attacked, p.n_utterances, p.seed)
    page = listen_page(
        columns,
        read_clean(p.test_dir, chosen),
        read_utterances(i.perceptual),
        chosen,
        n_attacked=len(attacked),
        steps=p.steps[-1],
        epsilon=float(read_summary(i.summaries[0])["eps"]),
        gain_db=float(p.delta_gain_db),
        seed=p.seed,
        note=budget_note(p.steps),
    )
    write_text_atomic(snakemake.output.html, page)
    log.info(
        "%s: %d utterances x %d columns, %.1f MB", snakemake.output.html, len(chosen), len(columns), len(page) / 1e6
    )
