"""What every robustness job shares beside the attacked utterances (``hne_core.attack.inputs``): a model
decoded exactly as the evaluation and the attack decode it (``hne_core.decoding.Transcriber`` in
``decoding.mode`` at the model's λC(i)), so that a check's hypotheses are comparable with the attack's."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from hne_core.decoding import DEFAULT_MODE, Transcriber
from hne_core.text import normalize_transcript


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
