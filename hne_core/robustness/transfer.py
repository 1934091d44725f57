"""Transfer (Carlini et al. 2019, §5; Tramèr et al. 2020): every attacked model's final δ applied to the other
models of its tables, decoded by the victim; no new optimisation.

Why: a model whose gradients are masked resists its own white-box attack but falls to a perturbation found on
another model. Every attacked setting shares one utterance set and each utterance's target depends on its
reference alone, so source s's δ carries s's targets, which are the victim's targets too: AdvTWER(s -> v) and its
target-word hits are directly comparable with v's own white-box ones (the diagonal), utterance by utterance.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from hne_core.atomic import atomic_path
from hne_core.attack.inputs import read_utterances
from hne_core.attack.job import load_state
from hne_core.attack.loss import AttackSetupError
from hne_core.attack.pgd import check_constraints
from hne_core.naming import SETTING_KEYS, setting_of
from hne_core.robustness.victim import Victim, decode_all

log = logging.getLogger(__name__)

SOURCE_KEYS = tuple(f"source_{k}" for k in SETTING_KEYS)
TRANSFER_COLUMNS = [*SOURCE_KEYS, *SETTING_KEYS, "utt_id", "reference", "target", "hypothesis", "l2_norm"]


def transfer_job(
    victim: Victim,
    sources: Sequence[tuple[Mapping, str | Path]],
    out_csv: str | Path,
    *,
    eps: float,
    clip: bool,
    device: str | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Decode x + δ_s with the victim for every source ``(summary, state.npz)``; one CSV row per (source, utterance).

    Each source's δ is checked against ‖δ‖₂ ≤ ε and |x + δ| ≤ 1 first (what the source's job checked before
    writing it): a transferred δ is held to the same threat model as the victim's own."""
    utt_ids, text_case = [str(u) for u in victim.utt_ids], victim.text_case
    utts = read_utterances(victim.data_dir, utt_ids, None, text_case)
    transcribe = victim.transcriber(device, threads)
    rows = []
    for summary, state_path in sources:
        state = load_state(state_path)
        if state["utt_ids"] != utt_ids:
            raise AttackSetupError(f"{state_path}: attacked other utterances than {utt_ids[:3]}...")
        for u, x, d in zip(utt_ids, utts.waves, state["deltas"]):
            check_constraints(u, x, d, eps, clip)
        hyps = decode_all(transcribe, [x + d for x, d in zip(utts.waves, state["deltas"])], text_case)
        for u, ref, target, hyp, d in zip(utt_ids, utts.references, state["targets"], hyps, state["deltas"]):
            rows.append(
                {
                    **{f"source_{k}": v for k, v in zip(SETTING_KEYS, setting_of(summary))},
                    **victim.setting(),
                    "utt_id": u,
                    "reference": ref,
                    "target": target,
                    "hypothesis": hyp,
                    "l2_norm": float(np.linalg.norm(d.astype(np.float64))),
                }
            )
        log.info("transfer from %s: %d utterances decoded", state_path, len(utt_ids))
    frame = pd.DataFrame(rows, columns=TRANSFER_COLUMNS)
    with atomic_path(out_csv) as tmp:
        frame.to_csv(tmp, index=False)
    return frame
