"""The paper's published numbers, kept as data (``paper_results.csv``) and matched to this run's cells.

``paper_results.csv`` is transcribed from Das & Chau (Interspeech 2022): every AdvTWER cell of Tables 1-3
(metric ``adv_twer``, one row per table and cell, so the STL decoder's column appears in Tables 1 and 2 with the
same numbers) and the three benign WERs given in section 5 (metric ``benign_wer``, no steps): STL CTC 20.85,
STL decoder 16.62, λA=0.8/λC(t)=0.0 15.86.

A run whose PGD milestones differ from the paper's 500/1000/1500/2000 (the CPU default runs 50-200) is matched
by position: our i-th milestone against the paper's i-th. That compares attack budgets of the same rank, not of
the same size, and every output that uses the mapping says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from hne_core.results.aggregate import Setting

PAPER_RESULTS = Path(__file__).with_name("paper_results.csv")
PAPER_STEPS = (500, 1000, 1500, 2000)


def load_paper_results(path: str | Path = PAPER_RESULTS) -> pd.DataFrame:
    frame = pd.read_csv(path)
    frame["steps"] = frame["steps"].astype("Int64")
    return frame


def milestone_map(ours: Sequence[int], paper: Sequence[int] = PAPER_STEPS) -> dict[int, int]:
    """Our milestone -> the paper's milestone of the same position (identity where they agree); milestones
    beyond the paper's last have no counterpart."""
    return {int(o): int(p) for o, p in zip(ours, paper)}


def budget_note(ours: Sequence[int], paper: Sequence[int] = PAPER_STEPS) -> str:
    """A warning for every output of a run that attacks with other milestones than the paper's (a quick look at
    the pipeline, ``configs/quick.yaml``); empty for the paper's own budget."""
    if tuple(int(s) for s in ours) == tuple(paper):
        return ""
    return (
        f"NOT the paper's attack budget: PGD milestones {'/'.join(str(int(s)) for s in ours)} "
        f"(the paper's: {'/'.join(str(p) for p in paper)})"
    )


def describe_mapping(ours: Sequence[int], paper: Sequence[int] = PAPER_STEPS) -> str:
    """One sentence for captions and the comparison: how our milestones meet the paper's."""
    mapping = milestone_map(ours, paper)
    if all(o == p for o, p in mapping.items()) and len(ours) == len(paper):
        return "The milestones are the paper's own."
    pairs = ", ".join(f"{o} ↔ PGD-{p}" for o, p in mapping.items())
    extra = [o for o in ours if int(o) not in mapping]
    note = f"; our {extra} have no counterpart" if extra else ""
    return (
        f"This run's milestones differ from the paper's; they are matched by position ({pairs}{note}), "
        "i.e. attack budgets of the same rank, not the same size."
    )


def paper_adv_twer(ours: Sequence[int], paper: pd.DataFrame | None = None) -> dict[tuple[Setting, int], float]:
    """The paper's AdvTWER keyed by (setting, our milestone), through ``milestone_map``."""
    paper = load_paper_results() if paper is None else paper
    back = {p: o for o, p in milestone_map(ours).items()}
    rows = paper[paper["metric"] == "adv_twer"]
    return {
        (Setting.of(r), back[int(r["steps"])]): float(r["value"])
        for r in rows.to_dict("records")
        if int(r["steps"]) in back
    }


def paper_benign_wer(paper: pd.DataFrame | None = None) -> dict[Setting, float]:
    paper = load_paper_results() if paper is None else paper
    rows = paper[paper["metric"] == "benign_wer"]
    return {Setting.of(r): float(r["value"]) for r in rows.to_dict("records")}
