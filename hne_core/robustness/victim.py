"""What every robustness job shares: the attacked utterances read as the attack job reads them, and a model
decoded exactly as the evaluation and the attack decode it (``hne_core.decoding.Transcriber`` in
``decoding.mode`` at the model's λC(i)), so that a check's hypotheses are comparable with the attack's."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hne_core.attack.loss import AttackSetupError
from hne_core.attack.targets import assign_targets, read_targets
from hne_core.decoding import DEFAULT_MODE, Transcriber
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
    from hne_core.model.evaluate import read_audio, read_data_dir

    by_id = {u.utt_id: u for u in read_data_dir(data_dir)}
    missing = [u for u in utt_ids if u not in by_id]
    if missing:
        raise AttackSetupError(f"{data_dir} has no utterance(s) {missing[:5]}")
    utts = [by_id[str(u)] for u in utt_ids]
    refs = [normalize_transcript(u.reference, text_case) for u in utts]
    targets = assign_targets(refs, read_targets(targets_file), target_length) if targets_file else list(refs)
    return Utterances(
        [str(u) for u in utt_ids], [u.accent_id for u in utts], [read_audio(u.wav) for u in utts], refs, targets
    )


def load_victim(
    model_dir: str | Path,
    lambda_c_infer: float,
    decoding: str = DEFAULT_MODE,
    device: str | None = None,
    threads: int | None = None,
):
    """(Speech2Text, Transcriber) of an exported model, loaded strictly as the attack job loads it."""
    from hne_core.attack.job import _load_model  # the attack's own loader: every weight must land

    if threads:
        torch.set_num_threads(int(threads))
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    s2t = _load_model(Path(model_dir), lambda_c_infer, device)
    return s2t, Transcriber(s2t, lambda_c_infer, decoding)


def decode_all(transcribe: Transcriber, waves: Sequence[np.ndarray], text_case: str) -> list[str]:
    """Hypotheses of each wave, one at a time (as evaluation and attack jobs decode), normalised."""
    with torch.no_grad():
        return [normalize_transcript(transcribe(np.asarray(w, dtype=np.float32)), text_case) for w in waves]
