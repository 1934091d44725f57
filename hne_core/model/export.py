"""Export a trained multi-task model as a stock ESPnet2 ASR model that ``Speech2Text`` loads as it is.

Stock ESPnet cannot build ``model: mtl`` in a fresh process, so the exported config says ``model: espnet``
with ``ctc_weight`` = λC(t), and the weights leave out the discriminators (``discriminator.*``,
``task_heads.*``). ESPnet's own ``build_model_from_file`` loads weights non-strictly, so a wrong export would
silently keep random weights: we check it with a strict load. The full multi-task model (with its
discriminators) is kept beside it for the heads' accuracies and for attacks.
"""

from __future__ import annotations

import argparse
import copy
import shutil
from pathlib import Path

import torch
import yaml

from hne_core.atomic import atomic_dir
from hne_core.model.mtl import MTL_ONLY_KEYS

EXPORT_FILES = ("config.yaml", "model.pth", "mtl_config.yaml", "mtl_model.pth")
HEAD_PREFIXES = ("discriminator.", "task_heads.")  # the accent head and the other tasks' (MTLESPnetModel)


def load_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A weights file, loaded without executing pickled code."""
    return torch.load(path, map_location="cpu", weights_only=True)


def stock_config(train_config: dict) -> dict:
    cfg = copy.deepcopy(train_config)
    conf = dict(cfg.get("model_conf") or {})
    if cfg.get("model") == "mtl":
        cfg["model"] = "espnet"
        cfg["model_conf"] = {k: v for k, v in conf.items() if k not in MTL_ONLY_KEYS}
        cfg["model_conf"]["ctc_weight"] = conf["lambda_c"]
    return cfg


def export_model(train_dir: str | Path, weights: str | Path, out_dir: str | Path) -> Path:
    """``train_dir/config.yaml`` + ``weights`` -> ``out_dir`` with ``EXPORT_FILES``, atomically."""
    from espnet2.tasks.asr import ASRTask

    import hne_core.model.mtl  # noqa: F401  (registers model: mtl for the strict checks below)

    train_cfg = yaml.safe_load((Path(train_dir) / "config.yaml").read_text(encoding="utf-8"))
    state = load_state(weights)
    cfg = stock_config(train_cfg)
    stock_state = {k: v for k, v in state.items() if not k.startswith(HEAD_PREFIXES)}
    for config, weights_of in ((cfg, stock_state), (train_cfg, state)):
        model = ASRTask.build_model(argparse.Namespace(**config))
        model.load_state_dict(weights_of, strict=True)  # raises on any missing or unexpected key
    with atomic_dir(out_dir) as tmp:
        (tmp / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False), encoding="utf-8")
        torch.save(stock_state, tmp / "model.pth")
        (tmp / "mtl_config.yaml").write_text(yaml.safe_dump(train_cfg, sort_keys=False), encoding="utf-8")
        shutil.copyfile(weights, tmp / "mtl_model.pth")
    return Path(out_dir)
