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
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from hne_core.atomic import atomic_path, write_text_atomic
from hne_core.attack.loss import AttackSetupError, adversarial_losses, pad_targets, set_label_smoothing
from hne_core.attack.pgd import check_constraints
from hne_core.attack.run import ENGINES, run_attack
from hne_core.attack.targets import TargetEncoder, assign_targets, read_targets
from hne_core.decoding import DEFAULT_BATCH_SIZE, DEFAULT_MODE, Transcriber
from hne_core.text import normalize_transcript

log = logging.getLogger(__name__)

STATE_FORMAT = "hne-attack-state-1"
META_DEFAULTS = {"target_length": "chars", "label_smoothing": "model", "autocast": None}
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


def save_state(path: str | Path, utt_ids: Sequence[str], targets: Sequence[str], deltas: Sequence[np.ndarray],
               meta: dict, nan_skips: Sequence[int]) -> list[np.ndarray]:
    """Write the quantised δ of every utterance (one .npz, atomically); returns the δ as stored."""
    codes, scales = zip(*(quantize(d) for d in deltas))
    stored = [dequantize(q, s) for q, s in zip(codes, scales)]
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, format=np.array(STATE_FORMAT), utt_ids=np.array(list(utt_ids)),
                            targets=np.array(list(targets)), lengths=np.array([len(d) for d in deltas]),
                            codes=np.concatenate(codes) if codes else np.zeros(0, np.int16),
                            scales=np.array(scales, dtype=np.float32), nan_skips=np.array(list(nan_skips)),
                            meta=np.array(json.dumps(meta, sort_keys=True)))
    return stored


def load_state(path: str | Path) -> dict:
    """``{"utt_ids", "targets", "deltas" (float32, as stored), "nan_skips", "meta"}`` of a state file."""
    with np.load(path, allow_pickle=False) as z:
        if str(z["format"]) != STATE_FORMAT:
            raise AttackSetupError(f"{path}: not an attack state file ({z['format']})")
        lengths = z["lengths"].astype(int)
        bounds = np.concatenate([[0], np.cumsum(lengths)])
        codes, scales = z["codes"], z["scales"]
        deltas = [dequantize(codes[a:b], s) for a, b, s in zip(bounds[:-1], bounds[1:], scales)]
        return {"utt_ids": [str(u) for u in z["utt_ids"]], "targets": [str(t) for t in z["targets"]],
                "deltas": deltas, "nan_skips": [int(n) for n in z["nan_skips"]], "meta": json.loads(str(z["meta"]))}


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


def attack_job(model_dir: str | Path, data_dir: str | Path, utt_ids: Sequence[str], targets_file: str | Path,
               lambda_c_infer: float, eps: float, step_size: float, steps: int, prev_state: str | Path | None,
               clip: bool, engine: str, device: str | None, batch_size: int, checkpoint_path: str | Path | None,
               out_csv: str | Path, out_state: str | Path, out_summary: str | Path, *, text_case: str = "upper",
               checkpoint_every: int = 100, on_nan: str = "error", threads: int | None = None,
               target_length: str = "chars", label_smoothing: float | str = "model",
               decoding: str = DEFAULT_MODE, decoding_batch_size: int = DEFAULT_BATCH_SIZE,
               batch_samples: int | None = None, autocast: str | None = None,
               model_weights: dict | None = None) -> dict:
    """Attack ``utt_ids`` of ``data_dir`` up to milestone ``steps``; write the CSV, summary and state.

    CSV columns: utt_id, accent_id, reference, target, hypothesis, target_wer, wer (per utterance, fractions),
    success (hypothesis == target), l2_norm, linf_norm, snr_db, adv_loss (Eq. 4 at x+δ), n_samples, nan_skips.
    Summary: adv_twer and wer (corpus WER ×100), n_utts, success_rate, nan_skipped_steps, n_utts_with_nan,
    steps, steps_run, resumed_from, the settings, and timing. Returns the summary.

    ``target_length`` (``attack.target_length``): how the closest-length target is found (``assign_targets``);
    ``label_smoothing`` (``attack.label_smoothing``): the decoder loss's smoothing, "model" for the model's own
    (``set_label_smoothing``). Both are settings of the attack: a previous milestone's state must share them.
    ``decoding`` (``decoding.mode``): how the hypotheses are decoded (``hne_core.decoding.DECODING_MODES``);
    ``decoding_batch_size`` (``decoding.batch_size``): x+δ decoded that many at a time in mode exact
    (``Transcriber.batch``, the tokens of one-at-a-time decoding).
    ``batch_samples`` (``attack.batch_samples``): the native engine's padded-sample budget per batch (round-off
    only, so not an attack setting); ``autocast`` (``attack.autocast``): the native forward+backward's precision,
    an attack setting (δ differs beyond round-off), so chained milestones must share it.
    ``model_weights``: the attacked model's ``lambda_a`` and ``lambda_c_train``, written into the summary so that
    the results read each cell's setting from its own files.
    """
    from hne_core.data.utterances import read_audio, read_data_dir
    from hne_core.model.evaluate import corpus_wer

    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise AttackSetupError(f"engine must be one of {ENGINES}, got {engine!r}")
    if threads:
        torch.set_num_threads(int(threads))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    utt_ids = [str(u) for u in utt_ids]
    if not utt_ids:
        raise AttackSetupError("no utterances to attack")
    if len(set(utt_ids)) != len(utt_ids):
        raise AttackSetupError("utterance ids repeat")
    by_id = {u.utt_id: u for u in read_data_dir(data_dir)}
    missing = [u for u in utt_ids if u not in by_id]
    if missing:
        raise AttackSetupError(f"{data_dir} has no utterance(s) {missing[:5]}")
    utts = [by_id[u] for u in utt_ids]
    waves = [read_audio(u.wav) for u in utts]
    refs = [normalize_transcript(u.reference, text_case) for u in utts]
    targets = assign_targets(refs, read_targets(targets_file), target_length)

    model_dir = Path(model_dir)
    s2t = _load_model(model_dir, lambda_c_infer, device)
    transcribe = Transcriber(s2t, lambda_c_infer, decoding)
    model = s2t.asr_model
    set_label_smoothing(model, label_smoothing)
    args = s2t.asr_train_args
    encoder = TargetEncoder(model.token_list, getattr(args, "bpemodel", None), getattr(args, "token_type", "bpe"))
    target_ids = [encoder.encode(t) for t in targets]  # SpellingError names the target

    meta = {"eps": float(eps), "step_size": float(step_size), "lambda_c_infer": float(lambda_c_infer),
            "clip": bool(clip), "engine": engine, "text_case": text_case, "target_length": target_length,
            "label_smoothing": label_smoothing, "autocast": autocast}
    delta0, prev_steps, prev_skips = None, 0, [0] * len(utts)
    if prev_state:
        prev = load_state(prev_state)
        # states written before a setting existed were made with its default
        prev_meta = {k: prev["meta"].get(k, META_DEFAULTS.get(k)) for k in meta}
        if prev["utt_ids"] != utt_ids or prev["targets"] != targets or prev_meta != meta:
            raise AttackSetupError(f"{prev_state} is the state of a different attack (utterances, targets or "
                                   f"settings {prev_meta} differ from {meta})")
        delta0, prev_steps, prev_skips = prev["deltas"], int(prev["meta"]["steps"]), prev["nan_skips"]
    if steps < prev_steps:
        raise AttackSetupError(f"milestone {steps} lies before the previous state's {prev_steps} steps")

    result = run_attack(engine, model, waves, target_ids, lambda_c_infer, eps, step_size, steps - prev_steps,
                        clip, delta0, batch_size=batch_size, device=device, checkpoint_path=checkpoint_path,
                        checkpoint_every=checkpoint_every, on_nan=on_nan, names=utt_ids,
                        batch_samples=batch_samples, autocast=autocast)
    attack_s = time.perf_counter() - t0

    # Quantise as stored, check the constraints on what is stored, then decode and score that.
    codes = [quantize(d) for d in result.deltas]
    stored = [dequantize(q, s) for q, s in codes]
    for name, x, d in zip(utt_ids, waves, stored):
        check_constraints(name, x, d, eps, clip)
    nan_skips = [a + b for a, b in zip(prev_skips, result.nan_skips)]

    losses = []
    dev = next(model.parameters()).device
    advs = [(x + d).astype(np.float32) for x, d in zip(waves, stored)]
    with torch.no_grad():
        hyps = [normalize_transcript(t, text_case) for t in transcribe.batch(advs, decoding_batch_size)]
        for adv, ids in zip(advs, target_ids):
            ys, ys_lens = pad_targets([ids], dev)
            speech = torch.from_numpy(adv)[None].to(dev)
            losses.append(float(adversarial_losses(model, speech, torch.tensor([len(adv)], device=dev), ys,
                                                   ys_lens, lambda_c_infer)[0]))

    frame = pd.DataFrame({
        "utt_id": utt_ids, "accent_id": [u.accent_id for u in utts], "reference": refs, "target": targets,
        "hypothesis": hyps,
        "target_wer": [corpus_wer([t], [h]) for t, h in zip(targets, hyps)],
        "wer": [corpus_wer([r], [h]) for r, h in zip(refs, hyps)],
        "success": [h == t for h, t in zip(hyps, targets)],
        "l2_norm": [float(np.linalg.norm(d.astype(np.float64))) for d in stored],
        "linf_norm": [float(np.abs(d).max()) for d in stored],
        "snr_db": [_snr_db(x, d) for x, d in zip(waves, stored)],
        "adv_loss": losses, "n_samples": [len(x) for x in waves], "nan_skips": nan_skips,
    })
    finite_snr = [s for s in frame["snr_db"] if math.isfinite(s)]
    summary = {
        **{k: float(v) for k, v in (model_weights or {}).items()},  # the model's λA, λC(t): tables read them
        "adv_twer": 100.0 * corpus_wer(targets, hyps), "wer": 100.0 * corpus_wer(refs, hyps),
        "n_utts": len(utts), "success_rate": float(frame["success"].mean()),
        "nan_skipped_steps": int(sum(nan_skips)), "n_utts_with_nan": int(sum(n > 0 for n in nan_skips)),
        "steps": int(steps), "steps_run": int(steps - prev_steps), "prev_steps": int(prev_steps),
        "resumed_from_checkpoint": int(result.resumed_from),
        **meta, "decoding": decoding, "batch_size": int(batch_size), "batch_samples": batch_samples,
        "device": str(device),
        "max_l2_norm": float(frame["l2_norm"].max()),
        "mean_snr_db": float(np.mean(finite_snr)) if finite_snr else None,
        "attack_seconds": attack_s, "total_seconds": time.perf_counter() - t0,
        "utt_steps_per_second": (len(utts) * (steps - prev_steps - result.resumed_from) / result.seconds
                                 if result.seconds > 0 and steps > prev_steps else None),
    }
    save_state(out_state, utt_ids, targets, result.deltas, {**meta, "steps": int(steps)}, nan_skips)
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    write_text_atomic(out_summary, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if checkpoint_path:
        Path(checkpoint_path).unlink(missing_ok=True)
    log.info("attack %s λC(i)=%s milestone %d: AdvTWER %.2f, WER %.2f over %d utterances", model_dir,
             lambda_c_infer, steps, summary["adv_twer"], summary["wer"], len(utts))
    return summary
