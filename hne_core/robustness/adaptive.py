"""The adaptive attackers of the robustness checks, and every table cell and finding against the strongest of them.

The paper's attacker differentiates the heads the victim decodes with (Eq. 4 at λC(i)). A white-box attacker also
knows the heads it does not decode with: it may weigh CTC and the decoder with its own λC(a) (CTC as a surrogate
against a decoder-inference victim) and add μ·L_DIS of the accent head (``hne_core.attack.loss.HeadTerm``). The
family of attackers per setting is config ``robustness.adaptive`` (``rules/common.smk``: ``adaptive_family``
keeps the members the model's heads allow); each member runs the attack's own chained milestones.

The worst case of a cell is the member with the lowest AdvTWER at that milestone, the paper's attacker included:
what an attacker who tries them all achieves. Its interval is the bootstrap interval of that member's scores; the
member is chosen on the point values, so with many members the worst case is slightly optimistic for the attacker
(the minimum of noisy numbers), which is the cautious side for a robustness claim.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

import pandas as pd

from hne_core.naming import SETTING_KEYS, attacker_id
from hne_core.results.aggregate import Setting, UtteranceScores, setting_rows
from hne_core.results.tables import Column, escape_md
from hne_core.robustness.verdicts import Estimate, Verdict, adaptive_verdict

PAPER = "paper"  # the paper's attacker: λC(a) = λC(i), μ = 0
ADAPTIVE_COLUMNS = [
    "table",
    "label",
    *SETTING_KEYS,
    "steps",
    "paper_adv_twer",
    "paper_low",
    "paper_high",
    "worst_adv_twer",
    "worst_low",
    "worst_high",
    "worst_attacker",
    "n_attackers",
]

Key = tuple[Setting, int]


def attacker_of(summary: Mapping) -> str:
    """The attacker id of an attack job's summary (a summary without the keys is the paper's attacker)."""
    return attacker_id(summary.get("lambda_c_attack", summary["lambda_c_infer"]), summary.get("mu", 0.0))


def worst_case(
    paper: Mapping[Key, UtteranceScores], adaptive: Mapping[tuple[Setting, int, str], UtteranceScores]
) -> dict[Key, tuple[str, UtteranceScores]]:
    """Per (setting, milestone) of ``paper``: the attacker with the lowest AdvTWER and its scores (``PAPER`` when
    no member beats the paper's attacker; a tie keeps the paper's)."""
    out = {key: (PAPER, scores) for key, scores in paper.items()}
    for (setting, steps, attacker), scores in sorted(adaptive.items()):
        if (setting, steps) not in out:
            raise ValueError(f"an adaptive attack of {setting.short} at PGD-{steps} without the paper's attack")
        if scores.wer < out[(setting, steps)][1].wer:
            out[(setting, steps)] = (attacker, scores)
    return out


def family_sizes(adaptive: Mapping[tuple[Setting, int, str], UtteranceScores]) -> dict[Key, int]:
    sizes: dict[Key, int] = {}
    for setting, steps, _ in adaptive:
        sizes[(setting, steps)] = sizes.get((setting, steps), 0) + 1
    return sizes


def adaptive_frame(
    tables: Sequence[Mapping],
    paper: Mapping[Key, UtteranceScores],
    adaptive: Mapping[tuple[Setting, int, str], UtteranceScores],
    estimate: Callable[[UtteranceScores], Estimate],
) -> pd.DataFrame:
    """Every cell of every table (``ADAPTIVE_COLUMNS``): the paper's attacker and the worst case, each with its
    interval (``estimate``: the run's bootstrap), the attacker of the worst case and how many adaptive attackers
    tried the cell (0: the model has no head the paper's attacker leaves out, or the check left the setting out)."""
    worst, sizes = worst_case(paper, adaptive), family_sizes(adaptive)
    rows = []
    for table in tables:
        for column in (Column.of(c) for c in table["columns"]):
            for setting, steps in sorted(k for k in paper if k[0] == column.setting):
                attacker, scores = worst[(setting, steps)]
                p, w = estimate(paper[(setting, steps)]), estimate(scores)
                rows.append(
                    {
                        "table": table["name"],
                        "label": column.label,
                        **setting.row(),
                        "steps": steps,
                        "paper_adv_twer": p.value,
                        "paper_low": p.low,
                        "paper_high": p.high,
                        "worst_adv_twer": w.value,
                        "worst_low": w.low,
                        "worst_high": w.high,
                        "worst_attacker": attacker,
                        "n_attackers": sizes.get((setting, steps), 0),
                    }
                )
    return pd.DataFrame(rows, columns=ADAPTIVE_COLUMNS)


def adaptive_rows(frame: pd.DataFrame) -> list[tuple[Setting, Verdict]]:
    """The ``adaptive`` check of every setting some adaptive attacker tried, per milestone (each once, however many
    tables show it)."""
    tried = frame[frame["n_attackers"] > 0].drop_duplicates([*SETTING_KEYS, "steps"])
    out = []
    for r in tried.to_dict("records"):
        setting = Setting.of(r)
        paper = Estimate(r["paper_adv_twer"], r["paper_low"], r["paper_high"])
        worst = Estimate(r["worst_adv_twer"], r["worst_low"], r["worst_high"])
        out.append((setting, adaptive_verdict(int(r["steps"]), paper, worst, r["worst_attacker"])))
    return out


def _num(v: float) -> str:
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.2f}"


def adaptive_markdown(table: Mapping, frame: pd.DataFrame, level: float) -> str:
    """One table as the paper prints it (rows: milestones, columns: settings), every cell the worst case over the
    adaptive family beside the paper's attacker."""
    part = frame[frame["table"] == table["name"]]
    columns = [Column.of(c) for c in table["columns"]]
    lines = [
        f"# {escape_md(table['name'])} against the strongest attacker",
        "",
        f"{escape_md(table.get('title', ''))}",
        "",
        f"Each cell: the worst case (lowest AdvTWER, %) over the paper's attacker and the adaptive family "
        f"(robustness.adaptive), its {100 * level:g}% bootstrap interval and the attacker that reached it "
        "(lca<λC(a)>_mu<μ>; paper: λC(a) = λC(i), μ = 0); then the paper's attacker. n: adaptive attackers tried.",
        "",
        "| PGD steps | " + " | ".join(escape_md(f"{c.label} ({c.setting.short})") for c in columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for steps in sorted(part["steps"].unique()):
        cells = []
        for c in columns:
            r = part[setting_rows(part, c.setting) & (part["steps"] == steps)]
            if not len(r):
                cells.append("–")
                continue
            r = r.iloc[0]
            cells.append(
                f"{_num(r['worst_adv_twer'])} [{_num(r['worst_low'])}, {_num(r['worst_high'])}] "
                f"{r['worst_attacker']} · paper {_num(r['paper_adv_twer'])} · n {int(r['n_attackers'])}"
            )
        lines.append(f"| PGD-{int(steps)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def findings_markdown(paper: Sequence, worst: Sequence) -> str:
    """The AdvTWER findings judged with the paper's attacker (``paper``) and again with every cell's worst case
    (``worst``), both ``hne_core.results.compare.FindingResult`` of the same findings in the same order."""
    lines = [
        "",
        "## The findings against the strongest attacker",
        "",
        "Every AdvTWER finding judged again with each cell's worst case over the paper's attacker and the adaptive "
        "family (`robustness.adaptive`; the cells in `<table>_adaptive.md`), by the same paired comparisons.",
        "",
        "| finding | the paper's attacker | the worst case |",
        "|---|---|---|",
    ]
    for p, w in zip(paper, worst, strict=True):
        lines.append(
            f"| {escape_md(p.claim)} | {p.verdict} ({p.n_hold} of {p.n}) | **{w.verdict}** ({w.n_hold} of {w.n}) |"
        )
    return "\n".join(lines) + "\n"
