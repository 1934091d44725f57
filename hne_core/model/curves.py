"""Training curves from ESPnet's own reporter, which the trainer keeps in ``checkpoint.pth``.

The reporter holds every epoch's train and valid statistics, including epochs before a resume, which a job's
log does not (a resumed job writes a new log).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from hne_core.atomic import atomic_path

CURVE_KEYS = ("loss", "loss_ctc", "loss_att", "loss_dis", "acc", "acc_dis")


def read_curve(exp_dir: str | Path) -> pd.DataFrame:
    """One row per (epoch, phase) with the statistics the model reported (NaN where a head is absent), the other
    tasks' losses and accuracies after the paper model's (none for a model with the accent alone)."""
    import torch
    from espnet2.train.reporter import Reporter

    ckpt_path = Path(exp_dir) / "checkpoint.pth"
    # The checkpoint holds plain Python containers besides tensors; it is our own trainer's file.
    state = torch.load(ckpt_path, map_location="cpu", weights_only=False)
    reporter = Reporter()
    reporter.load_state_dict(state["reporter"])
    rows, epochs = [], range(1, reporter.get_epoch() + 1)
    reported = {
        key
        for epoch in epochs
        for phase in ("train", "valid")
        if reporter.has(phase, "loss", epoch)
        for key in reporter.get_keys2(phase, epoch)
    }
    # the other tasks: an acc_<task> beside the accent's acc_dis (ESPnet's own loss_scale is not one)
    tasks = sorted(k.removeprefix("acc_") for k in reported if k.startswith("acc_") and k not in CURVE_KEYS)
    extra = [f"{kind}_{task}" for task in tasks for kind in ("loss", "acc")]
    keys = (*CURVE_KEYS, *extra)
    for epoch in epochs:
        for phase in ("train", "valid"):
            if not reporter.has(phase, "loss", epoch):
                continue
            row = {"epoch": epoch, "phase": phase}
            for key in keys:
                has = reporter.has(phase, key, epoch)
                row[key] = float(reporter.get_value(phase, key, epoch)) if has else float("nan")
            rows.append(row)
    return pd.DataFrame(rows, columns=["epoch", "phase", *keys])


def write_curve(curve: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        curve.to_csv(tmp, index=False)


def plot_curve(curve: pd.DataFrame, path: str | Path, title: str) -> None:
    """Losses per epoch (train and valid), and each head's accuracy where the model has it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for phase, style in (("train", "-"), ("valid", "--")):
        part = curve[curve.phase == phase]
        for key in [k for k in curve.columns if k.startswith("loss")]:
            if part[key].notna().any():
                axes[0].plot(part.epoch, part[key], style, marker="o", label=f"{phase} {key}")
        for key in [k for k in curve.columns if k.startswith("acc")]:
            if part[key].notna().any():
                axes[1].plot(part.epoch, part[key], style, marker="o", label=f"{phase} {key}")
    axes[0].set(xlabel="epoch", ylabel="loss")
    axes[1].set(xlabel="epoch", ylabel="accuracy", ylim=(0, 1))
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle(title)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
