"""Attack milestones (stored δ) and the clean test clips -> SNR, PESQ (wide band) and STOI of every attacked
utterance (tables/perceptual_utterances.csv) and their medians per table column and milestone (tables/perceptual.*)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.results.perceptual import (
    column_labels,
    median_frame,
    milestones,
    utterance_frame,
    write_table,
    write_utterances,
)

with logged_to(snakemake.log[0]) as log:
    i, p, out = snakemake.input, snakemake.params, snakemake.output
    utts = utterance_frame(milestones(i.summaries, i.states, i.attacks), p.test_dir, threads=snakemake.threads)
    for row in utts[(utts.pesq_error != "") | (utts.stoi_error != "")].itertuples():
        log.warning("not scored, NaN: %s at PGD-%d: %s %s", row.utt_id, row.steps, row.pesq_error, row.stoi_error)
    write_utterances(utts, out.utterances)
    frame = median_frame(utts)
    write_table(
        frame, column_labels(p.tables), p.steps, {"csv": out.csv, "md": out.md, "tex": out.tex, "html": out.html}
    )
    log.info(
        "%d utterances scored over %d milestones; PESQ refused %d, STOI %d",
        len(utts),
        len(frame),
        int(utts.pesq_wb.isna().sum()),
        int(utts.stoi.isna().sum()),
    )
