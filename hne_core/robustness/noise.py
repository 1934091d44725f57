"""The noise floor: random perturbations as large as the attack's (per utterance, the L2 norm of its final δ),
decoded by the attacked model.

Why: an attack that works should beat random noise of its own size by far: the checks pair the attack with the
noise utterance by utterance, in AdvTWER and in target-word hits (``report.noise_numbers``). Noise itself should
spell no more of the target than the clean audio does (noise does not spell lorem ipsum); against the references,
the noise's WER says how much of the attack's damage any perturbation of that size would do. Directions are isotropic
Gaussian, drawn from the config's seed, the draw and the utterance's position only, so every model gets the same
directions (scaled to its own δ's norm); x + δ is clipped to [-1, 1] like the attack (which can only shorten δ).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from hne_core.atomic import atomic_path, write_text_atomic
from hne_core.attack.inputs import read_utterances
from hne_core.attack.job import load_state
from hne_core.attack.loss import AttackSetupError
from hne_core.naming import SETTING_KEYS
from hne_core.robustness.victim import Victim, decode_all

log = logging.getLogger(__name__)

NOISE_COLUMNS = [*SETTING_KEYS, "draw", "utt_id", "reference", "target", "hypothesis", "l2_norm"]
BENIGN_DRAW = -1  # the rows of the clean audio


def noise_direction(seed: int, draw: int, position: int, n_samples: int) -> np.ndarray:
    """A unit-L2 Gaussian direction from (seed, draw, position) alone: the same for every model."""
    g = np.random.default_rng([int(seed), int(draw), int(position)]).standard_normal(n_samples)
    return g / np.linalg.norm(g)


def noisy(x: np.ndarray, norm: float, direction: np.ndarray, clip: bool) -> np.ndarray:
    """x + norm·direction, clipped to [-1, 1] when the attack clips (float32, as the attack's x + δ)."""
    out = x.astype(np.float64) + float(norm) * direction
    if clip:
        out = np.clip(out, -1.0, 1.0)
    return out.astype(np.float32)


@dataclass(frozen=True)
class NoiseDraws:
    """The noise floor's draws: how many per utterance, seeded by the run's ``seed``, clipped as the attack clips,
    and the targets matched as the attack matched them (``target_length``)."""

    draws: int
    seed: int
    clip: bool = True
    target_length: str = "chars"


def noise_job(
    victim: Victim,
    state_path: str | Path,
    targets_file: str | Path,
    noise: NoiseDraws,
    out_csv: str | Path,
    out_summary: str | Path,
    *,
    device: str | None = None,
    threads: int | None = None,
) -> dict:
    """Decode the clean audio (draw -1) and ``noise.draws`` noisy copies; write one row per (draw, utterance)."""
    utt_ids, text_case = [str(u) for u in victim.utt_ids], victim.text_case
    draws, seed = noise.draws, noise.seed
    utts = read_utterances(victim.data_dir, utt_ids, targets_file, text_case, noise.target_length)
    state = load_state(state_path)
    if state["utt_ids"] != utt_ids or state["targets"] != utts.targets:
        raise AttackSetupError(f"{state_path}: another attack's state (utterances or targets differ)")
    norms = [float(np.linalg.norm(d.astype(np.float64))) for d in state["deltas"]]
    transcribe = victim.transcriber(device, threads)
    setting = victim.setting()
    rows = []
    for draw in range(BENIGN_DRAW, int(draws)):
        if draw == BENIGN_DRAW:
            waves = list(utts.waves)
        else:
            waves = [
                noisy(x, n, noise_direction(seed, draw, i, len(x)), noise.clip)
                for i, (x, n) in enumerate(zip(utts.waves, norms))
            ]
        hyps = decode_all(transcribe, waves, text_case)
        for u, ref, target, hyp, x, w in zip(utt_ids, utts.references, utts.targets, hyps, utts.waves, waves):
            rows.append(
                {
                    **setting,
                    "draw": draw,
                    "utt_id": u,
                    "reference": ref,
                    "target": target,
                    "hypothesis": hyp,
                    "l2_norm": float(np.linalg.norm(w.astype(np.float64) - x)),
                }
            )
    frame = pd.DataFrame(rows, columns=NOISE_COLUMNS)
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    summary = {
        **{k: v for k, v in setting.items() if k != "tasks" or v},  # a summary names other tasks only (naming)
        "draws": int(draws),
        "seed": int(seed),
        "n_utts": len(utt_ids),
        "attack_l2_norms": norms,
        "attack_steps": int(state["meta"]["steps"]),
    }
    write_text_atomic(out_summary, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    log.info("noise floor of %s: %d draws of %d utterances", victim.model_dir, draws, len(utt_ids))
    return summary
