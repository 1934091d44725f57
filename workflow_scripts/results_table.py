"""advtwer.csv -> one of the paper's tables (config `tables:`) as CSV, Markdown, LaTeX and HTML, and its twin of
WER against the references under attack (`<table>_refwer.*`, the same layout, lower marked better)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.results.aggregate import read_advtwer
from hne_core.results.tables import PaperTable, refwer_table, write_grid

with logged_to(snakemake.log[0]) as log:
    p, out = snakemake.params, snakemake.output
    frame = read_advtwer(snakemake.input.advtwer)
    table = PaperTable.from_frame(frame, p.table, p.steps)
    write_grid(table.grid(), table.to_csv(), {"csv": out.csv, "md": out.md, "tex": out.tex, "html": out.html})
    twin = refwer_table(frame, p.table, p.steps)
    write_grid(
        twin.grid(),
        twin.to_csv(),
        {"csv": out.refwer_csv, "md": out.refwer_md, "tex": out.refwer_tex, "html": out.refwer_html},
    )
    log.info("%s and %s: %d rows x %d columns", table.name, twin.name, len(table.steps), len(table.columns))
