"""Batch invariance of ESPnet's frontend: a padded utterance must be attacked exactly as if it were alone.

On espnet 202611 the only batch dependence of the frontend is the centred STFT (docs/design-notes.md §1):
``torch.stft(center=True)`` reflect-pads the edges of the *batch tensor*, so the last frames of a zero-padded
utterance see zeros where, alone, they see the reflection of its own last ``n_fft // 2`` samples; utterance MVN
then spreads the change to every frame, and the input gradient leaks into the padded tail (PGD would write
noise there).

Two hooks on ``model.frontend.stft``, inside the autograd graph:
a forward pre-hook writes each utterance's own reflection right after its end and zeroes the rest (widening
the tensor by ``n_fft // 2`` where a reflection would run past it), and a forward hook trims the STFT back to
``max(olens)`` frames. A batch whose rows all have full length (a batch of one) is passed through unchanged,
so single-utterance results are bit-identical with and without the hooks.

Encoders with the legacy relative-position attention (ESPnet's default ``rel_pos_type``, used by the paper's
pre-trained model) are a second source: see ``legacy_rel_shift_per_utterance``.

``static_lengths``: a PGD batch's lengths never change between its steps, yet ESPnet reads them back from the device
at every forward (``make_pad_mask`` takes ``lengths.max()`` for the encoder's and decoder's masks), as do the STFT
hooks here. Inside that block, whatever depends only on lengths is computed at a batch's first step and replayed
at the later ones; see ``LengthReplay``.
"""

from __future__ import annotations

import contextlib
import sys
import types
from collections.abc import Callable, Hashable, Iterator
from typing import Any, TypeVar

import torch
import torch.nn.functional as F

_MARK = "_hne_batch_invariant_handles"
T = TypeVar("T")


class LengthReplay:
    """Values that depend only on a batch's lengths, computed at its first step and replayed at the later ones.

    Within ``batch(key)`` every ``lookup`` is numbered; the first pass through a batch records each value with a
    device copy of the lengths it came from, later passes return the recorded value for the same call number.
    A later call whose signature (shapes, non-tensor arguments) differs is an error at once; whether its lengths
    equal the recorded ones is checked on the device (no host read) and accumulated, and ``check`` (called by the
    PGD loop at checkpoint boundaries and at the end) raises if they ever differed: the replay is exact or fails.
    Outside ``batch`` (``key`` None) ``lookup`` just computes.
    """

    def __init__(self) -> None:
        self._store: dict[Hashable, list[tuple[tuple, torch.Tensor, Any]]] = {}
        self._key: Hashable | None = None
        self._call = 0
        self._mismatch: torch.Tensor | None = None

    @contextlib.contextmanager
    def batch(self, key: Hashable) -> Iterator[None]:
        self._key, self._call = key, 0
        try:
            yield
        finally:
            self._key = None

    def lookup(self, signature: tuple, lengths: torch.Tensor, compute: Callable[[], T]) -> T:
        if self._key is None:
            return compute()
        calls = self._store.setdefault(self._key, [])
        i, self._call = self._call, self._call + 1
        if i == len(calls):
            value = compute()
            calls.append((signature, lengths.detach().clone(), value))
            return value
        sig, recorded, value = calls[i]
        if sig != signature or recorded.shape != lengths.shape or recorded.device != lengths.device:
            raise RuntimeError(
                f"length replay: call {i} of batch {self._key!r} is {signature}, recorded {sig}; "
                "the forward pass changed between steps"
            )
        differs = (recorded != lengths).any()
        self._mismatch = differs if self._mismatch is None else self._mismatch | differs
        return value

    def check(self) -> None:
        """One host read: raise if any replayed call saw lengths other than the recorded ones."""
        if self._mismatch is not None and bool(self._mismatch):
            raise RuntimeError("length replay: lengths changed between steps of a batch; replayed masks were wrong")
        self._mismatch = None


_REPLAY: LengthReplay | None = None


def _lookup(signature: tuple, lengths: torch.Tensor, compute: Callable[[], T]) -> T:
    return compute() if _REPLAY is None else _REPLAY.lookup(signature, lengths, compute)


def _replayed_make_pad_mask(original: Callable) -> Callable:
    def make_pad_mask(lengths, xs=None, length_dim=-1, maxlen=None):
        if not torch.is_tensor(lengths):
            return original(lengths, xs, length_dim, maxlen)
        sig = ("make_pad_mask", None if xs is None else (tuple(xs.shape), str(xs.device)), length_dim, maxlen)
        return _lookup(sig, lengths, lambda: original(lengths, xs, length_dim, maxlen))

    make_pad_mask.__wrapped__ = original
    return make_pad_mask


@contextlib.contextmanager
def static_lengths() -> Iterator[LengthReplay]:
    """Replay what depends only on lengths (see ``LengthReplay``): ESPnet's ``make_pad_mask`` as every loaded
    ``espnet2`` module imported it, and the STFT hooks' host reads. Patched for the block, restored afterwards."""
    global _REPLAY
    from espnet2.legacy.nets.pytorch_backend import nets_utils

    original = nets_utils.make_pad_mask
    wrapped = _replayed_make_pad_mask(original)
    patched = [
        m
        for name, m in list(sys.modules.items())
        if name.startswith("espnet2") and m is not None and getattr(m, "make_pad_mask", None) is original
    ]
    previous, _REPLAY = _REPLAY, LengthReplay()
    for m in patched:
        m.make_pad_mask = wrapped
    try:
        yield _REPLAY
    finally:
        for m in patched:
            m.make_pad_mask = original
        _REPLAY = previous


def stft_reflect_pre_hook(stft: torch.nn.Module, args: tuple) -> tuple | None:
    """Forward pre-hook for ``espnet2.layers.stft.Stft``: per-utterance reflection padding."""
    if len(args) < 2 or args[1] is None or not getattr(stft, "center", False) or args[0].dim() != 2:
        return None
    x, ilens = args[0], args[1]
    p = stft.n_fft // 2
    _, M = x.shape
    L = ilens.to(device=x.device, dtype=torch.long)

    def plan() -> tuple[bool, int]:
        short = L < M
        if not bool(short.any()):
            return False, M
        # Widen by p if some reflection would run past the tensor; then every row (the longest too) gets its
        # explicit reflection, since torch.stft would now reflect about the new edge M + p.
        return True, (M + p if int((L[short] + p).max()) > M else M)

    padded, M2 = _lookup(("stft_reflect", M, p), L, plan)
    if not padded:
        return None
    k = torch.arange(p, device=x.device)
    refl = x.gather(1, (L[:, None] - 2 - k).clamp(min=0))  # (B, p): x[L-2], x[L-3], ...
    body = x.masked_fill(torch.arange(M, device=x.device) >= L[:, None], 0.0)  # whatever is in the padding
    x = F.pad(body, (0, M2 - M + p)).scatter(1, L[:, None] + k, refl)[:, :M2]
    return (x, ilens) + tuple(args[2:])


def stft_trim_hook(stft: torch.nn.Module, args: tuple, out: tuple) -> tuple | None:
    """Forward hook: drop the frames the widening added (``ESPnetASRModel.encode`` asserts the encoder output
    is no longer than its longest length)."""
    output, olens = out
    if olens is None:
        return None
    longest = _lookup(("stft_trim",), olens, lambda: int(olens.max()))
    if output.size(1) <= longest:
        return None
    return output[:, :longest], olens


def frontend_stft(model: torch.nn.Module) -> torch.nn.Module:
    """The model's ``Stft`` module, or a clear error for a frontend these hooks do not know."""
    stft = getattr(getattr(model, "frontend", None), "stft", None)
    if stft is None or not hasattr(stft, "n_fft") or not hasattr(stft, "center"):
        raise ValueError(
            "batched attacks need ESPnet's DefaultFrontend (model.frontend.stft): this model's "
            f"frontend is {type(getattr(model, 'frontend', None)).__name__}; use batch size 1"
        )
    return stft


def n_fft(model: torch.nn.Module) -> int | None:
    """Samples in one STFT window of the model, the shortest input it can take (None: not an STFT frontend)."""
    stft = getattr(getattr(model, "frontend", None), "stft", None)
    return int(stft.n_fft) if stft is not None and hasattr(stft, "n_fft") else None


# ------------------------------------------------------------------ legacy relative-position self-attention
def _legacy_attention_modules(model: torch.nn.Module) -> list[torch.nn.Module]:
    from espnet2.legacy.nets.pytorch_backend.transformer.attention import LegacyRelPositionMultiHeadedAttention

    encoder = getattr(model, "encoder", None)
    if encoder is None:
        return []
    return [m for m in encoder.modules() if isinstance(m, LegacyRelPositionMultiHeadedAttention)]


def _store_lengths_pre_hook(module: torch.nn.Module, args: tuple, kwargs: dict) -> None:
    """Forward pre-hook: each utterance's own frame count, from the (B, 1, T) key mask."""
    mask = kwargs.get("mask", args[4] if len(args) > 4 else None)
    if mask is None:
        module._hne_lens = None
        return
    if mask.dim() != 3 or mask.size(1) != 1:
        raise ValueError(f"batch-invariant legacy attention expects a (B, 1, T) mask, got {tuple(mask.shape)}")
    module._hne_lens = mask[:, 0, :].sum(-1).long()


def legacy_rel_shift_per_utterance(self, x: torch.Tensor) -> torch.Tensor:
    """``LegacyRelPositionMultiHeadedAttention.rel_shift`` as each utterance would get it alone.

    The legacy encoding has positions 0..T-1 (T = the padded length), and its shift gives query i / key j <= i
    the score against position T-1-(i-j): a padded utterance of length L sees T-1-(i-j) where alone it sees
    L-1-(i-j) (the batch_decode docstring of espnet2's Speech2Text names this padding dependence). This
    gathers, per utterance, exactly the entries its own unpadded shift would pick: (i, L-1-(i-j)) for j <= i,
    0 for j = i+1, (i+1, j-i-2) above. With L = T it is the stock shift, bit for bit.
    """
    B, H, T1, T2 = x.shape
    lens = getattr(self, "_hne_lens", None)
    if lens is None or T1 != T2:
        return type(self).rel_shift(self, x)
    dev = x.device
    i = torch.arange(T1, device=dev)[:, None]
    j = torch.arange(T2, device=dev)[None, :]
    lower = j <= i
    row = torch.where(lower, i, i + 1).expand(T1, T2)
    L = lens.to(dev).clamp(1, T2)[:, None, None]
    col = torch.where(lower[None], L - 1 - (i - j)[None], (j - i - 2)[None])  # (B, T1, T2)
    zero = (j == i + 1)[None] | (row >= T1)[None] | (col < 0) | (col >= T2)
    flat = (row[None] * T2 + col).clamp(0, T1 * T2 - 1).reshape(B, 1, T1 * T2).expand(B, H, T1 * T2)
    out = x.reshape(B, H, T1 * T2).gather(2, flat).view(B, H, T1, T2)
    out = out.masked_fill(zero[:, None], 0.0)
    if self.zero_triu:
        out = out * torch.tril(torch.ones((T1, T2), device=dev, dtype=x.dtype), T2 - T1)[None, None]
    return out


def install_batch_invariance(model: torch.nn.Module) -> list:
    """Install the hooks (once: a second call is a no-op). Returns the hook handles.

    STFT: the two hooks above. Encoders with ``rel_pos_type: legacy`` (ESPnet's default, which the paper's
    pre-trained LibriSpeech conformer uses) also depend on the padded length through their relative-position
    shift: each such attention module gets a pre-hook that records the utterances' frame counts and a
    per-utterance ``rel_shift`` (``legacy_rel_shift_per_utterance``). ``rel_pos_type: latest`` needs nothing.
    """
    stft = frontend_stft(model)
    if getattr(stft, _MARK, None):
        return []
    handles = [stft.register_forward_pre_hook(stft_reflect_pre_hook), stft.register_forward_hook(stft_trim_hook)]
    for att in _legacy_attention_modules(model):
        handles.append(att.register_forward_pre_hook(_store_lengths_pre_hook, with_kwargs=True))
        att.rel_shift = types.MethodType(legacy_rel_shift_per_utterance, att)
    setattr(stft, _MARK, handles)
    return handles


def remove_batch_invariance(model: torch.nn.Module) -> None:
    stft = frontend_stft(model)
    for h in getattr(stft, _MARK, None) or []:
        h.remove()
    if hasattr(stft, _MARK):
        delattr(stft, _MARK)
    for att in _legacy_attention_modules(model):
        for name in ("rel_shift", "_hne_lens"):
            att.__dict__.pop(name, None)


@contextlib.contextmanager
def batch_invariant(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Hooks on for the block; hooks that were already installed stay installed afterwards."""
    handles = install_batch_invariance(model)
    try:
        yield model
    finally:
        if handles:
            remove_batch_invariance(model)
