"""The native targeted L2 PGD engine: ART's ``ProjectedGradientDescent`` semantics, in torch on the device.

One step of ART 1.20.1's numpy PGD (``FastGradientMethod._compute`` with ``norm=2``, ``targeted=True``,
``num_random_init=0``), per utterance, in this order:

    g     = -∇_x L_ADV(x_adv, ỹ)               targeted: descend the loss towards the target
    g     = g / ‖g‖₂                            (0 if ‖g‖₂ = 0)
    x_adv = x_adv + α · g
    x_adv = clip(x_adv, -1, 1)                  if clipping is on (ART: the estimator's clip_values)
    δ     = x_adv - x ;  δ = δ · min(1, ε/‖δ‖₂)  projection onto the L2 ball around the ORIGINAL x
    x_adv = x + δ

Norms are over each utterance's own samples (an utterance is a (1, T) entry for ART; see art_engine.py).
ART clips before it projects; since the projection only shrinks δ towards x, which lies in [-1, 1], the result
satisfies both ‖δ‖₂ ≤ ε and |x + δ| ≤ 1. No random start.

Here utterances are batched by length (longest first) with zero padding; the STFT hooks of ``batching.py``
make a padded row's loss and gradient equal to its unpadded ones, the gradient is masked to the valid samples,
so the padded samples of δ stay exactly 0. The loss of a batch is the sum of per-utterance Eq. 4 losses
(``loss.py``), so each row's gradient is its own. Parameters are frozen during the attack.

``pgd_native(..., steps=n, delta0=δ)`` runs n steps from δ: a 500-step result passed as ``delta0`` to a
500-step call gives the 1000-step attack (the ball stays centred on the original x). With
``checkpoint_path`` a file holding δ and the step count is written atomically every ``checkpoint_every`` steps;
a rerun of the same call resumes from it (a checkpoint of a different attack is ignored, with a warning).
A non-finite gradient raises ``NaNGradientError`` naming the utterance and the first step it happened, or with
``on_nan="skip"`` makes that utterance's step empty (its gradient is zeroed, as ART does with NaN, so δ stays where
it is) and counts it.

Batches (``length_batches``): utterances sorted longest first, filled up to ``batch_size`` rows and, with
``batch_samples``, to at most that many padded samples (rows × the batch's longest utterance), so that a batch of
short utterances holds more of them than a batch of long ones. Every row's gradient is its own whatever the batch
(``batching.py``), so the batching changes δ only at round-off level (the same sums in another order).

No host synchronisation inside the step loop (what a GPU would otherwise wait for at every step): everything that
depends only on lengths and targets (masks, ``<sos>``/``<eos>`` targets, CTC's flat targets and its host-side
lengths, the frontend's and the encoder's padding masks via ``batching.static_lengths``) is computed at the first
step of a batch and reused; non-finite gradients are counted per row on the device, and read back only at
checkpoint boundaries and at the end, where an error still names the utterance and its first non-finite step.

``autocast`` (``None``, ``"bf16"``, ``"fp16"``): the model's forward and backward under ``torch.autocast``; the
input gradient, the PGD update, the clipping and the projection stay float32.

Two float32 speed-ups that change nothing but the order of sums (on by default; ``python -m hne_core.bench
attack`` measures each): ``fast_stft`` takes the STFT's input gradient through ``irfft`` and overlap-add
(``stft_grad.py``) instead of PyTorch's complex FFT over the full spectrum, and ``channels_last`` stores the 2-D
convolutions' weights channels-last for the block (oneDNN's convolutions, above all the backward pass of the
conv2d subsampling, run about twice as fast in that layout on the CPU).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from hne_core.atomic import atomic_path
from hne_core.attack.loss import AttackSetupError, HeadTerm, adversarial_losses, batch_targets, pad_targets
from hne_core.attack.stft_grad import fast_stft_gradient
from hne_core.batching import batch_invariant, n_fft, static_lengths
from hne_core.heads import check_heads, pad_waves

log = logging.getLogger(__name__)

FLOAT32_U = 2.0**-24  # unit round-off of float32
# ‖δ‖₂ ≤ ε·(1 + NORM_RTOL), on any CPU. The native engine's projection uses a correctly rounded norm: ≤ ε·(1 + 2u).
# ART's own projection sums the T squares in float32 in numpy's pairwise order, whose relative error is at most
# (16 + log2(T / 128) + 3)·u ≤ 40u for T ≤ 2^24 samples (17 min of 16 kHz audio); 64u covers both engines.
NORM_RTOL = 64 * FLOAT32_U
# |x + δ| ≤ 1 + CLIP_TOL: x + δ lies between x and the clipped x_adv, off by the rounding of d = x_adv - x and of
# d · scale (each at most u·|d| ≤ 2u, as |x|, |x_adv| ≤ 1).
CLIP_TOL = 4 * FLOAT32_U


class NaNGradientError(FloatingPointError):
    """The loss gradient of an utterance is not finite."""


@dataclass
class AttackResult:
    deltas: list[np.ndarray]  # float32, one per utterance, its own length
    steps: int  # steps this call ran in total (resumed included)
    nan_skips: list[int] = field(default_factory=list)  # steps skipped per utterance (on_nan="skip")
    resumed_from: int = 0  # steps restored from the in-job checkpoint
    seconds: float = 0.0  # wall time of this call


@dataclass(frozen=True)
class AuxHead:
    """The adaptive attacker's discriminator term (``loss.HeadTerm`` per batch): the model's discriminator head,
    μ, and each utterance's label in the attack's order."""

    head: torch.nn.Module
    weight: float
    labels: tuple[int, ...]

    def term(self, rows: Sequence[int], device: torch.device | str) -> HeadTerm:
        return HeadTerm(self.head, self.weight, torch.tensor([self.labels[i] for i in rows], device=device))


@dataclass
class AttackSpec:
    """What both engines attack, validated once."""

    waves: list[np.ndarray]
    targets: list[list[int]]
    names: list[str]
    delta0: list[np.ndarray]
    lambda_c: float
    eps: float
    step_size: float
    steps: int
    clip: bool
    clip_values: tuple[float, float] = (-1.0, 1.0)
    targeted: bool = True  # False: ascend the loss of ``targets`` (an untargeted attack on the references)
    aux: AuxHead | None = None  # the adaptive attacker's μ·L_DIS (None: Eq. 4 alone)

    def fingerprint(self, engine: str, batch_size: int, **settings: object) -> str:
        """Identifies the attack a checkpoint belongs to; ``settings`` that are None are left out, so that a
        setting at its default (None) leaves the fingerprint of an attack without it."""
        if self.aux is not None:
            settings = {**settings, "mu": self.aux.weight, "aux_labels": list(self.aux.labels)}
        h = hashlib.sha256()
        h.update(
            json.dumps(
                [
                    engine,
                    batch_size,
                    self.lambda_c,
                    self.eps,
                    self.step_size,
                    self.steps,
                    self.clip,
                    self.clip_values,
                    self.names,
                    self.targets,
                ]
            ).encode()
        )
        extra = {k: v for k, v in sorted(settings.items()) if v is not None}
        if extra:
            h.update(json.dumps(extra).encode())
        for w, d in zip(self.waves, self.delta0):
            h.update(w.tobytes())
            h.update(d.tobytes())
        return h.hexdigest()


def make_spec(
    model,
    waves: Sequence,
    targets: Sequence,
    lambda_c: float,
    eps: float,
    step_size: float,
    steps: int,
    clip: bool,
    delta0: Sequence | None = None,
    names: Sequence[str] | None = None,
    encoder=None,
    targeted: bool = True,
    aux: AuxHead | None = None,
) -> AttackSpec:
    """Validate the inputs of an attack: clear errors that name the utterance. ``aux`` with μ = 0 is no term."""
    if len(waves) == 0 or len(waves) != len(targets):
        raise AttackSetupError(f"{len(waves)} utterances but {len(targets)} targets")
    names = [str(n) for n in names] if names is not None else [f"#{i}" for i in range(len(waves))]
    if len(names) != len(waves):
        raise AttackSetupError(f"{len(waves)} utterances but {len(names)} names")
    if not eps > 0 or not step_size > 0 or steps < 0:
        raise AttackSetupError(f"need eps > 0, step_size > 0, steps >= 0; got {eps}, {step_size}, {steps}")
    check_heads(model, lambda_c)
    window = n_fft(model)
    xs: list[np.ndarray] = []
    for name, w in zip(names, waves):
        x = np.ascontiguousarray(np.asarray(w.detach().cpu() if torch.is_tensor(w) else w, dtype=np.float32))
        if x.ndim == 2 and x.shape[0] == 1:
            x = x[0]
        if x.ndim != 1:
            raise AttackSetupError(f"utterance {name}: expected a 1-D waveform, got shape {x.shape}")
        if window is not None and len(x) < window:
            raise AttackSetupError(
                f"utterance {name} has {len(x)} samples, shorter than one STFT window of "
                f"the model (n_fft = {window} samples)"
            )
        if not np.isfinite(x).all():
            raise AttackSetupError(f"utterance {name} has non-finite samples")
        if clip and float(np.abs(x).max()) > 1.0:
            raise AttackSetupError(f"utterance {name} has samples outside [-1, 1]; clipping x+δ needs x inside")
        xs.append(x)
    ids: list[list[int]] = []
    for name, t in zip(names, targets):
        if isinstance(t, str):
            if encoder is None:
                raise AttackSetupError("text targets need a TargetEncoder (encoder=...)")
            try:
                t = encoder.encode(t)
            except ValueError as err:
                raise AttackSetupError(f"utterance {name}: {err}") from err
        t = [int(v) for v in t]
        if not t:
            raise AttackSetupError(f"utterance {name}: empty target")
        vocab = len(model.token_list)
        if min(t) < 0 or max(t) >= vocab:
            raise AttackSetupError(f"utterance {name}: target ids outside the vocabulary of {vocab}")
        ids.append(t)
    if delta0 is None:
        d0 = [np.zeros_like(x) for x in xs]
    else:
        if len(delta0) != len(xs):
            raise AttackSetupError(f"{len(xs)} utterances but {len(delta0)} starting perturbations")
        d0 = []
        for name, x, d in zip(names, xs, delta0):
            d = np.ascontiguousarray(np.asarray(d, dtype=np.float32).reshape(-1))
            if d.shape != x.shape:
                raise AttackSetupError(f"utterance {name}: starting δ has {d.size} samples, the audio {x.size}")
            check_constraints(name, x, d, eps, clip)
            d0.append(d)
    aux = _check_aux(aux, names)
    return AttackSpec(
        xs,
        ids,
        names,
        d0,
        float(lambda_c),
        float(eps),
        float(step_size),
        int(steps),
        bool(clip),
        targeted=bool(targeted),
        aux=aux,
    )


def _check_aux(aux: AuxHead | None, names: Sequence[str]) -> AuxHead | None:
    """The discriminator term's labels, one valid class per utterance; μ = 0 is no term at all (the paper's
    attack, the same operations)."""
    if aux is None or aux.weight == 0.0:
        return None
    if aux.head is None:
        raise AttackSetupError(f"μ = {aux.weight} needs a discriminator head, but this model has none (λA = 1)")
    if len(aux.labels) != len(names):
        raise AttackSetupError(f"{len(names)} utterances but {len(aux.labels)} discriminator labels")
    classes = [m for m in aux.head.modules() if isinstance(m, torch.nn.Linear)][-1].out_features
    for name, label in zip(names, aux.labels):
        if not 0 <= int(label) < classes:
            raise AttackSetupError(f"utterance {name}: label {label} is not one of the head's {classes} classes")
    return replace(aux, labels=tuple(int(v) for v in aux.labels))


def check_constraints(name: str, x: np.ndarray, delta: np.ndarray, eps: float, clip: bool) -> None:
    """‖δ‖₂ ≤ ε·(1 + NORM_RTOL) and, with clipping, |x + δ| ≤ 1 + CLIP_TOL; δ finite."""
    if not np.isfinite(delta).all():
        raise AttackSetupError(f"utterance {name}: δ has non-finite samples")
    norm = float(np.linalg.norm(delta.astype(np.float64)))
    if norm > eps * (1.0 + NORM_RTOL):
        raise AttackSetupError(f"utterance {name}: ‖δ‖₂ = {norm:.7f} exceeds ε = {eps}")
    if clip:
        peak = float(np.abs(x.astype(np.float64) + delta).max())
        if peak > 1.0 + CLIP_TOL:
            raise AttackSetupError(f"utterance {name}: |x + δ| reaches {peak:.7f} > 1")


# ------------------------------------------------------------------------------------------------ checkpoint
def load_checkpoint(path: str | Path | None, fingerprint: str) -> dict | None:
    if not path or not Path(path).is_file():
        return None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if state.get("fingerprint") != fingerprint:
        log.warning("checkpoint %s belongs to a different attack (inputs or settings changed): ignored", path)
        return None
    return state


def save_checkpoint(
    path: str | Path, fingerprint: str, step: int, arrays: list[torch.Tensor], nan_skips: list[int], key: str = "deltas"
) -> None:
    """The attack state (float32, exact: δ for the native engine, x_adv for ART, whose state it is) and the
    step count, written atomically."""
    state = {
        "fingerprint": fingerprint,
        "step": int(step),
        "nan_skips": list(nan_skips),
        key: [d.detach().cpu().clone() for d in arrays],
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


# ------------------------------------------------------------------------------------------------ engine
@contextlib.contextmanager
def frozen(model: torch.nn.Module) -> Iterator[torch.nn.Module]:
    """Parameters do not require gradients inside the block (only the input gradient is computed)."""
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield model
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def channels_last(model: torch.nn.Module, enabled: bool = True) -> Iterator[torch.nn.Module]:
    """The model's 2-D convolutions hold their weights channels-last inside the block (then their inputs' layout
    follows), restored to the default layout afterwards. Same values, another order of sums."""
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)] if enabled else []
    for m in convs:
        m.to(memory_format=torch.channels_last)
    try:
        yield model
    finally:
        for m in convs:
            m.to(memory_format=torch.contiguous_format)


def model_device(model: torch.nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    return next(model.parameters()).device


def length_batches(lengths: Sequence[int], batch_size: int, batch_samples: int | None = None) -> list[list[int]]:
    """Indices grouped by length, longest first (ties by index), at most ``batch_size`` at a time and, with
    ``batch_samples``, at most that many padded samples a batch (rows × the first, longest row's length).

    Why a sample budget: a fixed count pads a batch of long utterances to a size that may not fit the device and
    leaves a batch of short ones small; a budget fills every batch to about the same memory and work. An
    utterance longer than the budget gets a batch of its own (it cannot be split)."""
    if batch_size < 1:
        raise AttackSetupError(f"batch size must be positive, got {batch_size}")
    if batch_samples is not None and batch_samples < 1:
        raise AttackSetupError(f"batch_samples must be positive, got {batch_samples}")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    if batch_samples is None:
        return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
    batches: list[list[int]] = []
    for i in order:
        b = batches[-1] if batches else None
        if b is not None and len(b) < batch_size and (len(b) + 1) * lengths[b[0]] <= batch_samples:
            b.append(i)
        else:
            batches.append([i])
    return batches


def l2_step(
    x: torch.Tensor,
    delta: torch.Tensor,
    grad: torch.Tensor,
    mask: torch.Tensor,
    eps: float,
    step_size: float,
    clip_values: tuple[float, float] | None,
    targeted: bool = True,
) -> torch.Tensor:
    """One PGD update of a batch from its loss gradient (not yet negated), ART's order; rows are utterances.

    The operations are ART's, one for one (``FastGradientMethod._compute_perturbation`` and
    ``art.utils.projection``): g / ‖g‖ in float32, the projection's scale ε / ‖d‖ and the product d · scale in
    float64, rounded once to float32. Only the two norms are summed differently: ART sums the squares in float32
    (numpy's pairwise order); here they are accumulated in float64 and rounded to float32, which makes them
    correctly rounded and independent of the CPU's vector width (torch's float32 reduction order follows the
    SIMD code path). So ‖δ‖₂ ≤ ε·(1 + 2u) holds on any machine for this engine.
    """
    g = -grad if targeted else grad  # (1 - 2 * targeted) in ART: descend towards a target, else ascend
    norm = torch.linalg.vector_norm(g, dim=1, keepdim=True, dtype=torch.float64).to(g.dtype)
    g = torch.where(norm > 0, g / torch.where(norm > 0, norm, torch.ones_like(norm)), torch.zeros_like(g))
    x_adv = (x + delta) + step_size * g
    if clip_values is not None:
        x_adv = torch.clamp(x_adv, clip_values[0], clip_values[1])
    d = x_adv - x
    dn = torch.linalg.vector_norm(d, dim=1, keepdim=True, dtype=torch.float64).to(d.dtype).double()
    scale = torch.where(
        dn > 0, torch.clamp(eps / torch.where(dn > 0, dn, torch.ones_like(dn)), max=1.0), torch.zeros_like(dn)
    )
    return torch.where(mask, (d.double() * scale).to(d.dtype), torch.zeros_like(d))


def guard_gradient(
    grad: torch.Tensor, mask: torch.Tensor, names: Sequence[str], step: int, on_nan: str
) -> tuple[torch.Tensor, list[int]]:
    """Zero the padding; raise on (or, with ``on_nan="skip"``, zero and report) rows that are not finite."""
    grad = torch.where(mask, grad, torch.zeros_like(grad))
    bad = (~torch.isfinite(grad)).any(dim=1)
    rows = [int(i) for i in torch.nonzero(bad).flatten().tolist()]
    if rows:
        if on_nan != "skip":
            raise NaNGradientError(
                f"non-finite loss gradient at PGD step {step} for utterance(s) {', '.join(names[i] for i in rows)}"
            )
        grad = torch.where(bad[:, None], torch.zeros_like(grad), grad)
    return grad, rows


AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
# CPU flags of native bf16 arithmetic (dot products of bf16 pairs into float32); without them oneDNN emulates bf16
# in float32 registers and autocast only adds conversions.
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16(cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether this CPU computes in bf16 natively (Linux's flags; False where they cannot be read)."""
    try:
        text = Path(cpuinfo).read_text()
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(f in flags for f in BF16_CPU_FLAGS)


def resolve_autocast(setting: str | None, device: str | torch.device) -> str | None:
    """``attack.autocast`` as a job runs it: ``"auto"`` is bf16 on a CPU with native bf16 arithmetic
    (``cpu_has_bf16``) and float32 (None) on any other device or CPU; other values are kept. The resolved value is
    what a milestone records, so a state attacked in bf16 never chains into a float32 milestone."""
    if setting != "auto":
        return setting
    return "bf16" if torch.device(device).type == "cpu" and cpu_has_bf16() else None


def autocast_context(device: torch.device, autocast: str | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` for the model's forward (``None``: float32, no autocast)."""
    if autocast is None:
        return contextlib.nullcontext()
    if autocast not in AUTOCAST_DTYPES:
        raise AttackSetupError(f"autocast must be null, 'bf16' or 'fp16', got {autocast!r}")
    return torch.autocast(device.type, dtype=AUTOCAST_DTYPES[autocast])


def nonfinite_rows(grad: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Zero the padding and the rows that are not finite, on the device: (gradient, (B,) bool of bad rows).
    A zeroed row's step is empty, as ART does with NaN (δ stays where it is)."""
    grad = torch.where(mask, grad, torch.zeros_like(grad))
    bad = (~torch.isfinite(grad)).any(dim=1)
    return torch.where(bad[:, None], torch.zeros_like(grad), grad), bad


def pgd_native(
    model,
    spec: AttackSpec,
    batch_size: int = 16,
    device: str | torch.device | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 100,
    on_nan: str = "error",
    callback: Callable[[int], None] | None = None,
    batch_samples: int | None = None,
    autocast: str | None = None,
    fast_stft: bool = True,
    channels_last_convs: bool = True,
) -> AttackResult:
    """Run ``spec.steps`` PGD steps from ``spec.delta0`` on the device, batched by length (``length_batches``).
    ``fast_stft`` and ``channels_last_convs``: the float32 speed-ups of the module docstring.

    The step loop reads nothing back from the device after a batch's first step (module docstring); the
    non-finite gradients it counts are read at checkpoint boundaries and at the end."""
    if on_nan not in ("error", "skip"):
        raise AttackSetupError(f"on_nan must be 'error' or 'skip', got {on_nan!r}")
    t0 = time.perf_counter()
    dev = model_device(model, device)
    amp = autocast_context(dev, autocast)  # validates the setting before any work
    model.to(dev).eval()
    n = len(spec.waves)
    fingerprint = spec.fingerprint(
        "native", batch_size, batch_samples=batch_samples, autocast=autocast, targeted=None if spec.targeted else False
    )  # targeted=None keeps a targeted attack's fingerprint what it is without the setting: its checkpoints resume
    groups = length_batches([len(w) for w in spec.waves], batch_size, batch_samples)
    deltas = [torch.from_numpy(d.copy()) for d in spec.delta0]
    nan_skips = [0] * n
    start = 0
    state = load_checkpoint(checkpoint_path, fingerprint)
    if state is not None:
        deltas, nan_skips, start = list(state["deltas"]), list(state["nan_skips"]), int(state["step"])
        log.info("resuming the attack from step %d of %d (%s)", start, spec.steps, checkpoint_path)
    clip_values = spec.clip_values if spec.clip else None

    batches = []
    for idx in groups:
        x, lens = pad_waves([spec.waves[i] for i in idx], dev)
        d, _ = pad_waves([deltas[i] for i in idx], dev)
        mask = torch.arange(x.size(1), device=dev)[None, :] < lens[:, None]
        ys, ys_lens = pad_targets([spec.targets[i] for i in idx], dev)
        batches.append(
            {
                "idx": idx,
                "x": x,
                "delta": d,
                "mask": mask,
                "lens": lens,
                "ys": ys,
                "ys_lens": ys_lens,
                "prepared": batch_targets(model, ys, ys_lens),
                "head_term": None if spec.aux is None else spec.aux.term(idx, dev),
                # per row, on the device: steps with a non-finite gradient, and the first such step
                "bad": torch.zeros(len(idx), dtype=torch.long, device=dev),
                "first_bad": torch.zeros(len(idx), dtype=torch.long, device=dev),
            }
        )

    def collect() -> list[torch.Tensor]:
        out: list[torch.Tensor] = [torch.empty(0)] * n
        for b in batches:
            d = b["delta"].detach().cpu()
            for r, i in enumerate(b["idx"]):
                out[i] = d[r, : len(spec.waves[i])].clone()
        return out

    def settle() -> list[int]:
        """Read the device-side counts back (a checkpoint boundary or the end): raise for a non-finite gradient
        unless skipping, naming each utterance with its first such step; else the skip counts per utterance."""
        counts = list(nan_skips)
        failed: list[tuple[int, str]] = []
        for b in batches:
            bad, first = b["bad"].tolist(), b["first_bad"].tolist()
            for r, i in enumerate(b["idx"]):
                counts[i] += bad[r]
                if bad[r]:
                    failed.append((first[r], spec.names[i]))
        if failed and on_nan != "skip":
            failed.sort()
            raise NaNGradientError(
                f"non-finite loss gradient at PGD step {failed[0][0]} for utterance(s) "
                + ", ".join(f"{name} (first at step {s})" for s, name in failed)
            )
        return counts

    invariant = batch_invariant(model) if batch_size > 1 else contextlib.nullcontext()
    stft_grad = fast_stft_gradient() if fast_stft else contextlib.nullcontext()
    head = frozen(spec.aux.head.to(dev).eval()) if spec.aux is not None else contextlib.nullcontext()
    layout = channels_last(model, channels_last_convs)
    with frozen(model), head, invariant, static_lengths() as replay, stft_grad, layout:
        for step in range(start, spec.steps):
            for k, b in enumerate(batches):
                x_adv = (b["x"] + b["delta"]).requires_grad_(True)
                with replay.batch(k), amp:
                    losses = adversarial_losses(
                        model, x_adv, b["lens"], b["ys"], b["ys_lens"], spec.lambda_c, b["prepared"], b["head_term"]
                    )
                (grad,) = torch.autograd.grad(losses.sum(), x_adv)
                grad, bad = nonfinite_rows(grad.float(), b["mask"])
                b["first_bad"] = torch.where(bad & (b["bad"] == 0), step + 1, b["first_bad"])
                b["bad"] = b["bad"] + bad.long()
                # a skipped row has a zero gradient: as in ART, its step is empty (δ unchanged up to round-off)
                b["delta"] = l2_step(
                    b["x"], b["delta"], grad, b["mask"], spec.eps, spec.step_size, clip_values, spec.targeted
                ).detach()
            done = step + 1
            if checkpoint_path and checkpoint_every > 0 and done % checkpoint_every == 0 and done < spec.steps:
                replay.check()
                save_checkpoint(checkpoint_path, fingerprint, done, collect(), settle())
            if callback is not None:
                callback(done)
        replay.check()
        nan_skips = settle()
    return AttackResult(
        deltas=[d.numpy().astype(np.float32) for d in collect()],
        steps=spec.steps,
        nan_skips=nan_skips,
        resumed_from=start,
        seconds=time.perf_counter() - t0,
    )
