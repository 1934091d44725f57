"""Reading back what the data stage wrote: the utterances of an ESPnet data directory and their audio.

The data stage's side of its contract with every later stage (benign evaluation, attacks, benchmarks): they
read utterances only through these functions, so the directory layout and the audio format (16 kHz mono, as
every source writes it) are known in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from hne_core.data.corpus import read_kaldi_table, sample_utterances


@dataclass(frozen=True)
class Utterance:
    utt_id: str
    wav: str
    reference: str
    accent_id: int


def read_data_dir(
    data_dir: str | Path, limit: int | None = None, seed: int = 0, composition: str = "balanced"
) -> list[Utterance]:
    """Utterances of an ESPnet data directory written by the data stage, in utt_id order; with ``limit``, a
    seeded sample of exactly that many, composed as ``evaluation.composition`` says (``sample_utterances``:
    not the first ids in order, which would all share one accent: ids lead with it). A ``limit`` above the
    split's size is an error naming both numbers."""
    d = Path(data_dir)
    wavs, texts, accents = (read_kaldi_table(d / name) for name in ("wav.scp", "text", "accent"))
    ids = (
        sample_utterances(accents, limit, seed, composition, what="evaluation.n_utterances", source=d / "accent")
        if limit
        else sorted(wavs)
    )
    return [Utterance(u, wavs[u], texts[u], int(accents[u])) for u in ids]


def read_audio(path: str) -> np.ndarray:
    """One utterance's samples; anything but 16 kHz mono (what the data stage writes) is an error naming the file."""
    wave, rate = sf.read(path, dtype="float32")
    if rate != 16000 or wave.ndim != 1:
        raise ValueError(f"{path}: expected 16 kHz mono, got {rate} Hz with shape {wave.shape}")
    return wave
