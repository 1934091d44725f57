"""The ART engine: the paper's tool, ART 1.20.1's ``ProjectedGradientDescent``, around our ESPnet model.

``ESPnetARTRecognizer`` is an ART speech-recognition estimator (``SpeechRecognizerMixin, PyTorchEstimator``):
``loss_gradient`` is the input gradient of Eq. 4 (``loss.py``) in eval mode with frozen parameters, one
utterance at a time; ``predict`` is greedy Eq. 2 decoding (``decode.GreedyDecoder``). With a speech estimator,
ART always takes its numpy PGD path.

How ART is run (docs/design-notes.md §3):

- Every utterance is a (1, T) float32 entry of an object array: with 1-D entries ART's "L2" projection turns
  into a per-sample clip and does not bound ‖δ‖₂.
- ``ProjectedGradientDescent(norm=2, eps, eps_step, max_iter, targeted=True, num_random_init=0,
  batch_size=1)``. ``generate(x)`` re-centres the ε-ball on whatever x it is given, and has no starting point
  for speech estimators. So the attack is run step by step through the very method ``generate`` calls each
  iteration, ``pgd._attack._compute(x_adv, x_init, y, mask=None, eps, eps_step, project=True,
  random_init=False)``, with ``x_adv`` starting at x + δ0 and ``x_init`` the ORIGINAL x. With δ0 = 0 this is
  exactly ``generate`` (checked by a test); with δ0 from a previous milestone it continues that attack.
  Stepping also gives the in-job checkpoint and the NaN guard the same semantics as the native engine.
- ART replaces NaN gradient entries by 0 silently; ``loss_gradient`` here raises ``NaNGradientError`` naming
  the utterance, or (``on_nan="skip"``) returns a zero gradient for it and counts it: an empty step.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from hne_core.attack.loss import adversarial_losses, pad_targets
from hne_core.attack.pgd import (
    AttackResult,
    AttackSetupError,
    AttackSpec,
    AuxHead,
    frozen,
    guard_gradient,
    load_checkpoint,
    model_device,
    save_checkpoint,
)
from hne_core.heads import pad_waves

log = logging.getLogger(__name__)


def _estimator_base():
    from art.estimators.pytorch import PyTorchEstimator
    from art.estimators.speech_recognition.speech_recognizer import SpeechRecognizerMixin

    return SpeechRecognizerMixin, PyTorchEstimator


_Mixin, _PyTorchEstimator = _estimator_base()


class ESPnetARTRecognizer(_Mixin, _PyTorchEstimator):
    """ART estimator around an ESPnet ASR model; x: object array of (1, T) float32 waveforms; y: object array of
    target token-id sequences (or strings, with ``encoder``)."""

    estimator_params = _PyTorchEstimator.estimator_params

    def __init__(
        self,
        model,
        lambda_c: float,
        clip_values: tuple[float, float] | None = (-1.0, 1.0),
        device: str | torch.device | None = None,
        decoder: Callable | None = None,
        encoder=None,
        names: list[str] | None = None,
        on_nan: str = "error",
        aux: AuxHead | None = None,
    ):
        dev = model_device(model, device)
        super().__init__(
            model=model,
            clip_values=clip_values,
            channels_first=None,
            preprocessing_defences=None,
            postprocessing_defences=None,
            preprocessing=None,
            device_type="gpu" if dev.type == "cuda" else "cpu",
        )
        self._torch_device = dev
        self._model.to(dev).eval()
        self.lambda_c = float(lambda_c)
        self.aux = aux  # the adaptive attacker's μ·L_DIS, labels indexed like ``names``
        if aux is not None:
            aux.head.to(dev).eval()
        self.decoder = decoder
        self.encoder = encoder
        self.names = names
        self.on_nan = on_nan
        self.nan_rows: list[int] = []  # utterances whose gradient was zeroed by the last loss_gradient
        self.current: list[int] | None = None  # indices (into names) of the entries of the next call
        self.step = 0
        self.n_grad_calls = 0

    @property
    def input_shape(self) -> tuple:
        return (None,)  # variable length

    @property
    def sample_rate(self) -> int:
        return 16000

    def _ids(self, y) -> list[list[int]]:
        out = []
        for t in y:
            if isinstance(t, str):
                if self.encoder is None:
                    raise AttackSetupError("text targets need a TargetEncoder")
                t = self.encoder.encode(t)
            out.append([int(v) for v in t])
        return out

    def _batch(self, x) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        xb, lens = pad_waves([np.asarray(w, dtype=np.float32).reshape(-1) for w in x], self._torch_device)
        mask = torch.arange(xb.size(1), device=xb.device)[None, :] < lens[:, None]
        return xb, lens, mask

    def loss_gradient(self, x: np.ndarray, y: np.ndarray, **kwargs) -> np.ndarray:
        """∇_x of Eq. 4 for each entry; same structure and shapes as ``x``."""
        self.n_grad_calls += 1
        xb, lens, mask = self._batch(x)
        ys, ys_lens = pad_targets(self._ids(y), self._torch_device)
        rows = self.current if self.current is not None else list(range(len(x)))
        with frozen(self._model), self._frozen_head():
            xb.requires_grad_(True)
            losses = adversarial_losses(self._model, xb, lens, ys, ys_lens, self.lambda_c, head_term=self._term(rows))
            (grad,) = torch.autograd.grad(losses.sum(), xb)
        names = [self.names[i] if self.names else f"#{i}" for i in rows]
        grad, bad = guard_gradient(grad, mask, names, self.step, self.on_nan)
        self.nan_rows = [rows[r] for r in bad]
        g = grad.detach().cpu().numpy()
        if x.dtype == object:
            out = np.empty(len(x), dtype=object)
            for i, w in enumerate(x):
                out[i] = g[i, : int(lens[i])].reshape(np.shape(w)).astype(np.float32)
            return out
        return g.reshape(x.shape).astype(x.dtype)

    def _term(self, rows: list[int]):
        return None if self.aux is None else self.aux.term(rows, self._torch_device)

    def _frozen_head(self):
        return contextlib.nullcontext() if self.aux is None else frozen(self.aux.head)

    def compute_loss(self, x: np.ndarray, y: np.ndarray, **kwargs) -> np.ndarray:
        rows = self.current if self.current is not None else list(range(len(x)))
        out = []
        with torch.no_grad():
            for r, w, t in zip(rows, x, y):
                xb, lens, _ = self._batch([w])
                ys, ys_lens = pad_targets(self._ids([t]), self._torch_device)
                loss = adversarial_losses(self._model, xb, lens, ys, ys_lens, self.lambda_c, head_term=self._term([r]))
                out.append(float(loss[0]))
        return np.array(out)

    def predict(self, x: np.ndarray, batch_size: int = 1, **kwargs) -> np.ndarray:
        """Greedy transcripts, one utterance at a time (text with ``encoder``, else space-joined token ids)."""
        if self.decoder is None:
            raise AttackSetupError("predict needs a greedy decoder (decoder=GreedyDecoder(model, λC(i)))")
        out = []
        for w in x:
            ids = self.decoder(np.asarray(w, dtype=np.float32).reshape(-1))
            out.append(self.encoder.decode(ids) if self.encoder is not None else " ".join(map(str, ids)))
        return np.array(out)

    def get_activations(self, x, layer, batch_size, framework=False):
        raise NotImplementedError("activations are not used by the attack")

    def fit(self, x, y, **kwargs):
        raise NotImplementedError("the attacked model is not trained here")


def object_array(arrays) -> np.ndarray:
    out = np.empty(len(arrays), dtype=object)
    out[:] = list(arrays)
    return out


def make_art_pgd(estimator, eps: float, step_size: float, max_iter: int, targeted: bool = True):
    from art.attacks.evasion import ProjectedGradientDescent

    return ProjectedGradientDescent(
        estimator,
        norm=2,
        eps=eps,
        eps_step=step_size,
        max_iter=max(1, max_iter),
        targeted=targeted,
        num_random_init=0,
        batch_size=1,
        verbose=False,
    )


def pgd_art(
    model,
    spec: AttackSpec,
    device: str | torch.device | None = None,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 100,
    on_nan: str = "error",
    callback: Callable[[int], None] | None = None,
) -> AttackResult:
    """Run ``spec.steps`` steps of ART's PGD from ``spec.delta0`` (see the module docstring)."""
    if on_nan not in ("error", "skip"):
        raise AttackSetupError(f"on_nan must be 'error' or 'skip', got {on_nan!r}")
    t0 = time.perf_counter()
    est = ESPnetARTRecognizer(
        model,
        spec.lambda_c,
        clip_values=spec.clip_values if spec.clip else None,
        device=device,
        names=spec.names,
        on_nan=on_nan,
        aux=spec.aux,
    )
    pgd = make_art_pgd(est, spec.eps, spec.step_size, spec.steps, spec.targeted)
    attack = pgd._attack  # ProjectedGradientDescentNumpy: the numpy path ART takes for speech estimators
    x_init = object_array([w.reshape(1, -1) for w in spec.waves])
    y = object_array([np.asarray(t, dtype=np.int64) for t in spec.targets])
    fingerprint = spec.fingerprint("art", 1, targeted=None if spec.targeted else False)
    nan_skips = [0] * len(spec.waves)
    start = 0
    x_adv = object_array([(w + d).astype(np.float32).reshape(1, -1) for w, d in zip(spec.waves, spec.delta0)])
    state = load_checkpoint(checkpoint_path, fingerprint)
    if state is not None:  # ART's state is x_adv: kept as such, so a resumed run is bit-identical
        x_adv = object_array([a.numpy().reshape(1, -1) for a in state["x_adv"]])
        nan_skips, start = list(state["nan_skips"]), int(state["step"])
        log.info("resuming the ART attack from step %d of %d (%s)", start, spec.steps, checkpoint_path)

    # ART's own loop (ProjectedGradientDescentNumpy.generate, speech branch), one iteration at a time. The
    # hook on _compute_perturbation tells the estimator which utterance a batch of one holds.
    compute_perturbation = attack._compute_perturbation

    def tracked(batch, batch_labels, mask, decay=None, momentum=None):
        k = tracked.next
        est.current = list(range(k, k + len(batch)))
        tracked.next = k + len(batch)
        out = compute_perturbation(batch, batch_labels, mask, decay, momentum)
        for i in est.nan_rows:
            nan_skips[i] += 1
        return out

    attack._compute_perturbation = tracked
    momentum = np.zeros(x_adv.shape)
    try:
        for step in range(start, spec.steps):
            tracked.next = 0
            est.step = step + 1
            attack._i_max_iter = step
            x_adv = attack._compute(
                x_adv,
                x_init,
                y,
                None,
                spec.eps,
                spec.step_size,
                attack._project,
                False,
                decay=attack.decay,
                momentum=momentum,
            )
            done = step + 1
            if checkpoint_path and checkpoint_every > 0 and done % checkpoint_every == 0 and done < spec.steps:
                save_checkpoint(
                    checkpoint_path,
                    fingerprint,
                    done,
                    [torch.from_numpy(np.asarray(a, dtype=np.float32).reshape(-1)) for a in x_adv],
                    nan_skips,
                    key="x_adv",
                )
            if callback is not None:
                callback(done)
    finally:
        attack._compute_perturbation = compute_perturbation
    return AttackResult(
        deltas=[_delta(a, w) for a, w in zip(x_adv, spec.waves)],
        steps=spec.steps,
        nan_skips=nan_skips,
        resumed_from=start,
        seconds=time.perf_counter() - t0,
    )


def _delta(x_adv: np.ndarray, x: np.ndarray) -> np.ndarray:
    return (np.asarray(x_adv, dtype=np.float32).reshape(-1) - x).astype(np.float32)
