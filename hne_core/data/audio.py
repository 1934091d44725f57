"""Audio conversion to the models' input: 16 kHz mono 16-bit PCM WAV, written atomically.

Decoding MP3 is left to ffmpeg (what ESPnet's Common Voice recipe uses); resampling of audio we already hold
in memory uses torchaudio's windowed-sinc resampler, which is deterministic, so the same seed gives the
same bytes.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import soundfile as sf

from hne_core.atomic import atomic_path

TARGET_RATE = 16000
# ffmpeg prefixes its messages with the address of the decoder context ("[mp3 @ 0x5651...]"), which differs from run to
# run; dropped.tsv quotes the message, so the address is removed to keep the same input giving the same bytes.
_FFMPEG_ADDRESS = re.compile(r" @ 0x[0-9a-fA-F]+")


class AudioError(RuntimeError):
    """Audio that cannot be used. The message names the file; ``reason`` is the drop-log reason
    (``missing_clip``, ``unreadable_audio``, ``empty_audio``, ``missing_tool``)."""

    def __init__(self, message: str, reason: str = "unreadable_audio"):
        super().__init__(message)
        self.reason = reason


def require_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AudioError(
            f"required program {name!r} is not on PATH (install.sh installs it from Debian)", reason="missing_tool"
        )
    return path


def resample(wave: np.ndarray, rate: int, target: int = TARGET_RATE) -> np.ndarray:
    if rate == target:
        return wave.astype(np.float32, copy=False)
    import torch
    import torchaudio.functional as F

    return F.resample(torch.from_numpy(np.ascontiguousarray(wave, dtype=np.float32)), rate, target).numpy()


def trim_silence(wave: np.ndarray, top_db: float, margin_s: float, rate: int = TARGET_RATE) -> np.ndarray:
    """Cut leading and trailing stretches quieter than ``top_db`` below the loudest frame, keeping ``margin_s``
    seconds on each side (librosa's ``effects.trim``, then the margin put back so a final consonant's decay is
    not cut off).

    Why: espeak-ng ends every sentence with about 0.35 s of fading silence (about 15 % of a 2-s utterance), which
    every later stage pays for: pre-training, fine-tuning and, above all, thousands of PGD steps per utterance."""
    import librosa

    if wave.size == 0:
        return wave
    _, (start, end) = librosa.effects.trim(wave, top_db=top_db, frame_length=512, hop_length=128)
    margin = int(round(margin_s * rate))
    return wave[max(0, start - margin) : min(wave.size, end + margin)]


def write_wav16(path: str | Path, wave: np.ndarray, rate: int = TARGET_RATE) -> int:
    """Write mono float audio in [-1, 1] as 16-bit PCM atomically; returns the number of samples."""
    if wave.ndim != 1 or wave.size == 0:
        raise AudioError(f"{path}: refusing to write empty or non-mono audio (shape {wave.shape})", "empty_audio")
    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(wave, -1.0, 1.0), rate, subtype="PCM_16", format="WAV")
    return int(wave.size)


def read_wav_bytes(data: bytes, source: str) -> tuple[np.ndarray, int]:
    try:
        wave, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError variants
        raise AudioError(f"{source}: unreadable audio ({exc})") from exc
    return wave.mean(axis=1), rate


def convert_to_wav16(src: str | Path, dst: str | Path, min_samples: int = 1) -> int:
    """Decode any ffmpeg-readable file (Common Voice MP3) to 16 kHz mono 16-bit WAV; returns the sample count.

    Raises AudioError naming ``src`` when it is missing, unreadable or shorter than ``min_samples``.
    """
    src = Path(src)
    if not src.is_file():
        raise AudioError(f"{src}: clip not found", reason="missing_clip")
    cmd = [
        require_tool("ffmpeg"),
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-i",
        str(src),
        "-ac",
        "1",
        "-ar",
        str(TARGET_RATE),
        "-c:a",
        "pcm_s16le",
        "-f",
        "wav",
        "-",
    ]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0:
        message = _FFMPEG_ADDRESS.sub("", proc.stderr.decode(errors="replace")).strip()[:300]
        raise AudioError(f"{src}: unreadable audio (ffmpeg: {message})")
    wave, rate = read_wav_bytes(proc.stdout, str(src))
    if wave.size < min_samples:
        raise AudioError(f"{src}: empty audio ({wave.size} samples, need at least {min_samples})", reason="empty_audio")
    return write_wav16(dst, wave, rate)


def wav_info(path: str | Path) -> tuple[int, int]:
    """(num_samples, sample_rate) of a WAV file, naming the file if it cannot be read."""
    try:
        info = sf.info(str(path))
    except Exception as exc:
        raise AudioError(f"{path}: unreadable audio ({exc})") from exc
    return int(info.frames), int(info.samplerate)
