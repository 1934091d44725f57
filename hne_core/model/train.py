"""Run ESPnet2's trainer for one stage, resumably.

A training output folder keeps ESPnet's ``checkpoint.pth`` so that a killed job resumes from its last epoch
(``--resume true``). That is only right if the rerun trains the same thing: the folder records a fingerprint
of its recipe and command line, and a rerun with a different recipe starts over instead of resuming.
ESPnet's saves are made atomic (write, then rename), so a kill during a save leaves the last whole checkpoint.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    checkpoint = out / "checkpoint.pth"
    if out.exists() and have != want:
        log.warning("%s holds another recipe's training: starting over", out)
        shutil.rmtree(out)
    elif checkpoint.is_file() and not zipfile.is_zipfile(checkpoint):  # torch.save writes a zip archive
        log.warning("%s is truncated (a job killed while writing it?): starting over", checkpoint)
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    write_text_atomic(out / FINGERPRINT, want + "\n")
    return checkpoint.is_file()


def repair_last_epoch(out_dir: str | Path, recipe: Mapping) -> None:
    """ESPnet saves ``checkpoint.pth`` first, then the epoch's ``<N>epoch.pth`` and its links (``latest.pth``, the
    ``valid.loss.best.pth`` the export reads). A job killed in between would resume after epoch N without them:
    write them from the checkpoint, as ESPnet would have."""
    import torch
    from espnet2.torch_utils.safe_torch_load import safe_torch_load
    from espnet2.train.reporter import Reporter

    out = Path(out_dir)
    states = safe_torch_load(out / "checkpoint.pth", map_location="cpu")
    reporter = Reporter()
    reporter.load_state_dict(states["reporter"])
    epoch = reporter.get_epoch()
    if epoch < 1:
        return
    weights = out / f"{epoch}epoch.pth"
    if not weights.is_file():
        log.warning("%s: epoch %d was checkpointed but its weights were not saved: writing them", out, epoch)
        with atomic_torch_save():
            torch.save(states["model"], weights)
    links = {"latest.pth": epoch}
    for phase, key, mode in recipe.get("best_model_criterion", []):
        if reporter.has(phase, key):
            links[f"{phase}.{key}.best.pth"] = reporter.get_best_epoch(phase, key, mode)
    for name, best in links.items():
        link, target = out / name, f"{best}epoch.pth"
        if (out / target).is_file() and not (link.is_symlink() and os.readlink(link) == target):
            link.unlink(missing_ok=True)
            link.symlink_to(target)


@contextlib.contextmanager
def atomic_torch_save() -> Iterator[None]:
    """While ESPnet trains, ``torch.save`` to a path writes a temporary file and renames it into place, so a job
    killed mid-save (SIGKILL, a SLURM time limit) leaves the previous ``checkpoint.pth`` whole, never a torn one."""
    import torch

    original = torch.save

    def save(obj, f, *args, **kwargs):
        if not isinstance(f, (str, os.PathLike)):
            return original(obj, f, *args, **kwargs)
        target = Path(f)
        # same file name in a side folder: torch names the archive's records after the file, so the bytes match
        part_dir = target.parent / f".part-{os.getpid()}"
        part_dir.mkdir(exist_ok=True)
        tmp = part_dir / target.name
        try:
            original(obj, tmp, *args, **kwargs)
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                part_dir.rmdir()

    torch.save = save
    try:
        yield
    finally:
        torch.save = original


def run_training(
    task_main: Callable[[list[str]], None], recipe: Mapping, args: Sequence[str], out_dir: str | Path
) -> Path:
    """Write ``recipe`` as the stage's YAML, then train (or resume) with ESPnet2; returns the best model."""
    out = Path(out_dir)
    recipe_path = out.parent / f"{out.name}.recipe.yaml"
    full_args = ["--config", str(recipe_path), *args, "--output_dir", str(out), "--resume", "true"]
    resumed = prepare_output_dir(out, recipe, full_args)
    write_text_atomic(recipe_path, yaml.safe_dump(dict(recipe), sort_keys=False))
    log.info("%s training in %s", "resuming" if resumed else "starting", out)
    if resumed:
        repair_last_epoch(out, recipe)
    with atomic_torch_save():
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
