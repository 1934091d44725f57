"""What decoding a model and attacking it at λC(i) both need: the heads that Eq. 2 and Eq. 4 read must exist, and
waves are padded into one batch the same way. Kept below ``hne_core.decoding`` and ``hne_core.attack`` so that
neither imports the other."""

from __future__ import annotations

from collections.abc import Sequence

import torch


class SetupError(ValueError):
    """A decoding or an attack cannot run as asked (a missing head, a weight outside [0, 1], bad input ...)."""


def check_heads(model: torch.nn.Module, lambda_c: float) -> None:
    """The heads Eq. 2 and Eq. 4 need for ``lambda_c`` exist."""
    if not 0.0 <= lambda_c <= 1.0:
        raise SetupError(f"λC(i) = {lambda_c} must lie in [0, 1]")
    if lambda_c > 0.0 and getattr(model, "ctc", None) is None:
        raise SetupError(
            f"λC(i) = {lambda_c} needs the CTC head, but this model has none (it was trained with λC(t) = 0)"
        )
    if lambda_c < 1.0 and getattr(model, "decoder", None) is None:
        raise SetupError(
            f"λC(i) = {lambda_c} needs the attention decoder, but this model has none (it was trained with λC(t) = 1)"
        )
    if lambda_c > 0.0 and getattr(model.ctc, "ctc_type", "builtin") != "builtin":
        raise SetupError(f"CTC type {model.ctc.ctc_type!r} is not supported (only 'builtin')")


def pad_waves(waves: Sequence, device: torch.device | str) -> tuple[torch.Tensor, torch.Tensor]:
    """1-D signals (arrays or tensors) -> (B, Tmax) float32 padded with zeros, and their lengths."""
    lens = torch.tensor([len(w) for w in waves], dtype=torch.long)
    x = torch.zeros(len(waves), int(lens.max()))
    for k, w in enumerate(waves):
        x[k, : len(w)] = torch.as_tensor(w)
    return x.to(device), lens.to(device)
