"""The untargeted attack: L2 PGD that ascends Eq. 4's loss against the reference transcript (same ε, α, steps,
engines, batching, chaining and in-job checkpoint as the targeted attack), scored by WER against the references.

Why (Carlini et al. 2019): an untargeted attack is the easier goal; a model that resists a targeted attack but
whose WER barely moves under an untargeted one of the same budget, or falls below the targeted attack's damage,
points at an attack that is not working (masked or uninformative gradients) rather than at robustness.

The targets handed to the engine are the references' token ids (``TargetEncoder``); ``run_attack(...,
targeted=False)`` flips the step's sign (ART's ``targeted`` flag). The state file is the attack's own format
(``job.save_state``) with ``targeted: false`` in its settings, so a targeted state never chains into it.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hne_core.atomic import atomic_path, write_text_atomic
from hne_core.attack.job import dequantize, load_state, quantize, save_state
from hne_core.attack.loss import AttackSetupError, set_label_smoothing
from hne_core.attack.pgd import check_constraints
from hne_core.attack.run import run_attack
from hne_core.attack.targets import TargetEncoder
from hne_core.decoding import DEFAULT_MODE
from hne_core.robustness.victim import decode_all, load_victim, read_utterances

log = logging.getLogger(__name__)


def untargeted_job(
    model_dir: str | Path,
    data_dir: str | Path,
    utt_ids: Sequence[str],
    lambda_c_infer: float,
    weights: Mapping[str, float],
    eps: float,
    step_size: float,
    steps: int,
    prev_state: str | Path | None,
    clip: bool,
    engine: str,
    batch_size: int,
    checkpoint_path: str | Path | None,
    out_csv: str | Path,
    out_state: str | Path,
    out_summary: str | Path,
    *,
    text_case: str = "upper",
    checkpoint_every: int = 100,
    on_nan: str = "error",
    label_smoothing: float | str = "model",
    decoding: str = DEFAULT_MODE,
    batch_samples: int | None = None,
    autocast: str | None = None,
    device: str | None = None,
    threads: int | None = None,
) -> dict:
    """Ascend the loss of the references up to milestone ``steps`` (from ``prev_state``'s δ); write the CSV
    (utt_id, reference, hypothesis, wer, l2_norm), the summary (WER ×100 and the settings) and the state."""
    from hne_core.model.evaluate import corpus_wer

    t0 = time.perf_counter()
    utt_ids = [str(u) for u in utt_ids]
    utts = read_utterances(data_dir, utt_ids, None, text_case)
    s2t, transcribe = load_victim(model_dir, lambda_c_infer, decoding, device, threads)
    model = s2t.asr_model
    set_label_smoothing(model, label_smoothing)
    args = s2t.asr_train_args
    encoder = TargetEncoder(model.token_list, getattr(args, "bpemodel", None), getattr(args, "token_type", "bpe"))
    ref_ids = [encoder.encode(r) for r in utts.references]
    meta = {
        "eps": float(eps),
        "step_size": float(step_size),
        "lambda_c_infer": float(lambda_c_infer),
        "clip": bool(clip),
        "engine": engine,
        "text_case": text_case,
        "label_smoothing": label_smoothing,
        "autocast": autocast,
        "targeted": False,
    }
    delta0, prev_steps = None, 0
    if prev_state:
        prev = load_state(prev_state)
        prev_meta = {k: prev["meta"].get(k) for k in meta}
        if prev["utt_ids"] != utt_ids or prev_meta != meta:
            raise AttackSetupError(f"{prev_state} is the state of a different attack ({prev_meta} != {meta})")
        delta0, prev_steps = prev["deltas"], int(prev["meta"]["steps"])
    if steps < prev_steps:
        raise AttackSetupError(f"milestone {steps} lies before the previous state's {prev_steps} steps")
    result = run_attack(
        engine,
        model,
        utts.waves,
        ref_ids,
        lambda_c_infer,
        eps,
        step_size,
        steps - prev_steps,
        clip,
        delta0,
        batch_size=batch_size,
        device=device,
        checkpoint_path=checkpoint_path,
        checkpoint_every=checkpoint_every,
        on_nan=on_nan,
        names=utt_ids,
        batch_samples=batch_samples,
        autocast=autocast,
        targeted=False,
    )
    codes = [quantize(d) for d in result.deltas]  # quantised once: stored, checked, scored and chained
    stored = [dequantize(q, s) for q, s in codes]
    for name, x, d in zip(utt_ids, utts.waves, stored):
        check_constraints(name, x, d, eps, clip)
    hyps = decode_all(transcribe, [x + d for x, d in zip(utts.waves, stored)], text_case)
    frame = pd.DataFrame(
        {
            "utt_id": utt_ids,
            "reference": utts.references,
            "hypothesis": hyps,
            "wer": [corpus_wer([r], [h]) for r, h in zip(utts.references, hyps)],
            "l2_norm": [float(np.linalg.norm(d.astype(np.float64))) for d in stored],
        }
    )
    summary = {
        "lambda_a": float(weights["lambda_a"]),
        "lambda_c_train": float(weights["lambda_c_train"]),
        **meta,
        "steps": int(steps),
        "prev_steps": int(prev_steps),
        "decoding": decoding,
        "wer": 100.0 * corpus_wer(utts.references, hyps),
        "n_utts": len(utt_ids),
        "max_l2_norm": float(frame["l2_norm"].max()),
        "resumed_from_checkpoint": int(result.resumed_from),
        "nan_skipped_steps": int(sum(result.nan_skips)),
        "total_seconds": time.perf_counter() - t0,
    }
    save_state(out_state, utt_ids, utts.references, codes, {**meta, "steps": int(steps)}, result.nan_skips)
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    write_text_atomic(out_summary, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    if checkpoint_path:
        Path(checkpoint_path).unlink(missing_ok=True)
    log.info("untargeted %s λC(i)=%s milestone %d: WER %.2f", model_dir, lambda_c_infer, steps, summary["wer"])
    return summary
