"""What every robustness job shares beside the attacked utterances (``hne_core.attack.inputs``): a model
decoded exactly as the evaluation and the attack decode it (``hne_core.decoding.Transcriber`` in
``decoding.mode`` at the model's λC(i)), so that a check's hypotheses are comparable with the attack's."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from hne_core.decoding import DEFAULT_MODE, Transcriber
from hne_core.naming import tasks_id
from hne_core.text import normalize_transcript


@dataclass(frozen=True)
class Victim:
    """The model a robustness job decodes with and what it reads: the exported model, the test data directory and
    the attacked utterances, λC(i), the model's ``weights`` (its ``lambda_a``, ``lambda_c_train`` and, for a model
    with other tasks than the accent alone, ``tasks``: ``naming.summary_weights``; written into every row so that
    the results read each setting from its own files), and how references and hypotheses are normalised and
    decoded."""

    model_dir: str | Path
    data_dir: str | Path
    utt_ids: Sequence[str]
    lambda_c_infer: float
    weights: Mapping[str, object]
    text_case: str = "upper"
    decoding: str = DEFAULT_MODE

    def setting(self) -> dict[str, float | str]:
        """The columns of ``naming.SETTING_KEYS`` every row carries; ``tasks`` '' for the accent alone."""
        return {
            "lambda_a": float(self.weights["lambda_a"]),
            "lambda_c_train": float(self.weights["lambda_c_train"]),
            "lambda_c_infer": float(self.lambda_c_infer),
            "tasks": tasks_id(self.weights.get("tasks")),
        }

    def transcriber(self, device: str | None = None, threads: int | None = None) -> Transcriber:
        """The exported model, loaded strictly as the attack job loads it, decoding at λC(i)."""
        from hne_core.attack.job import _load_model  # the attack's own loader: every weight must land

        if threads:
            torch.set_num_threads(int(threads))
        device = device or ("cuda" if torch.cuda.is_available() else "cpu")
        s2t = _load_model(Path(self.model_dir), self.lambda_c_infer, device)
        return Transcriber(s2t, self.lambda_c_infer, self.decoding)


def decode_all(transcribe: Transcriber, waves: Sequence[np.ndarray], text_case: str) -> list[str]:
    """Hypotheses of each wave, one at a time (as evaluation and attack jobs decode), normalised."""
    with torch.no_grad():
        return [normalize_transcript(transcribe(np.asarray(w, dtype=np.float32)), text_case) for w in waves]
