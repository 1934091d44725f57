"""The attacked utterances as every attack-side job reads them (the attack itself, its untargeted variant, and the
robustness checks' transfer and noise jobs): one reader, so that all of them see the same audio, the same
normalised references and the same targets in the same order."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from hne_core.attack.loss import AttackSetupError
from hne_core.attack.targets import assign_targets, read_targets
from hne_core.text import normalize_transcript


@dataclass
class Utterances:
    """The attacked utterances in the attack's order: ids, accent ids, audio, normalised references and the
    lorem-ipsum target each gets (the same for every model: targets depend on the reference alone)."""

    utt_ids: list[str]
    accent_ids: list[int]
    waves: list[np.ndarray]
    references: list[str]
    targets: list[str]


def read_utterances(
    data_dir: str | Path,
    utt_ids: Sequence[str],
    targets_file: str | Path | None,
    text_case: str = "upper",
    target_length: str = "chars",
) -> Utterances:
    """``utt_ids`` of ``data_dir``, each with the closest-length target of ``targets_file`` (``target_length``);
    without a targets file the targets are the references (the untargeted attack moves away from them)."""
    from hne_core.data.utterances import read_audio, read_data_dir

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
    refs = [normalize_transcript(u.reference, text_case) for u in utts]
    targets = assign_targets(refs, read_targets(targets_file), target_length) if targets_file else list(refs)
    return Utterances(utt_ids, [u.accent_id for u in utts], [read_audio(u.wav) for u in utts], refs, targets)
