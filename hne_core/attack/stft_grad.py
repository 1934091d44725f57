"""The STFT's input gradient through ``irfft`` and overlap-add, for the attack's thousands of backward passes.

Why by hand: PyTorch differentiates ``torch.stft`` through the backward of its real-to-complex FFT, which builds the
full two-sided spectrum (a zero fill and a copy of every frame's half spectrum) and runs a complex FFT over it, then
copies the real part out and scatters the frames back. On the default model that is about a quarter of a PGD step
on the CPU, more than the whole encoder's matrix products. The same linear map is one inverse real FFT per frame
and one overlap-add (``F.fold``), a few times cheaper.

The map: a frame's spectrum is ``X[f] = Σ_n w[n] x[n] e^(-2πi f n / N)`` for ``f = 0 .. N/2``; with PyTorch's
convention for the gradient ``g`` of a complex output, the frame's input gradient is
``w[n] · Re Σ_f g[f] e^(+2πi f n / N)`` = ``w[n] · N · irfft(h)[n]``, where ``h`` is ``g`` with its interior bins
halved (``irfft`` counts each interior bin twice, for its conjugate twin, and reads only the real part of the DC
and Nyquist bins, which is what ``Re`` keeps of them). Frames then add up at their hop offsets.

The forward pass is ``torch.stft`` itself, on the signal padded the way ``torch.stft(center=True)`` pads it (the
same operations in the same order), so the spectrum is bit-identical; only the gradient is summed in another
order (a test bounds the difference by float32 round-off). Calls this does not cover (a window shorter than
``n_fft`` placed by torch, ``normalized``, two-sided or real-valued output, a 1-D or 3-D input) go to ``torch.stft``
unchanged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.nn.functional as F

_ORIGINAL_STFT = torch.stft


class _FramedRfft(torch.autograd.Function):
    """``torch.stft(xp, center=False)`` of an already padded (B, L) signal; backward by ``irfft`` + overlap-add."""

    @staticmethod
    def forward(ctx, xp: torch.Tensor, n_fft: int, hop: int, window: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(window)
        ctx.meta = (n_fft, hop, xp.size(-1))
        return _ORIGINAL_STFT(
            xp,
            n_fft,
            hop_length=hop,
            win_length=n_fft,
            window=window,
            center=False,
            normalized=False,
            onesided=True,
            return_complex=True,
        )

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor | None, None, None, None]:
        (window,) = ctx.saved_tensors
        n_fft, hop, length = ctx.meta
        if not ctx.needs_input_grad[0]:
            return None, None, None, None
        # (B, N/2 + 1, frames): bins on dim 1, the layout ``F.fold`` takes (B, N, frames), so nothing is transposed
        last = grad.size(1) - 1 if n_fft % 2 == 0 else grad.size(1)  # the Nyquist bin is not doubled by irfft
        h = torch.cat([grad[:, :1], 0.5 * grad[:, 1:last], grad[:, last:]], dim=1)
        frames = torch.fft.irfft(h, n=n_fft, dim=1) * n_fft  # (B, N, frames)
        if window is not None:
            frames = frames * window[:, None]
        out = F.fold(frames, output_size=(1, length), kernel_size=(1, n_fft), stride=(1, hop))
        return out.reshape(grad.size(0), length).to(grad.real.dtype), None, None, None


def stft(
    input: torch.Tensor,
    n_fft: int,
    hop_length: int | None = None,
    win_length: int | None = None,
    window: torch.Tensor | None = None,
    center: bool = True,
    pad_mode: str = "reflect",
    normalized: bool = False,
    onesided: bool | None = None,
    return_complex: bool | None = None,
    **kwargs,
) -> torch.Tensor:
    """``torch.stft`` with the fast input gradient where it applies (module docstring), else ``torch.stft``."""
    covered = (
        input.dim() == 2
        and input.requires_grad
        and return_complex is True
        and not normalized
        and onesided in (None, True)
        and not input.is_complex()
        and (win_length is None or win_length == n_fft)
        and (window is None or window.numel() == n_fft)
        and not kwargs
    )
    if not covered:
        return _ORIGINAL_STFT(
            input,
            n_fft,
            hop_length=hop_length,
            win_length=win_length,
            window=window,
            center=center,
            pad_mode=pad_mode,
            normalized=normalized,
            onesided=onesided,
            return_complex=return_complex,
            **kwargs,
        )
    hop = hop_length if hop_length is not None else n_fft // 4
    xp = input
    if center:  # what torch.stft does: pad a (1, B, T) view of the signal by n_fft // 2 on both sides
        p = n_fft // 2
        xp = F.pad(input.view(1, *input.shape), [p, p], pad_mode).view(input.size(0), -1)
    return _FramedRfft.apply(xp, n_fft, hop, window)


@contextlib.contextmanager
def fast_stft_gradient() -> Iterator[None]:
    """``torch.stft`` is ``stft`` above inside the block (ESPnet's ``Stft`` calls ``torch.stft`` by name)."""
    previous = torch.stft
    torch.stft = stft
    try:
        yield
    finally:
        torch.stft = previous
