"""Figure 1 (AdvTWER against PGD steps for the config's ``figure1.series``) and the training curves of every model.

The bands are the bootstrap intervals of ``advtwer.csv``, not seaborn's own error estimate (seaborn would need
per-utterance AdvTWERs, and AdvTWER is a corpus rate). Baselines are drawn gray, as the paper draws its STL
baselines. The paper's published curves can be overlaid dashed, in the same colour as ours; when this run's
milestones differ from the paper's they are drawn at our milestones by position (``paper.milestone_map``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from hne_core.atomic import atomic_path
from hne_core.results.aggregate import Setting
from hne_core.results.paper import budget_note, milestone_map, paper_adv_twer
from hne_core.results.tables import Column


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, paths: Sequence[str | Path]) -> None:
    for path in paths:
        fmt = Path(path).suffix.lstrip(".")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=fmt, dpi=150, bbox_inches="tight")


def series_label(col: Column) -> str:
    """'MTL (λA=0.7, λC(t)=0.0, λC(i)=0.0)', with the tasks after the λs for a model with other tasks."""
    return f"{col.label} ({col.setting.spelled})"


def figure1(
    frame: pd.DataFrame,
    series: Sequence[Mapping],
    steps: Sequence[int],
    paths: Sequence[str | Path],
    overlay_paper: bool = False,
    paper: pd.DataFrame | None = None,
) -> None:
    """AdvTWER (with its bootstrap band) against PGD steps, one line per series; baselines gray."""
    import seaborn as sns

    plt = _pyplot()
    sns.set_theme(style="whitegrid", context="paper")
    columns = [Column.of(s) for s in series]
    palette = iter(sns.color_palette("colorblind", n_colors=max(1, sum(not c.baseline for c in columns))))
    grays = iter(["0.35", "0.6", "0.2", "0.75"])
    markers = iter("os^Dvp<>hX*")
    published = paper_adv_twer(steps, paper) if overlay_paper else {}
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for col in columns:
        rows = frame[[Setting.of(r) == col.setting for r in frame.to_dict("records")]].sort_values("steps")
        color = next(grays) if col.baseline else next(palette)
        line = {"linestyle": "-", "linewidth": 1.8, "color": color, "marker": next(markers)}
        sns.lineplot(x=rows["steps"], y=rows["adv_twer"], ax=ax, label=series_label(col), **line)
        ax.fill_between(
            rows["steps"], rows["adv_twer_ci_low"], rows["adv_twer_ci_high"], color=color, alpha=0.15, linewidth=0
        )
        theirs = [(s, published[(col.setting, s)]) for s in steps if (col.setting, s) in published]
        if theirs:
            ax.plot(*zip(*theirs), linestyle="--", linewidth=1.2, color=color, alpha=0.8)
    if published:
        ax.plot([], [], linestyle="--", color="0.4", label="dashed: the paper's published curve")
    ax.set(xlabel="PGD steps", ylabel="AdvTWER (%)  ↑ more robust", xticks=list(steps))
    mapping = milestone_map(steps)
    if published and any(o != p for o, p in mapping.items()):
        ax.set_xticklabels([f"{s}\n(paper {mapping[s]})" if s in mapping else str(s) for s in steps])
        ax.set_xlabel("PGD steps (the paper's curves drawn at our milestones by position)")
    note = budget_note(steps)
    ax.set_title(
        "Adversarial performance of MTL combinations (shaded: bootstrap interval)" + (f"\n{note}" if note else "")
    )
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    _save(fig, paths)
    plt.close(fig)


def training_curves(curves: Mapping[str, pd.DataFrame], paths: Sequence[str | Path]) -> None:
    """Small multiples: one panel per model, its losses per epoch (train solid, valid dashed)."""
    import seaborn as sns
    from matplotlib.ticker import MaxNLocator

    plt = _pyplot()
    sns.set_theme(style="whitegrid", context="paper")
    long = []
    for model, curve in curves.items():
        losses = [k for k in ("loss", "loss_ctc", "loss_att", "loss_dis") if k in curve and curve[k].notna().any()]
        part = curve.melt(id_vars=["epoch", "phase"], value_vars=losses, var_name="loss", value_name="value")
        long.append(part.assign(model=model))
    data = pd.concat(long, ignore_index=True).dropna(subset=["value"])
    grid = sns.relplot(
        data=data,
        x="epoch",
        y="value",
        hue="loss",
        style="phase",
        col="model",
        col_wrap=min(4, len(curves)),
        kind="line",
        markers=True,
        dashes={"train": "", "valid": (4, 2)},
        height=2.2,
        aspect=1.2,
        facet_kws={"sharey": False},
        col_order=list(curves),
    )
    grid.set_titles("{col_name}")
    grid.set_axis_labels("epoch", "loss")
    for ax in grid.axes.flat:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    grid.figure.suptitle("Fine-tuning curves of every model (ESPnet reporter, per epoch)", y=1.02)
    _save(grid.figure, paths)
    plt.close(grid.figure)
