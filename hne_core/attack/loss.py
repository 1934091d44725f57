"""The attack objective, Eq. 4 of the paper, per utterance:

    L_ADV(x + δ, ỹ) = λC(i) · L_CTC(x + δ, ỹ) + (1 - λC(i)) · L_DEC(x + δ, ỹ)

teacher-forced to the target ỹ, computed with the model's own ``encode``, CTC head and decoder, in eval mode
(the conformer's BatchNorm frozen, dropout and SpecAugment off).

Per utterance, not per batch: ESPnet's CTC and attention losses are sums over the batch divided by the batch
size (or by the batch's token count with ``length_normalized_loss``), so the gradient of a batched loss is
each utterance's own gradient scaled by 1/B. Here every utterance's loss is what ESPnet computes for it alone
(a batch of one): the encoder and decoder run batched, and the losses are taken per row. With the STFT hooks
of ``hne_core.batching`` a padded row's encoder output equals its unpadded one, so ``losses.sum()`` has each
utterance's own gradient in its row.

- L_CTC: the model's ``ctc.ctc_lo`` and its ``torch.nn.CTCLoss`` (reduction none, the model's
  ``zero_infinity``), as ``CTC.loss_fn`` with a batch of one. ESPnet's ``CTC.forward`` applies
  ``F.dropout(p=dropout_rate)`` even in eval mode; eval semantics (no dropout) are used here.
- L_DEC: the model's ``decoder`` on ``<sos> + ỹ`` and its training criterion ``criterion_att`` (label-smoothed
  cross entropy with the model's ``lsm_weight``) against ``ỹ + <eos>``. The paper does not say whether the
  attack's decoder loss is smoothed; ``set_label_smoothing`` (config ``attack.label_smoothing``) sets it on the
  model's criterion, which ``decoder_losses`` reads, or leaves the model's own (``"model"``).

A head with zero weight is not computed; a head with weight that the model lacks (λC(i) > 0 on a model trained
with λC(t) = 0, which has no CTC) is an error.

The adaptive attacker (the robustness checks) weighs the two heads with its own λC(a) in place of the victim's
λC(i), and may add a discriminator term μ·L_DIS (``HeadTerm``): it knows the model's other heads too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from espnet2.legacy.nets.pytorch_backend.transformer.add_sos_eos import add_sos_eos

from hne_core.heads import SetupError, check_heads


class AttackSetupError(SetupError):
    """The attack cannot run as asked (bad input, training mode, bad settings ...)."""


def set_label_smoothing(model: torch.nn.Module, smoothing: float | str = "model") -> float | None:
    """Make the attack's decoder loss use label smoothing ``smoothing`` (a number in [0, 1)), or, with
    ``"model"``, keep the model's own (its ``lsm_weight``). Sets it on the model's ``criterion_att``
    (ESPnet's ``LabelSmoothingLoss``: ``smoothing`` and ``confidence = 1 - smoothing``), where
    ``decoder_losses`` reads it, so both engines and the job's final loss see the same value. Returns the
    smoothing in effect (None for a model without a decoder)."""
    crit = getattr(model, "criterion_att", None)
    if smoothing == "model":
        return None if crit is None else float(crit.smoothing)
    if isinstance(smoothing, bool) or not isinstance(smoothing, (int, float)) or not 0.0 <= smoothing < 1.0:
        raise AttackSetupError(f"attack.label_smoothing must be 'model' or a number in [0, 1), got {smoothing!r}")
    if crit is None:
        return None
    crit.smoothing = float(smoothing)
    crit.confidence = 1.0 - float(smoothing)
    return float(smoothing)


def pad_targets(
    targets: Sequence[Sequence[int]], device: torch.device | str, ignore_id: int = -1
) -> tuple[torch.Tensor, torch.Tensor]:
    """Token-id sequences -> (B, Lmax) padded with ``ignore_id``, and their lengths."""
    lens = torch.tensor([len(t) for t in targets], dtype=torch.long)
    if bool((lens == 0).any()):
        raise AttackSetupError("an empty target cannot be attacked")
    ys = torch.full((len(targets), int(lens.max())), ignore_id, dtype=torch.long)
    for k, t in enumerate(targets):
        ys[k, : len(t)] = torch.as_tensor(list(t), dtype=torch.long)
    return ys.to(device), lens.to(device)


@dataclass(frozen=True)
class HeadTerm:
    """The adaptive attacker's term μ·L_DIS for one batch: ``weight`` (μ) times the cross-entropy of a
    discriminator ``head`` on the mean encoder embedding over valid frames (what the model trains it on) against each
    utterance's ``labels`` (B,). It is added to Eq. 4's loss, which a targeted attack descends: μ > 0 pulls the head
    toward each utterance's own label, μ < 0 pushes it away (an untargeted attack ascends: the signs swap)."""

    head: torch.nn.Module
    weight: float
    labels: torch.Tensor


@dataclass
class BatchTargets:
    """What Eq. 4 needs of a batch's targets and lengths that x + δ never changes, made once per batch and reused
    at every PGD step, so that a step reads nothing back from the device: ``add_sos_eos`` selects with a boolean
    mask (a host sync on a GPU), CTC's flat targets need the target lengths on the host, and ``torch.ctc_loss``
    copies device-side lengths to the host (so it gets host tensors here). ``enc_lens_host`` (the encoder's
    output lengths, which depend only on the input lengths) is filled at the batch's first step."""

    ys_in: torch.Tensor
    ys_out: torch.Tensor
    ctc_flat: torch.Tensor
    ys_lens_host: torch.Tensor
    enc_lens_host: torch.Tensor | None = None


def batch_targets(model, ys: torch.Tensor, ys_lens: torch.Tensor) -> BatchTargets:
    """``BatchTargets`` of padded targets (``pad_targets``)."""
    lens = ys_lens.cpu()
    ys_in, ys_out = add_sos_eos(ys, model.sos, model.eos, model.ignore_id)
    flat = torch.cat([ys[i, :n] for i, n in enumerate(lens.tolist())])
    return BatchTargets(ys_in=ys_in, ys_out=ys_out, ctc_flat=flat, ys_lens_host=lens)


def ctc_losses(
    model,
    enc: torch.Tensor,
    enc_lens: torch.Tensor,
    ys: torch.Tensor,
    ys_lens: torch.Tensor,
    prepared: BatchTargets | None = None,
) -> torch.Tensor:
    """(B,) CTC loss of each utterance, as ESPnet computes it for a batch of one."""
    ctc = model.ctc
    logp = ctc.ctc_lo(enc).log_softmax(2).float().transpose(0, 1)  # (T, B, V)
    if prepared is None:
        flat = torch.cat([ys[i, :n] for i, n in enumerate(ys_lens.tolist())])  # one host sync, not one per row
        return ctc.ctc_loss(logp, flat, enc_lens, ys_lens).to(enc.dtype)
    if prepared.enc_lens_host is None:  # the batch's first step: its only read-back
        prepared.enc_lens_host = enc_lens.cpu()
    return ctc.ctc_loss(logp, prepared.ctc_flat, prepared.enc_lens_host, prepared.ys_lens_host).to(enc.dtype)


def decoder_losses(
    model,
    enc: torch.Tensor,
    enc_lens: torch.Tensor,
    ys: torch.Tensor,
    ys_lens: torch.Tensor,
    prepared: BatchTargets | None = None,
) -> torch.Tensor:
    """(B,) teacher-forced decoder loss of each utterance: the model's ``criterion_att`` on its own row.

    ESPnet's ``LabelSmoothingLoss`` reduces over the whole batch; calling it once per row (as this did) cost
    ~10 % of a batched attack step on the CPU. This is the same computation with the batch reduction left out,
    read off the criterion's own settings; ``tests/test_attack.py`` checks it against ``criterion_att`` row by row.
    """
    if prepared is None:
        ys_in, ys_out = add_sos_eos(ys, model.sos, model.eos, model.ignore_id)
    else:
        ys_in, ys_out = prepared.ys_in, prepared.ys_out
    dec_out, _ = model.decoder(enc, enc_lens, ys_in, ys_lens + 1)
    dec_out = dec_out.float()  # under autocast the logits may be bf16/fp16: the loss itself is float32 (no-op else)
    crit = model.criterion_att
    ignore = ys_out == crit.padding_idx  # (B, L)
    with torch.no_grad():
        true_dist = torch.full_like(dec_out, crit.smoothing / (crit.size - 1))
        true_dist.scatter_(2, ys_out.masked_fill(ignore, 0).unsqueeze(2), crit.confidence)
    kl = crit.criterion(torch.log_softmax(dec_out, dim=2), true_dist)  # KLDivLoss(reduction="none"): (B, L, V)
    per_row = kl.masked_fill(ignore.unsqueeze(2), 0.0).sum(dim=(1, 2))
    # a batch of one divides by its token count (normalize_length) or by its batch size, 1
    return per_row / (~ignore).sum(dim=1).to(per_row.dtype) if crit.normalize_length else per_row


def encode_static(model, speech: torch.Tensor, speech_lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``ESPnetASRModel.encode`` in eval mode (the same modules in the same order) without its two host reads:
    ``speech[:, :speech_lengths.max()]`` (a no-op here: ``pad_waves`` pads a batch to its longest row) and the
    assertion ``encoder_out.size(-2) <= encoder_out_lens.max()``. Under ``torch.autocast`` the frontend and the
    feature normalisation run in float32 on every device (ESPnet's ``autocast_frontend: false`` does so on CUDA
    only): the log-mel of a power spectrum is where reduced precision costs most, and it is cheap.
    A model this does not know (its own ``encode``, intermediate-CTC conditioning) gets its own ``encode``."""
    from espnet2.asr.espnet_model import ESPnetASRModel

    enc_obj = getattr(model, "encoder", None)
    if (
        not isinstance(model, ESPnetASRModel)
        or type(model).encode is not ESPnetASRModel.encode
        or enc_obj is None
        or getattr(enc_obj, "interctc_use_conditioning", False)
        or getattr(enc_obj, "ctc_trim", False)
        or model.training
    ):
        return model.encode(speech, speech_lengths)
    fp32 = (
        contextlib.nullcontext()
        if getattr(model, "autocast_frontend", False)
        else torch.autocast(speech.device.type, enabled=False)
    )
    with fp32:
        if model.frontend is not None:
            feats, feats_lengths = model.frontend(speech, speech_lengths)
        else:
            feats, feats_lengths = speech, speech_lengths
        if model.normalize is not None:
            feats, feats_lengths = model.normalize(feats, feats_lengths)
    if model.preencoder is not None:
        feats, feats_lengths = model.preencoder(feats, feats_lengths)
    enc, enc_lens, _ = enc_obj(feats, feats_lengths)
    if isinstance(enc, tuple):
        enc = enc[0]
    if model.postencoder is not None:
        enc, enc_lens = model.postencoder(enc, enc_lens)
    return enc, enc_lens


def adversarial_losses(
    model,
    speech: torch.Tensor,
    speech_lengths: torch.Tensor,
    ys: torch.Tensor,
    ys_lens: torch.Tensor,
    lambda_c: float,
    prepared: BatchTargets | None = None,
    head_term: HeadTerm | None = None,
) -> torch.Tensor:
    """(B,) Eq. 4 per utterance. ``ys`` padded with -1 (``pad_targets``). With ``prepared`` (``batch_targets`` of
    the same ``ys``; the PGD loop) the step reads nothing back from the device: ``encode_static`` and the
    prepared targets replace ESPnet's ``encode`` and ``add_sos_eos`` (the same values). ``head_term``: the adaptive
    attacker's μ·L_DIS, added per utterance (None or μ = 0: Eq. 4 alone, the same operations)."""
    if model.training:
        raise AttackSetupError("attack losses need the model in eval() mode (BatchNorm, dropout, SpecAugment)")
    check_heads(model, lambda_c)
    if prepared is None:
        enc, enc_lens = model.encode(speech, speech_lengths)
    else:
        enc, enc_lens = encode_static(model, speech, speech_lengths)
    if isinstance(enc, tuple):  # intermediate CTC outputs are not part of Eq. 4
        enc = enc[0]
    total = torch.zeros(enc.size(0), dtype=torch.float32, device=enc.device)  # float32 under autocast too
    if lambda_c > 0.0:
        total = total + lambda_c * ctc_losses(model, enc, enc_lens, ys, ys_lens, prepared).float()
    if lambda_c < 1.0:
        total = total + (1.0 - lambda_c) * decoder_losses(model, enc, enc_lens, ys, ys_lens, prepared).float()
    if head_term is not None and head_term.weight != 0.0:
        from hne_core.model.mtl import masked_mean

        logits = head_term.head(masked_mean(enc, enc_lens)).float()
        dis = torch.nn.functional.cross_entropy(logits, head_term.labels, reduction="none")
        total = total + head_term.weight * dis
    return total
