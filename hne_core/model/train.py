"""Run ESPnet2's trainer for one stage, resumably.

A training output folder keeps ESPnet's ``checkpoint.pth`` so that a killed job resumes from its last epoch
(``--resume true``). That is only right if the rerun trains the same thing: the folder records a fingerprint
of its recipe and command line, and a rerun with a different recipe starts over instead of resuming.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import yaml

from hne_core.atomic import write_text_atomic

log = logging.getLogger(__name__)
FINGERPRINT = "recipe.sha256"


def set_threads(threads: int) -> None:
    """Pin torch to the job's ``threads:``: oversubscribed OpenMP made epochs 20-60x slower here."""
    import torch

    os.environ["OMP_NUM_THREADS"] = str(threads)
    torch.set_num_threads(max(1, int(threads)))


def fingerprint(recipe: Mapping, args: Sequence[str]) -> str:
    blob = json.dumps({"recipe": recipe, "args": list(args)}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


def prepare_output_dir(out_dir: str | Path, recipe: Mapping, args: Sequence[str]) -> bool:
    """Make ``out_dir`` ready for this recipe; True when an earlier run of the same recipe will be resumed."""
    out = Path(out_dir)
    want = fingerprint(recipe, args)
    have = (out / FINGERPRINT).read_text().strip() if (out / FINGERPRINT).is_file() else None
    if out.exists() and have != want:
        log.warning("%s holds another recipe's training: starting over", out)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / FINGERPRINT, want + "\n")
    return (out / "checkpoint.pth").is_file()


def run_training(task_main: Callable[[list[str]], None], recipe: Mapping, args: Sequence[str],
                 out_dir: str | Path) -> Path:
    """Write ``recipe`` as the stage's YAML, then train (or resume) with ESPnet2; returns the best model."""
    out = Path(out_dir)
    recipe_path = out.parent / f"{out.name}.recipe.yaml"
    full_args = ["--config", str(recipe_path), *args, "--output_dir", str(out), "--resume", "true"]
    resumed = prepare_output_dir(out, recipe, full_args)
    write_text_atomic(recipe_path, yaml.safe_dump(dict(recipe), sort_keys=False))
    log.info("%s training in %s", "resuming" if resumed else "starting", out)
    task_main(full_args)
    best = out / "valid.loss.best.pth"
    if not best.is_file():
        raise RuntimeError(f"{out}: ESPnet finished without valid.loss.best.pth (is 'loss' in the stats?)")
    return best


def run_collect_stats(task_main: Callable[[list[str]], None], args: Sequence[str], out_dir: str | Path) -> Path:
    """Shapes and global feature statistics (asr.sh stage 10), into a fresh folder."""
    out = Path(out_dir)
    shutil.rmtree(out, ignore_errors=True)
    task_main([*args, "--output_dir", str(out)])
    stats = out / "train" / "feats_stats.npz"
    if not stats.is_file():
        raise RuntimeError(f"{out}: collect_stats wrote no train/feats_stats.npz")
    return stats
