"""The paper's tables: rows PGD-N, columns (λA, λC(t), λC(i), tasks) settings, written as CSV, Markdown, LaTeX and
HTML.

The marking follows the rules printed under the paper's tables:
- baseline columns (the STL models; in Table 3 the λC(t)=0.0 model) are marked (gray in the paper);
- a non-baseline cell is highlighted when it beats every baseline of its row ("MTL > STL"; Table 1 has two
  STL baselines and the paper's text counts an MTL column as better only when it beats both). Strictly
  greater: a tie with a baseline is not an improvement. A row with a missing baseline highlights nothing;
- the row maximum is bold; every cell that ties for the maximum is bold.
For AdvTWER higher is more robust. The same layout shows the WER against the references under attack
(``ref_wer``, ``refwer_table``), where lower is more robust: there "beats" means lower and the row minimum is
bold (``lower_is_better``).
Comparisons are made on the values as printed (rounded to ``decimals``), so the marks always agree with what a
reader sees: 97.604 and 97.601 both print 97.60 and are both bold. Values are compared as numbers, never as
text, so 101.04 beats 99.95. Missing cells print as an en dash and are never marked.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hne_core import naming
from hne_core.atomic import write_text_atomic
from hne_core.results.aggregate import Setting, setting_header
from hne_core.results.paper import budget_note

MISSING = "–"
LEGEND = "italic = baseline (gray in the paper); highlighted = beats every baseline of its row; bold = highest in row"
LEGEND_LOWER = (
    "italic = baseline (gray in the paper); highlighted = lower than every baseline of its row; bold = lowest in row"
)
REFWER_SUFFIX = "_refwer"  # results/tables/<table>_refwer.*: the WER-against-references twin of each table


@dataclass(frozen=True)
class Column:
    setting: Setting
    label: str
    baseline: bool = False

    @classmethod
    def of(cls, mapping: Mapping) -> Column:
        return cls(Setting.of(mapping), str(mapping["label"]), bool(mapping.get("baseline", False)))


@dataclass
class Cell:
    text: str
    bold: bool = False
    highlight: bool = False
    baseline: bool = False


@dataclass
class Grid:
    """A table as it is printed: header, rows of cells (the first cell of each row is its label), legend."""

    title: str
    header: list[str]
    rows: list[list[Cell]]
    legend: str = ""
    baseline_columns: set[int] = field(default_factory=set)


# ------------------------------------------------------------------------------------------------ marks
def row_marks(
    values: Sequence[float], baseline: Sequence[bool], decimals: int = 2, lower_is_better: bool = False
) -> tuple[list[bool], list[bool]]:
    """(bold, highlighted) flags of one row, by the rules of the module docstring. With ``lower_is_better`` the
    row is marked as the negated row would be: bold = the minimum, highlighted = strictly below every baseline."""
    sign = -1.0 if lower_is_better else 1.0
    shown = [math.nan if v is None or not math.isfinite(float(v)) else sign * round(float(v), decimals) for v in values]
    finite = [v for v in shown if not math.isnan(v)]
    top = max(finite) if finite else math.nan
    bold = [not math.isnan(v) and v == top for v in shown]
    base = [v for v, b in zip(shown, baseline) if b]
    if not base or any(math.isnan(v) for v in base):
        return bold, [False] * len(shown)
    best_base = max(base)
    highlight = [not b and not math.isnan(v) and v > best_base for v, b in zip(shown, baseline)]
    return bold, highlight


# ------------------------------------------------------------------------------------------------ paper tables
@dataclass
class PaperTable:
    """AdvTWER of a config table's columns at each milestone (NaN where a cell is missing)."""

    name: str
    title: str
    columns: list[Column]
    steps: list[int]
    values: np.ndarray
    decimals: int = 2
    lower_is_better: bool = False

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        table: Mapping,
        steps: Sequence[int],
        value: str = "adv_twer",
        decimals: int = 2,
        lower_is_better: bool = False,
    ) -> PaperTable:
        """Pick the cells of a config table (``name``, ``title``, ``columns``) out of a tidy frame with the
        setting keys, ``steps`` and ``value``."""
        columns = [Column.of(c) for c in table["columns"]]
        lookup = {(Setting.of(r), int(r["steps"])): float(r[value]) for r in frame.to_dict("records")}
        values = np.array([[lookup.get((c.setting, int(s)), math.nan) for c in columns] for s in steps], dtype=float)
        return cls(table["name"], table["title"], columns, [int(s) for s in steps], values, decimals, lower_is_better)

    @property
    def legend(self) -> str:
        return LEGEND_LOWER if self.lower_is_better else LEGEND

    def marks(self) -> tuple[np.ndarray, np.ndarray]:
        baseline = [c.baseline for c in self.columns]
        pairs = [row_marks(list(row), baseline, self.decimals, self.lower_is_better) for row in self.values]
        return np.array([p[0] for p in pairs], dtype=bool), np.array([p[1] for p in pairs], dtype=bool)

    def fmt(self, value: float) -> str:
        return MISSING if not math.isfinite(value) else f"{value:.{self.decimals}f}"

    def grid(self) -> Grid:
        bold, highlight = self.marks()
        header = setting_header(c.setting for c in self.columns)
        settings = [Cell(header)] + [Cell(c.setting.short, baseline=c.baseline) for c in self.columns]
        rows = [settings]
        for i, steps in enumerate(self.steps):
            rows.append(
                [Cell(f"PGD-{steps}")]
                + [
                    Cell(self.fmt(v), bold=bool(bold[i, j]), highlight=bool(highlight[i, j]), baseline=c.baseline)
                    for j, (v, c) in enumerate(zip(self.values[i], self.columns))
                ]
            )
        note = budget_note(self.steps)
        title = f"{self.title} ({note})" if note else self.title
        return Grid(
            title,
            ["steps"] + [c.label for c in self.columns],
            rows,
            self.legend,
            {j + 1 for j, c in enumerate(self.columns) if c.baseline},
        )

    def to_csv(self) -> str:
        """The layout with plain numbers; baseline columns say so in their header, and the marks are spelled
        out in two trailing columns (the labels of the bold and of the highlighted cells, ';'-joined)."""
        bold, highlight = self.marks()
        header = ["steps"] + [f"{c.label} (baseline)" if c.baseline else c.label for c in self.columns]
        frame = pd.DataFrame(
            [
                [f"PGD-{s}"] + ["" if not math.isfinite(v) else f"{v:.{self.decimals}f}" for v in row]
                for s, row in zip(self.steps, self.values)
            ],
            columns=header,
        )
        labels = [c.label for c in self.columns]
        frame["bold"] = [";".join(lab for lab, m in zip(labels, r) if m) for r in bold]
        frame["highlighted"] = [";".join(lab for lab, m in zip(labels, r) if m) for r in highlight]
        return frame.to_csv(index=False, lineterminator="\n")


def refwer_table(frame: pd.DataFrame, table: Mapping, steps: Sequence[int], decimals: int = 2) -> PaperTable:
    """The twin of a paper table: the same columns and milestones, each cell the WER (%) of the attacked
    utterances' hypotheses against their references (``ref_wer`` of advtwer.csv). Lower is more robust (the
    attack destroyed less of the true transcript), so the marks follow the minimum. Named
    ``<table>_refwer``."""
    twin = {
        **table,
        "name": f"{table['name']}{REFWER_SUFFIX}",
        "title": f"WER (%) against the references under attack, columns of {table['name']} "
        f"(lower is more robust); {table['name']}: {table['title']}",
    }
    return PaperTable.from_frame(frame, twin, steps, value="ref_wer", decimals=decimals, lower_is_better=True)


# ------------------------------------------------------------------------------------------------ benign table
def is_stl(lambda_a: float, lambda_c_train: float) -> bool:
    """A single-task model: ASR only (λA = 1) with one head (λC(t) = 0: decoder, 1: CTC)."""
    return lambda_a == 1.0 and lambda_c_train in (0.0, 1.0)


BENIGN_COLUMNS = ["model", "lambda_a", "lambda_c_train", "tasks", "lambda_c_infer", "wer", "accent_acc", "n_utts"]


def _pct(value) -> float:
    return math.nan if value is None else 100.0 * float(value)


def task_columns(summaries: Sequence[Mapping]) -> list[str]:
    """The auxiliary tasks other than the accent whose accuracy some summary reports (``task_acc``), in name order:
    each gets a column of its own, the accent keeps ``accent_acc`` (reported by every model that has its head)."""
    found = {t for s in summaries for t in (s.get("task_acc") or {})}
    return sorted(found - {naming.ACCENT_TASK})


def benign_frame(summaries: Sequence[Mapping]) -> pd.DataFrame:
    """Evaluation summaries (fractions) -> one tidy row per (model, λC(i)) in percent; ``model`` names the
    pre-trained base, whose summary has no λ keys of its own, as 'pretrained'. A model with other tasks than the
    accent alone carries its tasks id and one ``<task>_acc`` column per task of ``task_columns`` (NaN where the
    model has no such head)."""
    extra = task_columns(summaries)
    rows = []
    for s in summaries:
        accs = s.get("task_acc") or {}
        rows.append(
            {
                "model": s.get("model", ""),
                "lambda_a": float(s["lambda_a"]),
                "lambda_c_train": float(s["lambda_c_train"]),
                "tasks": naming.tasks_id(s.get("tasks")),
                "lambda_c_infer": float(s["lambda_c_infer"]),
                "wer": 100.0 * float(s["wer"]),
                "accent_acc": _pct(s.get("accent_acc")),
                "n_utts": int(s["n_utts"]),
                **{f"{t}_acc": _pct(accs.get(t)) for t in extra},
            }
        )
    frame = pd.DataFrame(rows, columns=[*BENIGN_COLUMNS, *(f"{t}_acc" for t in extra)])
    return frame.sort_values(["model", "lambda_c_infer"], ignore_index=True, key=_base_first)


def _base_first(col: pd.Series) -> pd.Series:
    return col.map(lambda m: (m != "pretrained", m)) if col.name == "model" else col


def _accuracy_columns(frame: pd.DataFrame) -> list[str]:
    """``accent_acc`` and the ``<task>_acc`` of every other task ``benign_frame`` found."""
    return ["accent_acc", *(c for c in frame.columns if c.endswith("_acc") and c != "accent_acc")]


def _first_value(part: pd.DataFrame, column: str) -> float:
    """A model's accuracy: the same at every λC(i) (the heads do not decode), so the first one reported."""
    values = part[column].dropna()
    return values.iloc[0] if len(values) else math.nan


def benign_layout(frame: pd.DataFrame, decimals: int = 2) -> tuple[pd.DataFrame, Grid]:
    """Rows: models (the base first); columns: WER at each inference weight, accent accuracy (and each other task's
    accuracy, where some model has other tasks), test utterances. The lowest WER of each column is bold; STL
    models are the baselines."""
    lcis = sorted(frame["lambda_c_infer"].unique())
    wer_cols = [f"WER λC(i)={x:.1f}" for x in lcis]
    acc_cols = _accuracy_columns(frame)
    records = []
    for model, part in frame.groupby("model", sort=False):
        first = part.iloc[0]
        by_lci = dict(zip(part["lambda_c_infer"], part["wer"]))
        records.append(
            {
                "model": model,
                "lambda_a": first["lambda_a"],
                "lambda_c_train": first["lambda_c_train"],
                **{c: by_lci.get(x, math.nan) for c, x in zip(wer_cols, lcis)},
                **{c: _first_value(part, c) for c in acc_cols},
                "n_utts": int(part["n_utts"].max()),
            }
        )
    wide = pd.DataFrame(records)
    lowest = {c: wide[c].round(decimals).min() for c in wer_cols}
    rows = []
    for r in wide.to_dict("records"):
        base = r["model"] != "pretrained" and is_stl(r["lambda_a"], r["lambda_c_train"])
        cells = [Cell(r["model"]), Cell(f"{r['lambda_a']:.1f}"), Cell(f"{r['lambda_c_train']:.1f}")]
        for c in wer_cols:
            v = r[c]
            cells.append(
                Cell(
                    MISSING if not math.isfinite(v) else f"{v:.{decimals}f}",
                    bold=math.isfinite(v) and round(v, decimals) == lowest[c],
                )
            )
        cells += [Cell(MISSING if not math.isfinite(r[c]) else f"{r[c]:.1f}") for c in acc_cols]
        cells.append(Cell(str(r["n_utts"])))
        for cell in cells:
            cell.baseline = base
        rows.append(cells)
    accuracy = "accent accuracy (%)" if len(acc_cols) == 1 else "each auxiliary task's accuracy (%)"
    grid = Grid(
        f"Benign WER (%) of every model on the test split, by inference weight, and {accuracy}",
        ["model", "λA", "λC(t)", *wer_cols, *(f"{c.removesuffix('_acc')} acc." for c in acc_cols), "utterances"],
        rows,
        "italic = STL model; bold = lowest WER of the column; – = not evaluated or no discriminator",
    )
    return wide, grid


# ------------------------------------------------------------------------------------------------ writers
_MD_SPECIAL = str.maketrans({c: "\\" + c for c in "\\|*_`<>[]"})
_TEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "λ": r"$\lambda$",
    "–": "--",
}


def escape_md(text: str) -> str:
    """Markdown table text: characters that would end a cell or start emphasis, a link or HTML are escaped."""
    return str(text).translate(_MD_SPECIAL)


def escape_tex(text: str) -> str:
    return "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))


@dataclass(frozen=True)
class _Marks:
    """How one output format escapes text and wraps a bold, a highlighted and a baseline cell."""

    escape: Callable[[str], str]
    bold: str
    highlight: str
    baseline: str

    def cell(self, c: Cell) -> str:
        text = self.escape(c.text)
        if c.bold:
            text = self.bold.format(text)
        if c.highlight:
            return self.highlight.format(text)
        return self.baseline.format(text) if c.baseline else text

    def header(self, grid: Grid) -> list[str]:
        return [self.cell(Cell(h, baseline=j in grid.baseline_columns)) for j, h in enumerate(grid.header)]


MARKDOWN = _Marks(escape_md, "**{}**", "<mark>{}</mark>", "*{}*")
LATEX = _Marks(escape_tex, r"\textbf{{{}}}", r"\cellcolor{{yellow!35}}{}", r"\cellcolor{{gray!20}}{}")


def to_markdown(grid: Grid) -> str:
    header = MARKDOWN.header(grid)
    lines = [
        f"### {escape_md(grid.title)}",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(MARKDOWN.cell(c) for c in row) + " |" for row in grid.rows]
    if grid.legend:
        lines += ["", escape_md(grid.legend)]
    return "\n".join(lines) + "\n"


def to_latex(grid: Grid) -> str:
    """A ``table`` environment; needs ``\\usepackage[table]{xcolor}`` (for ``\\cellcolor``) in the document."""
    header = LATEX.header(grid)
    lines = [
        r"% needs \usepackage[table]{xcolor}",
        r"\begin{table}[t]",
        r"\centering",
        rf"\caption{{{escape_tex(grid.title)}}}",
        r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}",
        r"\hline",
        " & ".join(header) + r" \\",
        r"\hline",
    ]
    lines += [" & ".join(LATEX.cell(c) for c in row) + r" \\" for row in grid.rows]
    lines += [r"\hline", r"\end{tabular}"]
    if grid.legend:
        legend = grid.legend.replace("italic", "gray")
        lines.append(rf"\par\smallskip{{\footnotesize {escape_tex(legend)}}}")
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_html(grid: Grid) -> str:
    """A standalone page (the HTML report shows it as is): gray baselines, yellow highlights, bold maxima."""

    def cell(c: Cell, tag: str = "td") -> str:
        style = []
        if c.baseline:
            style.append("background:#e6e6e6")
        if c.highlight:
            style.append("background:#fff3a0")
        if c.bold:
            style.append("font-weight:bold")
        attr = f' style="{";".join(style)}"' if style else ""
        return f"<{tag}{attr}>{html.escape(c.text)}</{tag}>"

    head = "".join(cell(Cell(h, baseline=j in grid.baseline_columns), "th") for j, h in enumerate(grid.header))
    body = "\n".join("<tr>" + "".join(cell(c) for c in row) + "</tr>" for row in grid.rows)
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        + html.escape(grid.title)
        + "</title><style>table{border-collapse:collapse;font-family:sans-serif}td,th{padding:3px 8px;"
        "border-bottom:1px solid #ccc;text-align:right}</style></head><body>\n"
        f"<h3>{html.escape(grid.title)}</h3>\n<table>\n<tr>{head}</tr>\n{body}\n</table>\n"
        f"<p><small>{html.escape(grid.legend)}</small></p>\n</body></html>\n"
    )


def write_grid(grid: Grid, csv_text: str, paths: Mapping[str, str | Path]) -> None:
    """Write the formats named in ``paths`` (keys csv, md, tex, html)."""
    writers = {
        "csv": lambda: csv_text,
        "md": lambda: to_markdown(grid),
        "tex": lambda: to_latex(grid),
        "html": lambda: to_html(grid),
    }
    for fmt, path in paths.items():
        write_text_atomic(path, writers[fmt]())


def frame_csv(frame: pd.DataFrame, decimals: int = 2) -> str:
    return frame.to_csv(index=False, float_format=f"%.{decimals}f", lineterminator="\n")
