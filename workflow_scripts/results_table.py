"""advtwer.csv -> one of the paper's tables (config `tables:`) as CSV, Markdown, LaTeX and HTML."""
from hne_core.logs import logged_to
from hne_core.results.aggregate import read_advtwer
from hne_core.results.tables import PaperTable, write_grid

with logged_to(snakemake.log[0]) as log:
    table = PaperTable.from_frame(read_advtwer(snakemake.input.advtwer), snakemake.params.table,
                                  snakemake.params.steps)
    out = snakemake.output
    write_grid(table.grid(), table.to_csv(), {"csv": out.csv, "md": out.md, "tex": out.tex, "html": out.html})
    log.info("%s: %d rows x %d columns", table.name, len(table.steps), len(table.columns))
