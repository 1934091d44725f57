"""ESPnet2 training recipes: the YAML config and command-line arguments of each training stage.

We write no training loop: every stage is ESPnet2's own Trainer through ``ASRTask``/``MTLASRTask.main``.
This module only says what to pass it, the way ESPnet's asr.sh does for its stages:

- ``collect_stats_args``: shapes of every utterance and the global feature statistics (asr.sh stage 10);
- ``pretrain_config``: a small hybrid CTC/attention conformer (STL, CTC weight 0.3) for the default run;
- ``finetune_config``: the multi-task model on top of a pre-trained base, whose architecture, frontend and
  normalisation are taken from the base's own config.yaml, so both bases fine-tune the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from pathlib import Path

# Architecture keys carried from a pre-trained base's config into its fine-tuning config.
ARCHITECTURE_KEYS = (
    "frontend",
    "frontend_conf",
    "specaug",
    "specaug_conf",
    "normalize",
    "normalize_conf",
    "preencoder",
    "preencoder_conf",
    "encoder",
    "encoder_conf",
    "postencoder",
    "postencoder_conf",
    "decoder",
    "decoder_conf",
    "input_size",
)
# Quiet, dependency-free trainer settings: no tensorboard (not installed), no per-epoch matplotlib plots
# (1-1.7 s each), no CER/WER in validation (needs `editdistance`): our evaluation stage scores with jiwer.
TRAINER_DEFAULTS = {"use_tensorboard": False, "use_matplotlib": False, "num_att_plot": 0, "use_wandb": False}


def data_args(data_dirs: Mapping[str, str | Path], with_accent: bool, tasks: Sequence[str] = ()) -> list[str]:
    """--{train,valid}_data_path_and_name_and_type for the 'train' and 'valid' data directories; ``tasks``: the
    auxiliary tasks beyond accent, each read from the directory's ``labels_<task>`` (class index, -1 = none) under
    its own name, which the model's forward receives as a keyword."""
    args: list[str] = []
    for stage, directory in data_dirs.items():
        d = Path(directory)
        args += [
            f"--{stage}_data_path_and_name_and_type",
            f"{d / 'wav.scp'},speech,sound",
            f"--{stage}_data_path_and_name_and_type",
            f"{d / 'text'},text,text",
        ]
        if with_accent:
            args += [f"--{stage}_data_path_and_name_and_type", f"{d / 'accent'},accent,text_int"]
        for task in tasks:
            args += [f"--{stage}_data_path_and_name_and_type", f"{d / f'labels_{task}'},{task},text_int"]
    if tasks:  # ESPnet refuses data names its task does not declare unless told to pass them on
        args += ["--allow_variable_data_keys", "true"]
    return args


def tokenizer_args(bpe_model: str | Path, tokens: str | Path) -> list[str]:
    return [
        "--use_preprocessor",
        "true",
        "--token_type",
        "bpe",
        "--bpemodel",
        str(bpe_model),
        "--token_list",
        str(tokens),
    ]


def collect_stats_args(
    config_path: str | Path, train_dir: str | Path, valid_dir: str | Path, bpe_model: str | Path, tokens: str | Path
) -> list[str]:
    """asr.sh stage 10, with the training recipe (ESPnet builds the model to extract features) but no
    normalisation, which needs the statistics this stage makes. Shape files are only key lists here, so
    wav.scp serves (as in asr.sh)."""
    return [
        "--config",
        str(config_path),
        "--collect_stats",
        "true",
        "--normalize",
        "none",
        "--ngpu",
        "0",
        "--num_workers",
        "0",
        *tokenizer_args(bpe_model, tokens),
        *data_args({"train": train_dir, "valid": valid_dir}, with_accent=False),
        "--train_shape_file",
        str(Path(train_dir) / "wav.scp"),
        "--valid_shape_file",
        str(Path(valid_dir) / "wav.scp"),
    ]


def train_args(
    train_dir: str | Path,
    valid_dir: str | Path,
    stats_dir: str | Path,
    with_accent: bool,
    ngpu: int,
    seed: int,
    init_param: str | None = None,
    train_shapes: str | Path | None = None,
    num_workers: int = 0,
    tasks: Sequence[str] = (),
) -> list[str]:
    """The trainer's command line: data and shapes; the recipe YAML and output folder are added by
    ``hne_core.model.train.run_training``. ``train_shapes`` replaces the training shape files' folder:
    ESPnet's sampler draws batches from the keys of the shape files, so a subset there trains on a subset.
    ``num_workers``: DataLoader processes (``finetune.num_workers``), so that reading and decoding audio does not
    keep a GPU waiting; the batches are the same (ESPnet's sampler fixes them)."""
    stats = Path(stats_dir)
    shapes = Path(train_shapes) if train_shapes else stats / "train"
    args = [
        "--ngpu",
        str(ngpu),
        "--num_workers",
        str(int(num_workers)),
        "--seed",
        str(seed),
        *data_args({"train": train_dir, "valid": valid_dir}, with_accent=with_accent, tasks=tasks),
        "--train_shape_file",
        str(shapes / "speech_shape"),
        "--train_shape_file",
        str(shapes / "text_shape"),
        "--valid_shape_file",
        str(stats / "valid" / "speech_shape"),
        "--valid_shape_file",
        str(stats / "valid" / "text_shape"),
    ]
    if init_param:
        args += ["--init_param", init_param]
    return args


def pretrain_config(
    model: Mapping, train: Mapping, bpe_model: str | Path, tokens: str | Path, stats_file: str | Path
) -> dict:
    """A small hybrid CTC/attention conformer, STL with CTC weight ``model['ctc_weight']`` (the default base)."""
    return {
        **TRAINER_DEFAULTS,
        "token_type": "bpe",
        "bpemodel": str(bpe_model),
        "token_list": str(tokens),
        "use_preprocessor": True,
        "frontend": "default",
        "frontend_conf": dict(model["frontend"]),
        "specaug": None,
        "normalize": "global_mvn",
        "normalize_conf": {"stats_file": str(stats_file)},
        "encoder": "conformer",
        "encoder_conf": {
            "input_layer": "conv2d",
            "macaron_style": True,
            "use_cnn_module": True,
            "pos_enc_layer_type": "rel_pos",
            "selfattention_layer_type": "rel_selfattn",
            "activation_type": "swish",
            "rel_pos_type": "latest",
            "normalize_before": True,
            **model["encoder"],
        },
        "decoder": "transformer",
        "decoder_conf": dict(model["decoder"]),
        "model": "espnet",
        "model_conf": {
            "ctc_weight": model["ctc_weight"],
            "lsm_weight": model["lsm_weight"],
            "length_normalized_loss": False,
            "report_cer": False,
            "report_wer": False,
        },
        **_optimisation(train),
    }


def finetune_config(
    base_config: Mapping,
    base_dir: str | Path,
    lambda_a: float,
    lambda_c: float,
    num_accents: int,
    discriminator: Mapping,
    train: Mapping,
    tasks: Mapping[str, Mapping] | None = None,
) -> dict:
    """The multi-task model on a pre-trained base: the base's architecture, the paper's loss weights; ``tasks``
    ({task: {classes, weight}}, ``hne_core.model.mtl.task_weights``) for heads other than the accent alone, which
    the recipe then names (None: the paper's model, whose recipe names ``num_accents`` only)."""
    base_dir = Path(base_dir)
    cfg = {k: copy.deepcopy(base_config[k]) for k in ARCHITECTURE_KEYS if k in base_config}
    if cfg.get("normalize") == "global_mvn":
        cfg["normalize_conf"] = {**(cfg.get("normalize_conf") or {}), "stats_file": str(base_dir / "feats_stats.npz")}
    base_model_conf = {k: v for k, v in (base_config.get("model_conf") or {}).items() if k != "ctc_weight"}
    return {
        **TRAINER_DEFAULTS,
        "token_type": "bpe",
        "bpemodel": str(base_dir / "bpe.model"),
        "token_list": str(base_dir / "tokens.txt"),
        "use_preprocessor": True,
        **cfg,
        "model": "mtl",
        "model_conf": {
            **base_model_conf,
            "report_cer": False,
            "report_wer": False,
            "lambda_a": float(lambda_a),
            "lambda_c": float(lambda_c),
            "num_accents": int(num_accents),
            "dis_hidden": list(discriminator["hidden"]),
            "dis_activation": discriminator["activation"],
            "dis_lr_scale": float(discriminator.get("lr_scale", 1.0)),
            "dis_input_norm": discriminator.get("input_norm", "none"),
            **({"tasks": {k: dict(v) for k, v in tasks.items()}} if tasks else {}),
        },
        **_optimisation(train),
    }


def _optimisation(train: Mapping) -> dict:
    """Optimiser, schedule, epochs, batching and checkpoint selection shared by both training stages."""
    out = {
        "optim": "adam",
        "optim_conf": {"lr": float(train["lr"])},
        "max_epoch": int(train["epochs"]),
        "batch_type": "numel",
        "batch_bins": int(train["batch_bins"]),
        "accum_grad": int(train.get("accum_grad", 1)),
        "grad_clip": float(train.get("grad_clip", 5.0)),
        "best_model_criterion": [["valid", "loss", "min"]],
        "keep_nbest_models": 1,
        "patience": None,
    }
    if train.get("use_amp"):  # ESPnet's --use_amp; written only when on, so that other recipes stay as they were
        out["use_amp"] = True
    scheduler = scheduler_of(train)
    if scheduler == "warmuplr":
        out["scheduler"] = "warmuplr"
        out["scheduler_conf"] = {"warmup_steps": int(train["warmup_steps"])}
    return out


SCHEDULERS = ("constant", "warmuplr")


def scheduler_of(train: Mapping) -> str:
    """The learning-rate schedule of a training section: its ``scheduler`` key (``constant``: ``lr`` throughout,
    no ESPnet scheduler; ``warmuplr``: ESPnet's warmuplr over ``warmup_steps``), or, unset, warmuplr when
    ``warmup_steps`` is set (the pre-training section) and constant otherwise. The paper states lr 1e-3 for
    fine-tuning and nothing about a schedule, so the fine-tuning sections name theirs. A contradiction (a
    constant schedule with warm-up steps, warmuplr without them) is an error naming the key."""
    scheduler = train.get("scheduler") or ("warmuplr" if train.get("warmup_steps") else "constant")
    if scheduler not in SCHEDULERS:
        raise ValueError(f"scheduler must be one of {SCHEDULERS}, got {scheduler!r}")
    if scheduler == "warmuplr" and not train.get("warmup_steps"):
        raise ValueError("scheduler warmuplr needs a positive warmup_steps")
    if scheduler == "constant" and train.get("warmup_steps"):
        raise ValueError(
            f"scheduler constant with warmup_steps {train['warmup_steps']}: the warm-up would be "
            "ignored; remove warmup_steps or set scheduler: warmuplr"
        )
    return scheduler


def layout_config(train_config: Mapping) -> dict:
    """A trained model's config.yaml rewritten for the pre-trained layout (files named relative to it)."""
    cfg = copy.deepcopy(dict(train_config))
    cfg["bpemodel"] = "bpe.model"
    cfg["token_list"] = "tokens.txt"
    if cfg.get("normalize") == "global_mvn":
        cfg["normalize_conf"] = {**(cfg.get("normalize_conf") or {}), "stats_file": "feats_stats.npz"}
    return cfg


def resolve_layout_config(cfg: Mapping, layout_dir: str | Path) -> dict:
    """The inverse of ``layout_config``: file names resolved against the layout folder."""
    layout_dir = Path(layout_dir)
    out = copy.deepcopy(dict(cfg))
    out["bpemodel"] = str(layout_dir / "bpe.model")
    token_list = out.get("token_list")
    out["token_list"] = (
        Path(layout_dir / "tokens.txt").read_text(encoding="utf-8").split()
        if token_list == "tokens.txt"
        else token_list
    )
    if out.get("normalize") == "global_mvn":
        out["normalize_conf"] = {**(out.get("normalize_conf") or {}), "stats_file": str(layout_dir / "feats_stats.npz")}
    return out


def write_training_subset(
    stats_train_dir: str | Path, accent_file: str | Path, n: int, seed: int, out_dir: str | Path
) -> Path:
    """Shape files for a seeded subset of at most ``n`` training utterances, balanced over accent classes.

    Fine-tuning 13 models on a CPU cannot afford the whole corpus per epoch; the subset keeps both classes
    equally present, and the seed fixes it. A class with too few utterances gives all it has and the others
    fill its shortfall (``balanced_quotas``), so the subset holds ``n`` utterances whenever the split does;
    ``finetune.max_train_utterances`` is a bound, so a split smaller than ``n`` is used whole.
    """
    from hne_core.data.corpus import balanced_sample

    keep = set(balanced_sample(accent_file, n, seed))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("speech_shape", "text_shape"):
        lines = (Path(stats_train_dir) / name).read_text().splitlines()
        (out / name).write_text("".join(f"{ln}\n" for ln in lines if ln.split(maxsplit=1)[0] in keep))
    return out


def init_param(base_weights: str | Path, lambda_c: float) -> str:
    """ESPnet's ``--init_param`` for fine-tuning from the base, leaving out the head the model does not build.

    The base is hybrid CTC/attention; a λC = 0 model has no CTC and a λC = 1 model no decoder, and ESPnet's
    ``load_pretrained_model`` refuses unexpected keys, so they are excluded (``path:src:dst:exclude``).
    """
    exclude = [name for name, absent in (("ctc", lambda_c == 0.0), ("decoder", lambda_c == 1.0)) if absent]
    return f"{base_weights}:::{','.join(exclude)}" if exclude else str(base_weights)
