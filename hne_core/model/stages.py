"""The model stages of the workflow, each one function: pre-train the small base, fine-tune one grid point.

Each runs ESPnet2's trainer (resumable, see ``hne_core.model.train``) and ends in a fixed layout:
the pre-trained base in ``hne_core.pretrained.LAYOUT``, a fine-tuned model as an export that stock
``Speech2Text`` loads (``hne_core.model.export``) plus its training curve.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import yaml

from hne_core.atomic import atomic_dir
from hne_core.model.curves import plot_curve, read_curve, write_curve
from hne_core.model.export import export_model
from hne_core.model.recipe import (
    finetune_config,
    init_param,
    layout_config,
    pretrain_config,
    train_args,
    write_training_subset,
)
from hne_core.model.train import run_training
from hne_core.naming import ACCENT_TASK as ACCENT


def _asr_main(args: list[str]) -> None:
    from espnet2.tasks.asr import ASRTask

    ASRTask.main(cmd=args)


def _mtl_main(args: list[str]) -> None:
    from hne_core.model.mtl import MTLASRTask

    MTLASRTask.main(cmd=args)


@dataclass(frozen=True)
class StageDirs:
    """Where a training stage reads and writes: the ESPnet data directories of train and dev, the collected
    feature statistics, ESPnet's experiment directory (kept between attempts: training resumes there) and the
    stage's finished output."""

    train_dir: str
    dev_dir: str
    stats_dir: str
    exp_dir: str
    out_dir: str


def pretrain(
    model: Mapping, train: Mapping, seed: int, dirs: StageDirs, bpe_model: str, tokens: str, ngpu: int = 0
) -> Path:
    """Train the small STL base and lay it out like a downloaded one (config, weights, BPE, tokens, stats)."""
    stats_file = Path(dirs.stats_dir) / "train" / "feats_stats.npz"
    recipe = pretrain_config(model, train, bpe_model, tokens, stats_file)
    args = train_args(dirs.train_dir, dirs.dev_dir, dirs.stats_dir, with_accent=False, ngpu=ngpu, seed=seed)
    best = run_training(_asr_main, recipe, args, dirs.exp_dir)
    trained_cfg = yaml.safe_load((Path(dirs.exp_dir) / "config.yaml").read_text(encoding="utf-8"))
    curve = read_curve(dirs.exp_dir)
    with atomic_dir(dirs.out_dir) as tmp:
        (tmp / "config.yaml").write_text(yaml.safe_dump(layout_config(trained_cfg), sort_keys=False))
        shutil.copyfile(best, tmp / "model.pth")
        shutil.copyfile(bpe_model, tmp / "bpe.model")
        shutil.copyfile(tokens, tmp / "tokens.txt")
        shutil.copyfile(stats_file, tmp / "feats_stats.npz")
        write_curve(curve, tmp / "train_curve.csv")
    return Path(dirs.out_dir)


def finetune(
    weights: Mapping[str, float],
    num_accents: int,
    discriminator: Mapping,
    train: Mapping,
    seed: int,
    base_dir: str,
    dirs: StageDirs,
    ngpu: int = 0,
    tasks: Mapping[str, Mapping] | None = None,
) -> Path:
    """Fine-tune one grid point (``weights``: its ``lambda_a`` and ``lambda_c``) from the base
    (``--init_param``) and export it with its curve. ``tasks``: {task: {classes, weight}} for heads other than the
    accent alone (their labels: ``labels_<task>`` in the data directories), None for the paper's model."""
    lambda_a, lambda_c = weights["lambda_a"], weights["lambda_c"]
    exp_dir, out_dir = dirs.exp_dir, dirs.out_dir
    base_dir_p = Path(base_dir)
    base_cfg = yaml.safe_load((base_dir_p / "config.yaml").read_text(encoding="utf-8"))
    recipe = finetune_config(base_cfg, base_dir_p, lambda_a, lambda_c, num_accents, discriminator, train, tasks)
    subset = None
    if train.get("max_train_utterances"):
        subset = write_training_subset(
            Path(dirs.stats_dir) / "train",
            Path(dirs.train_dir) / "accent",
            int(train["max_train_utterances"]),
            seed,
            f"{exp_dir}.train_subset",
        )
    args = train_args(
        dirs.train_dir,
        dirs.dev_dir,
        dirs.stats_dir,
        with_accent=True,
        ngpu=ngpu,
        seed=seed,
        init_param=init_param(base_dir_p / "model.pth", lambda_c),
        train_shapes=subset,
        num_workers=int(train.get("num_workers", 0)),
        tasks=[t for t in (tasks or {}) if t != ACCENT],
    )
    best = run_training(_mtl_main, recipe, args, exp_dir)
    export_model(exp_dir, best, out_dir)
    curve = read_curve(exp_dir)
    write_curve(curve, Path(out_dir) / "train_curve.csv")
    plot_curve(curve, Path(out_dir) / "train_curve.png", title=f"λA={lambda_a}, λC(t)={lambda_c}")
    return Path(out_dir)
