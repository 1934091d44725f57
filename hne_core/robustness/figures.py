"""The checks' figures: AdvTWER against the ε multiplier per model (bootstrap bands), and the transfer matrices
as heatmaps (one panel per table)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hne_core.results.aggregate import Setting
from hne_core.results.figures import _pyplot, _save
from hne_core.robustness.verdicts import Estimate


def budget_sweep(
    sweeps: Mapping[Setting, Sequence[tuple[float, Estimate]]],
    epsilon: float,
    step_size: float,
    steps: int,
    paths: Sequence[str | Path],
) -> None:
    """One line per setting: AdvTWER at the last milestone against ε (log scale), shaded bootstrap interval."""
    import seaborn as sns

    plt = _pyplot()
    sns.set_theme(style="whitegrid", context="paper")
    palette = sns.color_palette("colorblind", n_colors=max(1, len(sweeps)))
    fig, ax = plt.subplots(figsize=(7.5, 4.6))
    for color, (setting, pts) in zip(palette, sorted(sweeps.items())):
        eps = [epsilon * s for s, _ in pts]
        ax.plot(eps, [e.value for _, e in pts], marker="o", color=color, label=setting.spelled)
        ax.fill_between(eps, [e.low for _, e in pts], [e.high for _, e in pts], color=color, alpha=0.15, linewidth=0)
    ax.set_xscale("log", base=2)
    ax.axvline(epsilon, color="0.5", linestyle=":", linewidth=1)
    ax.set(
        xlabel=f"ε (L2; α = ε·{step_size / epsilon:g}); dotted: the config's ε",
        ylabel="AdvTWER (%)  ↓ attack succeeds",
        title=f"Budget sweep at PGD-{steps} (shaded: bootstrap interval)",
    )
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), frameon=False)
    _save(fig, paths)
    plt.close(fig)


def transfer_heatmap(matrices: Mapping[str, pd.DataFrame], paths: Sequence[str | Path]) -> None:
    """One annotated heatmap per table: source (rows) × victim (columns) AdvTWER, the diagonal white-box."""
    import seaborn as sns

    plt = _pyplot()
    names = list(matrices)
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(1.0 + 4.2 * max(1, len(names)), 4.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        m = matrices[name].astype(float)
        sns.heatmap(
            m,
            annot=True,
            fmt=".1f",
            cmap="viridis",
            vmin=0,
            vmax=max(100.0, float(np.nanmax(m.values))),
            ax=ax,
            cbar=True,
            annot_kws={"fontsize": 6},
        )
        ax.set_title(f"{name}: AdvTWER, source → victim (diagonal: white-box)", fontsize=8)
        ax.set_xlabel("victim")
        ax.set_ylabel("source")
        ax.tick_params(labelsize=6)
    for ax in axes[0][len(names) :]:
        ax.axis("off")
    _save(fig, paths)
    plt.close(fig)
