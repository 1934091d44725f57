"""A tiny real ESPnet2 multi-task model built in-process, for unit tests of the model code."""

from __future__ import annotations

import argparse

import torch

TOKENS = ["<blank>", "<unk>", "\u2581", "A", "B", "C", "D", "E", "<sos/eos>"]


def tiny_config(lambda_a: float, lambda_c: float, hidden=(8, 8, 8, 8), tasks: dict | None = None) -> dict:
    extra = {} if tasks is None else {"tasks": tasks}
    return {
        "token_list": TOKENS,
        "input_size": None,
        "use_preprocessor": False,
        "token_type": "bpe",
        "bpemodel": None,
        "frontend": "default",
        "frontend_conf": {"n_fft": 512, "hop_length": 160, "n_mels": 20},
        "specaug": None,
        "normalize": "utterance_mvn",
        "normalize_conf": {},
        "preencoder": None,
        "postencoder": None,
        "encoder": "conformer",
        "encoder_conf": {
            "output_size": 16,
            "attention_heads": 2,
            "linear_units": 32,
            "num_blocks": 1,
            "cnn_module_kernel": 5,
            "input_layer": "conv2d",
        },
        "decoder": "transformer",
        "decoder_conf": {"attention_heads": 2, "linear_units": 32, "num_blocks": 1},
        "model": "mtl",
        "model_conf": {
            "lambda_a": lambda_a,
            "lambda_c": lambda_c,
            "num_accents": 2,
            "dis_hidden": list(hidden),
            "dis_activation": "relu",
            "report_cer": False,
            "report_wer": False,
            **extra,
        },
        "ctc_conf": {},
        "init": None,
    }


def build_tiny(lambda_a: float, lambda_c: float, tasks: dict | None = None):
    from espnet2.tasks.asr import ASRTask

    import hne_core.model.mtl  # noqa: F401  (registers model: mtl)

    torch.manual_seed(0)
    parser = ASRTask.get_parser()
    args = parser.parse_args([])
    for key, value in tiny_config(lambda_a, lambda_c, tasks=tasks).items():
        setattr(args, key, value)
    return ASRTask.build_model(args).eval()


def tiny_batch(batch: int = 2):
    torch.manual_seed(1)
    lengths = torch.tensor([16000, 12000][:batch])
    speech = torch.randn(batch, int(lengths.max())) * 0.1
    text = torch.tensor([[3, 4, 5, 6], [4, 5, 6, -1]][:batch])
    text_lengths = torch.tensor([4, 3][:batch])
    accent = torch.tensor([[0], [1]][:batch])
    return dict(
        speech=speech,
        speech_lengths=lengths,
        text=text,
        text_lengths=text_lengths,
        accent=accent,
        accent_lengths=torch.ones(batch, dtype=torch.long),
    )


def namespace(cfg: dict) -> argparse.Namespace:
    return argparse.Namespace(**cfg)
