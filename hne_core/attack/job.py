"""One attack job of the workflow: one model, one λC(i), one PGD milestone, a fixed set of test utterances.

``attack_job`` loads the exported model (``config.yaml`` + ``model.pth``, the stock ESPnet export of
``hne_core.model.export``) into ESPnet's own ``Speech2Text`` and decodes every milestone's x+δ greedily at λC(i)
exactly as the benign evaluation does, in ``decoding.mode`` (``hne_core.decoding``: ``exact`` Eq. 2, the default,
or ``espnet_beam1``, ``Speech2Text`` itself); the attack's gradients come from the same model object
(``speech2text.asr_model``), with the loss of Eq. 4 at the same λC(i). The decoding mode is not an attack
setting: δ does not depend on it, so a previous milestone's state chains whatever mode decoded it. Each utterance
gets the lorem-ipsum target closest to its reference in length. Paths inside ``config.yaml`` (bpe model, stats)
are resolved the way ESPnet resolves them: relative to the working directory, i.e. the workflow's.

Milestones chain: ``steps`` is the milestone (total PGD steps after this job); ``prev_state`` is the state file
of the previous milestone of the same (model, λC(i)) or None, and only ``steps - prev_steps`` steps are run,
from the previous δ, with the ε-ball still centred on the original audio.

The δ state is stored compactly: per utterance, int16 with one float32 scale (``max|δ| / 32767``), rounded
toward zero, so the stored δ never has a larger magnitude than the computed one in any sample and keeps
‖δ‖₂ ≤ ε and |x + δ| ≤ 1. The reported hypotheses, norms and SNRs are those of the stored δ, and the next
milestone starts from it: what is reported is what is chained (the quantisation step is at most
max|δ|/32767 per sample, ~1e-7 for typical δ). Size: 2 bytes a sample. The paper's full grid, 16 (model,
λC(i)) pairs × 1000 utterances × 4 milestones, at Common Voice's ~5.5 s mean clip (88k samples), is
16 × 1000 × 4 × 176 kB ≈ 11 GB (float32 would be ≈ 22.5 GB); the default config (16 pairs × 16 utterances ×
4 milestones × ~2 s) is ≈ 8 MB.

Every output is written atomically: the per-utterance CSV, the summary JSON and the state (.npz). The
constraints are checked on the stored δ before anything is written. The in-job checkpoint (exact float32
state, see ``pgd.py``) is deleted once the outputs are written.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hne_core.atomic import atomic_path, write_text_atomic
from hne_core.attack.inputs import Utterances, read_utterances
from hne_core.attack.loss import AttackSetupError, adversarial_losses, pad_targets, set_label_smoothing
from hne_core.attack.pgd import AuxHead, check_constraints, resolve_autocast
from hne_core.attack.run import ENGINES, run_attack
from hne_core.attack.targets import TargetEncoder
from hne_core.decoding import DEFAULT_BATCH_SIZE, DEFAULT_MODE, Transcriber, check_mode
from hne_core.text import normalize_transcript

log = logging.getLogger(__name__)

STATE_FORMAT = "hne-attack-state-1"
META_DEFAULTS = {
    "target_length": "chars",
    "label_smoothing": "model",
    "autocast": None,
    "targeted": True,
    "lambda_c_attack": None,
    "mu": 0.0,
}
_QMAX = 32767


# ------------------------------------------------------------------------------------------------ state file
def quantize(delta: np.ndarray) -> tuple[np.ndarray, np.float32]:
    """int16 codes and a float32 scale, rounded toward zero: |q·scale| <= |δ| in every sample."""
    delta = np.asarray(delta, dtype=np.float32)
    peak = float(np.abs(delta).max()) if delta.size else 0.0
    if peak == 0.0:
        return np.zeros(delta.shape, dtype=np.int16), np.float32(0.0)
    scale = np.float32(peak / _QMAX)
    q = np.trunc(delta.astype(np.float64) / float(scale)).clip(-_QMAX, _QMAX).astype(np.int16)
    over = np.abs(q.astype(np.float32) * scale) > np.abs(delta)  # float32 product rounded up: one quantum less
    q[over] -= np.sign(q[over]).astype(np.int16)
    return q, scale


def dequantize(q: np.ndarray, scale: np.float32) -> np.ndarray:
    return q.astype(np.float32) * np.float32(scale)


def save_state(
    path: str | Path,
    utt_ids: Sequence[str],
    targets: Sequence[str],
    codes: Sequence[tuple[np.ndarray, np.float32]],
    meta: dict,
    nan_skips: Sequence[int],
) -> None:
    """Write the quantised δ of every utterance (``quantize``'s codes and scales; one .npz, atomically)."""
    qs, scales = zip(*codes) if codes else ((), ())
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(
            fh,
            format=np.array(STATE_FORMAT),
            utt_ids=np.array(list(utt_ids)),
            targets=np.array(list(targets)),
            lengths=np.array([len(q) for q in qs]),
            codes=np.concatenate(qs) if qs else np.zeros(0, np.int16),
            scales=np.array(scales, dtype=np.float32),
            nan_skips=np.array(list(nan_skips)),
            meta=np.array(json.dumps(meta, sort_keys=True)),
        )


def load_state(path: str | Path) -> dict:
    """``{"utt_ids", "targets", "deltas" (float32, as stored), "nan_skips", "meta"}`` of a state file."""
    with np.load(path, allow_pickle=False) as z:
        if str(z["format"]) != STATE_FORMAT:
            raise AttackSetupError(f"{path}: not an attack state file ({z['format']})")
        lengths = z["lengths"].astype(int)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        codes, scales = z["codes"], z["scales"]
        deltas = [dequantize(codes[a:b], s) for a, b, s in zip(bounds[:-1], bounds[1:], scales)]
        return {
            "utt_ids": [str(u) for u in z["utt_ids"]],
            "targets": [str(t) for t in z["targets"]],
            "deltas": deltas,
            "nan_skips": [int(n) for n in z["nan_skips"]],
            "meta": json.loads(str(z["meta"])),
        }


# ------------------------------------------------------------------------------------------------ the job
def _snr_db(x: np.ndarray, delta: np.ndarray) -> float:
    noise = float(np.sum(delta.astype(np.float64) ** 2))
    return math.inf if noise == 0.0 else 10.0 * math.log10(float(np.sum(x.astype(np.float64) ** 2)) / noise)


def _load_model(model_dir: Path, lambda_c_infer: float, device: str):
    from hne_core.model.evaluate import load_speech2text

    for name in ("config.yaml", "model.pth"):
        if not (model_dir / name).is_file():
            raise AttackSetupError(f"{model_dir} lacks {name} (an exported model directory is expected)")
    s2t = load_speech2text(model_dir, lambda_c_infer, device)
    # ESPnet loads weights non-strictly: make sure every weight of the file landed in the model.
    state = torch.load(model_dir / "model.pth", map_location=device, weights_only=True)
    s2t.asr_model.load_state_dict(state, strict=True)
    s2t.asr_model.eval()
    return s2t


@dataclass(frozen=True)
class AttackSettings:
    """How every attack job of a run attacks and decodes, built once from ``config["attack"]`` (and
    ``decoding``, ``data.text_case``) and passed whole. ``chained()`` are the settings two chained milestones must
    share; the rest (batching, checkpoints, decoding) change round-off, speed or what is read off δ, not δ."""

    eps: float
    step_size: float
    clip: bool = True
    engine: str = "native"
    batch_size: int = 16
    batch_samples: int | None = None
    autocast: str | None = None
    checkpoint_every: int = 100
    on_nan: str = "error"
    target_length: str = "chars"
    label_smoothing: float | str = "model"
    text_case: str = "upper"
    decoding: str = DEFAULT_MODE
    decoding_batch_size: int = DEFAULT_BATCH_SIZE
    # False: the untargeted attack of the robustness checks: ascend Eq. 4's loss of each utterance's own
    # reference (the "target" of every output is then the reference, and success means leaving it).
    targeted: bool = True
    # The adaptive attacker (robustness checks): its own λC(a) for Eq. 4's CTC/decoder mix (None: the victim's
    # λC(i), the paper's attacker), and μ, the weight of the discriminator term μ·L_DIS against each utterance's
    # accent (``loss.HeadTerm``; 0: none). The victim still decodes at λC(i).
    lambda_c_attack: float | None = None
    mu: float = 0.0

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise AttackSetupError(f"engine must be one of {ENGINES}, got {self.engine!r}")
        check_mode(self.decoding)

    def attack_lambda_c(self, lambda_c_infer: float) -> float:
        """The λC of the attack's loss: the attacker's own λC(a), or the victim's λC(i)."""
        return float(lambda_c_infer if self.lambda_c_attack is None else self.lambda_c_attack)

    def chained(self, lambda_c_infer: float) -> dict:
        """The state file's ``meta``: what a previous milestone must have been attacked with. The adaptive
        attacker's weights appear only when they differ from the paper's attacker (whose states they then
        never chain with, nor it with theirs)."""
        adaptive = {}
        if self.attack_lambda_c(lambda_c_infer) != float(lambda_c_infer):
            adaptive["lambda_c_attack"] = self.attack_lambda_c(lambda_c_infer)
        if self.mu != 0.0:
            adaptive["mu"] = float(self.mu)
        return adaptive | {
            "eps": float(self.eps),
            "step_size": float(self.step_size),
            "lambda_c_infer": float(lambda_c_infer),
            "clip": bool(self.clip),
            "engine": self.engine,
            "text_case": self.text_case,
            "target_length": self.target_length,
            "label_smoothing": self.label_smoothing,
            "autocast": self.autocast,
            "targeted": bool(self.targeted),  # a targeted state never chains into an untargeted attack
        }


@dataclass(frozen=True)
class AttackJob:
    """What one milestone job reads: the exported model, the test data directory and the attacked utterances, the
    targets file (None for the untargeted attack), λC(i), the milestone ``steps``, and the previous milestone's
    state to continue from (None: δ = 0). ``model_weights``: the model's ``lambda_a`` and ``lambda_c_train``,
    written into the summary so that the results read each cell's setting from its own files."""

    model_dir: str | Path
    data_dir: str | Path
    utt_ids: Sequence[str]
    targets_file: str | Path | None
    lambda_c_infer: float
    steps: int
    prev_state: str | Path | None = None
    model_weights: Mapping[str, float | str] | None = None


@dataclass(frozen=True)
class AttackOutputs:
    """The files of one milestone; ``checkpoint`` (in-job, not an output) survives a killed job."""

    csv: str | Path
    state: str | Path
    summary: str | Path
    checkpoint: str | Path | None = None


@dataclass
class _Inputs:
    utts: Utterances
    target_ids: list[list[int]]
    model: torch.nn.Module
    transcribe: Transcriber


def _load(
    model_dir: Path,
    data_dir: str | Path,
    utt_ids: list[str],
    targets_file: str | Path | None,
    lambda_c_infer: float,
    settings: AttackSettings,
    device: str,
) -> _Inputs:
    """The utterances, their targets (spelled in the model's tokens) and the model. The targets are the
    closest-length lorem-ipsum sentences of ``targets_file``; for an untargeted attack, the references."""
    if settings.targeted and targets_file is None:
        raise AttackSetupError("a targeted attack needs a targets file")
    utts = read_utterances(
        data_dir, utt_ids, targets_file if settings.targeted else None, settings.text_case, settings.target_length
    )
    s2t = _load_model(model_dir, lambda_c_infer, device)
    model = s2t.asr_model
    set_label_smoothing(model, settings.label_smoothing)
    args = s2t.asr_train_args
    encoder = TargetEncoder(model.token_list, getattr(args, "bpemodel", None), getattr(args, "token_type", "bpe"))
    return _Inputs(
        utts,
        [encoder.encode(t) for t in utts.targets],  # SpellingError names the target
        model,
        Transcriber(s2t, lambda_c_infer, settings.decoding),
    )


def _discriminator_term(model_dir: Path, mu: float, accent_ids: list[int], device: str) -> AuxHead | None:
    """The adaptive attacker's μ·L_DIS: the accent head of the multi-task model kept beside the export
    (``hne_core.model.export``), against each utterance's accent; None for μ = 0."""
    if mu == 0.0:
        return None
    from hne_core.model.evaluate import load_mtl_model

    mtl = load_mtl_model(model_dir, device)
    head = None if mtl is None else getattr(mtl, "discriminator", None)
    if head is None:
        raise AttackSetupError(f"μ = {mu} needs the discriminator, but {model_dir} has no model with one (λA = 1)")
    return AuxHead(head, float(mu), tuple(int(a) for a in accent_ids))


def _resume(
    prev_state: str | Path | None, inputs: _Inputs, utt_ids: list[str], meta: dict, steps: int
) -> tuple[list[np.ndarray] | None, int, list[int]]:
    """(δ to start from, the steps it has had, NaN skips so far) of the previous milestone, or a fresh start."""
    delta0, prev_steps, prev_skips = None, 0, [0] * len(utt_ids)
    if prev_state:
        prev = load_state(prev_state)
        # a state file without a setting's key was made with the setting's default
        keys = (set(meta) | set(prev["meta"])) - {"steps"}
        prev_meta = {k: prev["meta"].get(k, META_DEFAULTS.get(k)) for k in keys}
        if (
            prev["utt_ids"] != utt_ids
            or prev["targets"] != inputs.utts.targets
            or prev_meta != {k: meta.get(k, META_DEFAULTS.get(k)) for k in keys}
        ):
            raise AttackSetupError(
                f"{prev_state} is the state of a different attack (utterances, targets or "
                f"settings {prev_meta} differ from {meta})"
            )
        delta0, prev_steps, prev_skips = prev["deltas"], int(prev["meta"]["steps"]), prev["nan_skips"]
    if steps < prev_steps:
        raise AttackSetupError(f"milestone {steps} lies before the previous state's {prev_steps} steps")
    return delta0, prev_steps, prev_skips


def _score(
    inputs: _Inputs,
    utt_ids: list[str],
    stored: list[np.ndarray],
    lambda_c_infer: float,
    settings: AttackSettings,
    nan_skips: list[int],
) -> pd.DataFrame:
    """Decode x + δ (δ as stored) and score it per utterance against the targets and the references."""
    from hne_core.model.evaluate import corpus_wer

    model = inputs.model
    dev = next(model.parameters()).device
    advs = [(x + d).astype(np.float32) for x, d in zip(inputs.utts.waves, stored)]
    losses = []
    with torch.no_grad():
        hyps = [
            normalize_transcript(t, settings.text_case)
            for t in inputs.transcribe.batch(advs, settings.decoding_batch_size)
        ]
        for adv, ids in zip(advs, inputs.target_ids):
            ys, ys_lens = pad_targets([ids], dev)
            speech = torch.from_numpy(adv)[None].to(dev)
            losses.append(
                float(
                    adversarial_losses(
                        model, speech, torch.tensor([len(adv)], device=dev), ys, ys_lens, lambda_c_infer
                    )[0]
                )
            )
    refs, targets = inputs.utts.references, inputs.utts.targets
    return pd.DataFrame(
        {
            "utt_id": utt_ids,
            "accent_id": inputs.utts.accent_ids,
            "reference": refs,
            "target": targets,
            "hypothesis": hyps,
            "target_wer": [corpus_wer([t], [h]) for t, h in zip(targets, hyps)],
            "wer": [corpus_wer([r], [h]) for r, h in zip(refs, hyps)],
            "success": [(h == t) == settings.targeted for h, t in zip(hyps, targets)],
            "l2_norm": [float(np.linalg.norm(d.astype(np.float64))) for d in stored],
            "linf_norm": [float(np.abs(d).max()) for d in stored],
            "snr_db": [_snr_db(x, d) for x, d in zip(inputs.utts.waves, stored)],
            "adv_loss": losses,
            "n_samples": [len(x) for x in inputs.utts.waves],
            "nan_skips": nan_skips,
        }
    )


def _summary(
    frame: pd.DataFrame,
    settings: AttackSettings,
    meta: dict,
    steps: int,
    prev_steps: int,
    result,
    device: str,
    attack_s: float,
    t0: float,
    model_weights: Mapping[str, float | str] | None,
) -> dict:
    from hne_core.model.evaluate import corpus_wer

    finite_snr = [s for s in frame["snr_db"] if math.isfinite(s)]
    n, ran = len(frame), steps - prev_steps - result.resumed_from
    return {
        # the model's λA, λC(t) and (naming.summary_weights) its tasks id: the tables read them
        **{k: v if k == "tasks" else float(v) for k, v in (model_weights or {}).items()},
        "adv_twer": 100.0 * corpus_wer(list(frame["target"]), list(frame["hypothesis"])),
        "wer": 100.0 * corpus_wer(list(frame["reference"]), list(frame["hypothesis"])),
        "n_utts": n,
        "success_rate": float(frame["success"].mean()),
        "nan_skipped_steps": int(frame["nan_skips"].sum()),
        "n_utts_with_nan": int((frame["nan_skips"] > 0).sum()),
        "steps": int(steps),
        "steps_run": int(steps - prev_steps),
        "prev_steps": int(prev_steps),
        "resumed_from_checkpoint": int(result.resumed_from),
        **meta,
        "decoding": settings.decoding,
        "batch_size": int(settings.batch_size),
        "batch_samples": settings.batch_samples,
        "device": str(device),
        "max_l2_norm": float(frame["l2_norm"].max()),
        "mean_snr_db": float(np.mean(finite_snr)) if finite_snr else None,
        "attack_seconds": attack_s,
        "total_seconds": time.perf_counter() - t0,
        "utt_steps_per_second": n * ran / result.seconds if result.seconds > 0 and steps > prev_steps else None,
    }


def attack_job(
    job: AttackJob,
    settings: AttackSettings,
    outputs: AttackOutputs,
    *,
    device: str | None = None,
    threads: int | None = None,
) -> dict:
    """Attack ``job.utt_ids`` of ``job.data_dir`` up to milestone ``job.steps``; write the CSV, summary and state.

    Load (utterances, targets, model) -> resume (the previous milestone's δ) -> run (``run_attack``) -> quantise
    once and check the constraints on what is stored -> score (decode x + δ) -> write. CSV columns: utt_id,
    accent_id, reference, target, hypothesis, target_wer, wer (per utterance, fractions), success (hypothesis ==
    target; for an untargeted attack, hypothesis != reference), l2_norm, linf_norm, snr_db, adv_loss (Eq. 4 at
    x+δ), n_samples, nan_skips. Summary: adv_twer and wer (corpus WER ×100), n_utts, success_rate,
    nan_skipped_steps, n_utts_with_nan, steps, steps_run, resumed_from, the settings, the model's weights, and
    timing. Returns the summary.
    """
    t0 = time.perf_counter()
    if threads:
        torch.set_num_threads(int(threads))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    utt_ids, lambda_c_infer, steps = [str(u) for u in job.utt_ids], job.lambda_c_infer, job.steps
    settings = replace(settings, autocast=resolve_autocast(settings.autocast, device))  # "auto" -> what runs
    inputs = _load(Path(job.model_dir), job.data_dir, utt_ids, job.targets_file, lambda_c_infer, settings, device)
    meta = settings.chained(lambda_c_infer)
    delta0, prev_steps, prev_skips = _resume(job.prev_state, inputs, utt_ids, meta, steps)

    result = run_attack(
        settings.engine,
        inputs.model,
        inputs.utts.waves,
        inputs.target_ids,
        settings.attack_lambda_c(lambda_c_infer),
        settings.eps,
        settings.step_size,
        steps - prev_steps,
        settings.clip,
        delta0,
        batch_size=settings.batch_size,
        device=device,
        checkpoint_path=outputs.checkpoint,
        checkpoint_every=settings.checkpoint_every,
        on_nan=settings.on_nan,
        names=utt_ids,
        batch_samples=settings.batch_samples,
        autocast=settings.autocast,
        targeted=settings.targeted,
        aux=_discriminator_term(Path(job.model_dir), settings.mu, inputs.utts.accent_ids, device),
    )
    attack_s = time.perf_counter() - t0

    # Quantise once; what is stored is what is checked, scored, reported and chained.
    codes = [quantize(d) for d in result.deltas]
    stored = [dequantize(q, s) for q, s in codes]
    for name, x, d in zip(utt_ids, inputs.utts.waves, stored):
        check_constraints(name, x, d, settings.eps, settings.clip)
    nan_skips = [a + b for a, b in zip(prev_skips, result.nan_skips)]
    frame = _score(inputs, utt_ids, stored, lambda_c_infer, settings, nan_skips)
    summary = _summary(frame, settings, meta, steps, prev_steps, result, device, attack_s, t0, job.model_weights)

    save_state(outputs.state, utt_ids, inputs.utts.targets, codes, {**meta, "steps": int(steps)}, nan_skips)
    with atomic_path(outputs.csv) as tmp:
        frame.to_csv(tmp, index=False)
    write_text_atomic(outputs.summary, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if outputs.checkpoint:
        Path(outputs.checkpoint).unlink(missing_ok=True)
    log.info(
        "%s attack %s λC(i)=%s milestone %d: AdvTWER %.2f, WER %.2f over %d utterances",
        "targeted" if settings.targeted else "untargeted",
        job.model_dir,
        lambda_c_infer,
        steps,
        summary["adv_twer"],
        summary["wer"],
        len(utt_ids),
    )
    return summary
