"""``listen/index.html``: hear and see the attacks of the last milestone, one self-contained page.

People judge an audio perturbation by ear. For a seeded handful of attacked utterances, the same for every table
column so that a listener compares settings on one clip, the page holds the clean clip, the adversarial clip
x + δ of each column and its δ alone, each as an audio player and a spectrogram, with the reference, the target,
each column's hypothesis, and the utterance's SNR, PESQ (wide band) and STOI (``perceptual``).

Self-contained: audio as 16 kHz int16 WAV and spectrograms as PNG, both base64 ``data:`` URIs; no script, no
external style sheet, so the page opens from a report, a mail or a laptop without the run. δ alone is far too
quiet to hear next to speech (ε = 2 over 2 s is about -40 dBFS RMS), so it is played amplified by
``delta_gain_db``, lowered for a clip whose amplified peak would clip, and the page says the gain of every clip.
The spectrograms of a row share one colour scale (dB against the clean clip's peak), δ's unamplified, so its
level against the speech is what is seen.
"""

from __future__ import annotations

import base64
import html
import io
import math
import wave
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from hne_core.results.aggregate import ResultsError, Setting, setting_header, setting_rows
from hne_core.results.perceptual import SAMPLE_RATE, median_frame

N_FFT, HOP = 512, 128  # 32 ms windows, 8 ms hop at 16 kHz: the usual speech spectrogram
DYNAMIC_RANGE_DB = 90.0  # colour scale floor below the clean clip's peak: covers δ at 20-40 dB below speech
CLIP_PEAK = 32767 / 32768  # the largest amplitude an int16 WAV holds


# ------------------------------------------------------------------------------------------------ selection
def choose_utterances(utt_ids: Sequence[str], n: int, seed: int) -> list[str]:
    """``n`` of the attacked utterances (all of them if fewer), drawn with ``seed``, in the attack's order."""
    k = min(int(n), len(utt_ids))
    picks = np.random.default_rng(seed).choice(len(utt_ids), size=k, replace=False)
    return [utt_ids[i] for i in sorted(picks)]


# ------------------------------------------------------------------------------------------------ audio and images
def wav_bytes(samples: np.ndarray) -> bytes:
    """16 kHz mono int16 WAV; samples beyond ±1 would wrap, so they are an error, not silently clipped."""
    x = np.asarray(samples, dtype=np.float64)
    if x.size and float(np.abs(x).max()) > 1.0 + 1e-6:
        raise ResultsError(f"audio peak {float(np.abs(x).max()):.3f} exceeds 1: it would clip in int16")
    q = np.clip(np.round(x * 32767.0), -32767, 32767).astype("<i2")
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(SAMPLE_RATE)
        w.writeframes(q.tobytes())
    return buf.getvalue()


def data_uri(mime: str, payload: bytes) -> str:
    return f"data:{mime};base64,{base64.b64encode(payload).decode('ascii')}"


def amplify(delta: np.ndarray, gain_db: float) -> tuple[np.ndarray, float]:
    """δ times ``gain_db`` (in dB), lowered just enough that the peak stays below int16's full scale; returns the
    amplified δ and the gain in dB actually applied."""
    peak = float(np.abs(delta).max()) if delta.size else 0.0
    gain = 10.0 ** (gain_db / 20.0)
    if peak > 0.0 and peak * gain > CLIP_PEAK:
        gain = CLIP_PEAK / peak
    return (np.asarray(delta, dtype=np.float64) * gain), 20.0 * math.log10(gain)


def power_db(samples: np.ndarray) -> np.ndarray:
    """|STFT|² in dB (Hann window, ``N_FFT``/``HOP``), frequency x frames; silence floors at -200 dB."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < N_FFT:
        x = np.pad(x, (0, N_FFT - len(x)))
    n_frames = 1 + (len(x) - N_FFT) // HOP
    idx = np.arange(N_FFT)[None, :] + HOP * np.arange(n_frames)[:, None]
    spec = np.abs(np.fft.rfft(x[idx] * np.hanning(N_FFT), axis=1)) ** 2
    return 10.0 * np.log10(np.maximum(spec.T, 1e-20))


def spectrogram_png(samples: np.ndarray, top_db: float) -> bytes:
    """A small spectrogram (0-8 kHz) with the colour scale [top_db - DYNAMIC_RANGE_DB, top_db]."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    power = power_db(samples)
    seconds = len(samples) / SAMPLE_RATE
    fig, ax = plt.subplots(figsize=(3.4, 1.3), dpi=80)
    ax.imshow(
        power,
        origin="lower",
        aspect="auto",
        cmap="magma",
        vmin=top_db - DYNAMIC_RANGE_DB,
        vmax=top_db,
        extent=(0.0, seconds, 0.0, SAMPLE_RATE / 2000.0),
        interpolation="nearest",
    )
    ax.set_xlabel("s", fontsize=7, labelpad=0)
    ax.set_ylabel("kHz", fontsize=7, labelpad=0)
    ax.tick_params(labelsize=6, length=2, pad=1)
    fig.subplots_adjust(left=0.11, right=0.99, top=0.97, bottom=0.2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()


# ------------------------------------------------------------------------------------------------ the page
@dataclass(frozen=True)
class Column:
    """One table column at the last milestone: its setting, its label(s), its δ and its utterances.csv rows."""

    setting: Setting
    label: str
    deltas: Mapping[str, np.ndarray]
    rows: pd.DataFrame  # the attack's utterances.csv, indexed by utt_id


_STYLE = """
body{font-family:sans-serif;margin:1.5em;max-width:1500px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:2em;border-top:2px solid #888;padding-top:.6em}
table{border-collapse:collapse}td,th{padding:4px 8px;border-bottom:1px solid #ccc;vertical-align:top;text-align:left}
th{background:#f0f0f0}td.num{text-align:right;white-space:nowrap}
.clip{display:inline-flex;flex-direction:column;align-items:flex-start;gap:2px;width:272px}
.clip audio{width:272px;height:32px}.clip img{width:272px;height:104px}.note{font-size:.8em;color:#555}
.ok{color:#a00;font-weight:bold}
.text{font-family:monospace;font-size:.9em;overflow-wrap:anywhere}td.text{max-width:320px}.head{display:flex;gap:1.5em;align-items:flex-start;margin-bottom:.8em}
"""


def _clip(samples: np.ndarray, top_db: float, caption: str, played: np.ndarray | None = None) -> str:
    """An audio player (``played``, default the samples) above the spectrogram of ``samples``."""
    audio = samples if played is None else played
    return (
        f'<div class="clip"><audio controls preload="auto" data-samples="{len(audio)}" '
        f'src="{data_uri("audio/wav", wav_bytes(audio))}"></audio>'
        f'<img alt="spectrogram: {html.escape(caption)}" '
        f'src="{data_uri("image/png", spectrogram_png(samples, top_db))}">'
        f'<span class="note">{html.escape(caption)}</span></div>'
    )


def _num(value: float, decimals: int) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "∞" if math.isinf(value) else f"{value:.{decimals}f}"


def _scores(perceptual: pd.DataFrame, setting: Setting, steps: int, utt_id: str) -> dict:
    key = (perceptual["utt_id"] == utt_id) & (perceptual["steps"] == steps) & setting_rows(perceptual, setting)
    rows = perceptual[key]
    if len(rows) != 1:
        raise ResultsError(f"{len(rows)} perceptual rows of {utt_id} at {setting.spelled}, PGD-{steps}")
    return rows.iloc[0].to_dict()


def _medians_table(perceptual: pd.DataFrame, columns: Sequence[Column], steps: int) -> str:
    frame = median_frame(perceptual[perceptual["steps"] == steps])
    by_setting = {Setting.of(r): r for r in frame.to_dict("records")}
    body = []
    for c in columns:
        r = by_setting[c.setting]
        body.append(
            f"<tr><td>{html.escape(c.setting.short)}</td><td>{html.escape(c.label)}</td>"
            f'<td class="num">{_num(r["snr_db"], 2)}</td><td class="num">{_num(r["pesq_wb"], 2)}</td>'
            f'<td class="num">{_num(r["stoi"], 3)}</td><td class="num">{r["n_utts"]}</td>'
            f'<td class="num">{r["pesq_unscored"]} / {r["stoi_unscored"]}</td></tr>'
        )
    return (
        f"<table><tr><th>{html.escape(setting_header(c.setting for c in columns))}</th><th>column</th>"
        "<th>SNR (dB)</th><th>PESQ-WB</th><th>STOI</th>"
        "<th>utterances</th><th>not scored (PESQ / STOI)</th></tr>\n" + "\n".join(body) + "</table>"
    )


def _utterance_section(
    utt_id: str, clean: np.ndarray, columns: Sequence[Column], perceptual: pd.DataFrame, steps: int, gain_db: float
) -> str:
    first = columns[0].rows.loc[utt_id]
    peak_db = float(power_db(clean).max())
    rows = []
    for c in columns:
        row, delta = c.rows.loc[utt_id], c.deltas[utt_id]
        if row["reference"] != first["reference"]:
            raise ResultsError(f"{utt_id}: the columns' references differ")
        loud, applied = amplify(delta, gain_db)
        limited = " (lowered from the page's gain: it would clip)" if applied < gain_db - 1e-9 else ""
        s = _scores(perceptual, c.setting, steps, utt_id)
        reached = ' <span class="ok">= target</span>' if row["hypothesis"] == row["target"] else ""
        reasons = "; ".join(e for e in (s["pesq_error"], s["stoi_error"]) if e)
        rows.append(
            f'<tr><td><b>{html.escape(c.label)}</b><br><span class="note">{html.escape(c.setting.short)}</span>'
            f'</td><td class="text">{html.escape(str(row["hypothesis"]))}{reached}'
            + (f'<br><span class="note">{html.escape(reasons)}</span>' if reasons else "")
            + f'</td><td class="num">{_num(s["snr_db"], 1)} dB<br>PESQ {_num(s["pesq_wb"], 2)}<br>'
            f"STOI {_num(s['stoi'], 3)}<br>‖δ‖₂ {float(row['l2_norm']):.3f}</td>"
            f"<td>{_clip((clean + delta).astype(np.float64), peak_db, 'x + δ')}</td>"
            f"<td>{_clip(delta, peak_db, f'δ, played {applied:+.1f} dB{limited}', played=loud)}</td></tr>"
        )
    return (
        f'<h2 id="{html.escape(utt_id)}">{html.escape(utt_id)}</h2>\n'
        f'<div class="head">{_clip(clean, peak_db, "x, the clean clip")}'
        f'<p>reference: <span class="text">{html.escape(str(first["reference"]))}</span><br>'
        f'target: <span class="text">{html.escape(str(first["target"]))}</span></p></div>\n'
        "<table><tr><th>column</th><th>hypothesis on x + δ</th><th>measures</th><th>adversarial x + δ</th>"
        "<th>perturbation δ (amplified)</th></tr>\n" + "\n".join(rows) + "</table>"
    )


def listen_page(
    columns: Sequence[Column],
    clean: Mapping[str, np.ndarray],
    perceptual: pd.DataFrame,
    utt_ids: Sequence[str],
    n_attacked: int,
    steps: int,
    epsilon: float,
    gain_db: float,
    seed: int,
    note: str = "",
) -> str:
    """The whole page for the chosen ``utt_ids`` (``choose_utterances``) at milestone ``steps``."""
    if not columns:
        raise ResultsError("no table columns to listen to")
    sections = [
        _utterance_section(u, np.asarray(clean[u], dtype=np.float64), columns, perceptual, steps, gain_db)
        for u in utt_ids
    ]
    intro = (
        f"<p>The attacks of every table column at the last milestone, PGD-{steps} (L2 PGD, ε = {epsilon:g}): "
        f"{len(utt_ids)} of the {n_attacked} attacked test utterances, drawn with seed {seed}, the same for every "
        "column. Each row: the adversarial clip x + δ and the perturbation δ alone, <b>played amplified by "
        f"{gain_db:+.1f} dB</b> (×{10 ** (gain_db / 20):.1f} in amplitude; lowered where a clip would clip, as "
        "said under it). Spectrograms: 0-8 kHz, one colour scale per utterance (dB, the clean clip's peak at the "
        f"top, {DYNAMIC_RANGE_DB:.0f} dB range), δ unamplified. SNR = 10·log10(Σx²/Σδ²); PESQ = ITU-T P.862.2 "
        "wide band, 1-4.64 (4.64: indistinguishable from x); STOI 0-1; each of x + δ against x.</p>"
    )
    if note:
        intro += f"<p><b>{html.escape(note)}</b></p>"
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>Listen to the attacks</title>'
        f"<style>{_STYLE}</style></head><body>\n<h1>Listen to the attacks</h1>\n{intro}\n"
        f"<h3>Medians over all {n_attacked} attacked utterances at PGD-{steps} (tables/perceptual.*)</h3>\n"
        f"{_medians_table(perceptual, columns, steps)}\n" + "\n".join(sections) + "\n</body></html>\n"
    )


def read_column(setting: Setting, label: str, state: str, csv: str) -> Column:
    """A column's δ (``load_state``) and its utterances.csv, checked to list the same utterances."""
    from hne_core.attack.job import load_state

    loaded = load_state(state)
    rows = pd.read_csv(
        csv, keep_default_na=False, dtype={"utt_id": str, "reference": str, "target": str, "hypothesis": str}
    ).set_index("utt_id", drop=False)
    if rows["utt_id"].tolist() != loaded["utt_ids"]:
        raise ResultsError(f"{state} and {csv} list different utterances")
    return Column(setting, label, dict(zip(loaded["utt_ids"], loaded["deltas"])), rows)
