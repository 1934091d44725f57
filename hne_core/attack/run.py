"""One interface to both attack engines.

``run_attack("native" | "art", model, utterances, targets, lambda_c_infer, eps, step_size, steps, clip,
delta0=None, ...)`` validates the inputs (same errors for both engines), runs ``steps`` targeted L2 PGD steps
from ``delta0`` (zeros if None) and returns an ``AttackResult`` whose ``deltas`` are float32 arrays, one per
utterance. Milestones chain: ``run_attack(..., steps=500, delta0=run_attack(..., steps=500).deltas)`` is the
1000-step attack. ``native`` is the torch engine of ``pgd.py`` (batched on the device); ``art`` runs ART's own
``ProjectedGradientDescent`` (``art_engine.py``, batch 1, numpy). Both have the same semantics;
``tests/test_attack.py`` checks that they agree.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import torch

from hne_core.attack.loss import AttackSetupError
from hne_core.attack.pgd import AttackResult, AuxHead, make_spec, pgd_native

ENGINES = ("native", "art")


def run_attack(
    engine: str,
    model,
    utterances: Sequence[np.ndarray | torch.Tensor],
    targets: Sequence[Sequence[int] | str],
    lambda_c_infer: float,
    eps: float,
    step_size: float,
    steps: int,
    clip: bool = True,
    delta0: Sequence[np.ndarray] | None = None,
    *,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 100,
    on_nan: str = "error",
    names: Sequence[str] | None = None,
    encoder=None,
    callback: Callable[[int], None] | None = None,
    batch_samples: int | None = None,
    autocast: str | None = None,
    targeted: bool = True,
    aux: AuxHead | None = None,
) -> AttackResult:
    """Targeted L2 PGD on ``utterances`` (1-D float waveforms in [-1, 1], 16 kHz) towards ``targets`` (token-id
    sequences, or strings with ``encoder=TargetEncoder(...)``), with the loss of Eq. 4 at ``lambda_c_infer``.

    ``batch_size`` applies to the native engine (ART runs batch 1): the most utterances a batch holds; with
    ``batch_samples`` batches are also filled only up to that many padded samples (``pgd.length_batches``).
    ``autocast`` (``None`` | ``"bf16"`` | ``"fp16"``): the native engine's forward and backward under
    ``torch.autocast``, the PGD update in float32; ART's estimator has none (an error).
    ``names`` label utterances in errors.
    ``checkpoint_path``/``checkpoint_every``: the in-job checkpoint (resumed by an identical rerun).
    ``on_nan``: "error" (``NaNGradientError`` naming the utterance) or "skip" (counted in ``nan_skips``).
    ``callback(step)`` is called after every step.
    ``targeted=False``: ascend the loss of ``targets`` instead (an untargeted attack when they are the
    references' token ids; ART's ``targeted`` flag), otherwise the same steps, projection and clipping.
    ``lambda_c_infer`` is the λC of the attack's loss: the victim's λC(i) for the paper's attacker, the attacker's
    own λC(a) for an adaptive one, which may also add ``aux`` (μ·L_DIS of the model's discriminator head).
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    spec = make_spec(
        model,
        utterances,
        targets,
        lambda_c_infer,
        eps,
        step_size,
        steps,
        clip,
        delta0,
        names,
        encoder,
        targeted=targeted,
        aux=aux,
    )
    if engine == "native":
        return pgd_native(
            model,
            spec,
            batch_size=batch_size,
            device=device,
            checkpoint_path=checkpoint_path,
            checkpoint_every=checkpoint_every,
            on_nan=on_nan,
            callback=callback,
            batch_samples=batch_samples,
            autocast=autocast,
        )
    if autocast is not None:
        raise AttackSetupError(f"autocast {autocast!r} needs the native engine (ART's estimator runs float32)")
    from hne_core.attack.art_engine import pgd_art

    return pgd_art(
        model,
        spec,
        device=device,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        on_nan=on_nan,
        callback=callback,
    )
