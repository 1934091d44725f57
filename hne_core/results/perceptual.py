"""How much each attack changes what a listener hears: SNR, PESQ (wide band) and STOI of every attacked utterance.

The paper keeps ε = 2 because it leaves the samples "within natural constraints"; these measures put a number on
that claim. Each compares the adversarial clip x + δ (δ as the attack job stored it, ``load_state``) with the clean
clip x the attack started from:

- SNR (dB): 10·log10(Σx² / Σδ²), the attack job's own ``snr_db``, recomputed from the same stored δ;
- PESQ, ITU-T P.862.2 wide band (``pesq``, mode ``wb``, 16 kHz): a MOS-like score from about 1 (bad; the
  mapping's floor is 0.999) to 4.64 (the score of a clip against itself);
- STOI (``pystoi``, classic, not extended): predicted intelligibility from 0 to 1.

PESQ refuses some clips (``NoUtterancesError`` when its voice activity detector finds no speech, a clip too short,
...). Such an utterance gets NaN with the reason, which the table counts and the job's log names; it is left out
of the PESQ median, never scored as 0 or as 4.64. STOI likewise returns a placeholder (1e-5) with a warning when
too few frames are left after removing silent ones: recorded as NaN with its reason, not as a score.

The table gives medians (robust to the few clips where a δ lands in silence and the SNR runs away) per setting
(table column) and milestone, over every attacked utterance of that milestone.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import pandas as pd

from hne_core.atomic import write_text_atomic
from hne_core.results.aggregate import (
    SETTING_KEYS,
    ResultsError,
    Setting,
    fill_tasks,
    read_summary,
    setting_header,
    sibling,
)
from hne_core.results.paper import budget_note
from hne_core.results.tables import Cell, Grid, write_grid

SAMPLE_RATE = 16000  # what the data stage writes (``read_audio`` refuses anything else); PESQ wb needs 16 kHz
PESQ_MAX = 4.64  # P.862.2's ceiling: the wide-band mapping of a perfect raw score (pesq gives 4.6439 for x vs x)
UTTERANCE_COLUMNS = [*SETTING_KEYS, "steps", "utt_id", "snr_db", "pesq_wb", "stoi", "pesq_error", "stoi_error"]
TABLE_COLUMNS = [
    *SETTING_KEYS,
    "steps",
    "snr_db",
    "pesq_wb",
    "stoi",
    "n_utts",
    "pesq_unscored",
    "stoi_unscored",
    "unscored_reasons",
]


# ------------------------------------------------------------------------------------------------ one utterance
def snr_db(clean: np.ndarray, delta: np.ndarray) -> float:
    """Signal-to-perturbation ratio in dB (float64 sums, as the attack job computes it); inf for δ = 0, -inf for a
    silent clip with a perturbation."""
    noise = float(np.sum(np.asarray(delta, dtype=np.float64) ** 2))
    signal = float(np.sum(np.asarray(clean, dtype=np.float64) ** 2))
    if noise == 0.0:
        return math.inf
    return -math.inf if signal == 0.0 else 10.0 * math.log10(signal / noise)


def pesq_wb(clean: np.ndarray, degraded: np.ndarray) -> tuple[float, str]:
    """(PESQ wide band, "") or (NaN, why pesq refused the clip). Only pesq's own refusals are caught: a wrong
    rate or mode is a bug and raises."""
    from pesq import PesqError, pesq

    try:
        return float(pesq(SAMPLE_RATE, clean, degraded, "wb")), ""
    except PesqError as exc:  # NoUtterancesError, BufferTooShortError, ...: the clip, not the code
        msg = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else str(exc)
        return math.nan, f"PESQ {type(exc).__name__}: {msg}"


def stoi_score(clean: np.ndarray, degraded: np.ndarray) -> tuple[float, str]:
    """(STOI, "") or (NaN, why): pystoi warns and returns 1e-5 when too few non-silent frames remain; that
    placeholder is not a measurement."""
    from pystoi import stoi

    if not np.any(clean):  # nothing to be intelligible: pystoi would report 0 correlation as a score
        return math.nan, "STOI: silent clean clip"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = float(stoi(clean, degraded, SAMPLE_RATE, extended=False))
    refusals = [w for w in caught if "Not enough STFT frames" in str(w.message)]
    if refusals:
        return math.nan, "STOI: too few non-silent frames"
    return value, ""


def score_utterance(clean: np.ndarray, delta: np.ndarray) -> dict:
    """SNR, PESQ wb and STOI of x + δ against x, with the reasons of any NaN."""
    clean = np.asarray(clean, dtype=np.float32)
    delta = np.asarray(delta, dtype=np.float32)
    if clean.shape != delta.shape:
        raise ResultsError(f"clean clip of {clean.shape[0]} samples, δ of {delta.shape[0]}")
    adv = clean + delta
    pesq_value, pesq_error = pesq_wb(clean, adv)
    stoi_value, stoi_error = stoi_score(clean, adv)
    return {
        "snr_db": snr_db(clean, delta),
        "pesq_wb": pesq_value,
        "stoi": stoi_value,
        "pesq_error": pesq_error,
        "stoi_error": stoi_error,
    }


# ------------------------------------------------------------------------------------------------ attack milestones
@dataclass(frozen=True)
class Milestone:
    """One attack milestone's files, with the setting and steps its own summary carries."""

    setting: Setting
    steps: int
    state: str
    csv: str


def milestones(summaries: Sequence[str], states: Sequence[str], csvs: Sequence[str]) -> list[Milestone]:
    """Every milestone of ``summaries``, its state and utterances.csv the declared inputs beside it."""
    out = []
    for path in summaries:
        summary = read_summary(path)
        out.append(
            Milestone(
                Setting.of(summary),
                int(summary["steps"]),
                sibling(path, "state.npz", states),
                sibling(path, "utterances.csv", csvs),
            )
        )
    return out


def read_deltas(milestone: Milestone) -> dict[str, np.ndarray]:
    """utt_id -> δ as stored; the state and the CSV beside it must list the same utterances in the same order."""
    from hne_core.attack.job import load_state

    state = load_state(milestone.state)
    listed = pd.read_csv(milestone.csv, keep_default_na=False, dtype={"utt_id": str})["utt_id"].tolist()
    if listed != state["utt_ids"]:
        raise ResultsError(f"{milestone.state} and {milestone.csv} list different utterances")
    return dict(zip(state["utt_ids"], state["deltas"]))


def read_clean(data_dir: str | Path, utt_ids: Sequence[str]) -> dict[str, np.ndarray]:
    """The clean clips the attack read (the same reader as the attack's ``read_utterances``)."""
    from hne_core.data.utterances import read_audio, read_data_dir

    by_id = {u.utt_id: u for u in read_data_dir(data_dir)}
    missing = [u for u in utt_ids if u not in by_id]
    if missing:
        raise ResultsError(f"{data_dir} has no utterance(s) {missing[:5]}")
    return {u: read_audio(by_id[u].wav) for u in utt_ids}


def _score_task(task: tuple[dict, np.ndarray, np.ndarray]) -> dict:
    key, clean, delta = task
    return {**key, **score_utterance(clean, delta)}


def utterance_frame(items: Sequence[Milestone], data_dir: str | Path, threads: int = 1) -> pd.DataFrame:
    """One row per (setting, milestone, utterance): ``UTTERANCE_COLUMNS``. ``threads`` > 1 scores in that many
    worker processes (PESQ and STOI hold the GIL); the rows come back in input order either way."""
    deltas = {m: read_deltas(m) for m in items}
    utt_ids = sorted({u for d in deltas.values() for u in d})
    clean = read_clean(data_dir, utt_ids)
    tasks = [
        ({**m.setting.row(), "steps": m.steps, "utt_id": u}, clean[u], d) for m in items for u, d in deltas[m].items()
    ]
    if threads > 1 and len(tasks) > 1:
        # fork: the workers need only numpy, pesq and pystoi, already imported state is shared copy-on-write
        with ProcessPoolExecutor(max_workers=threads, mp_context=get_context("fork")) as pool:
            rows = list(pool.map(_score_task, tasks, chunksize=16))
    else:
        rows = [_score_task(t) for t in tasks]
    return pd.DataFrame(rows, columns=UTTERANCE_COLUMNS)


def write_utterances(frame: pd.DataFrame, path: str | Path) -> None:
    write_text_atomic(path, frame.to_csv(index=False, lineterminator="\n"))


def read_utterances(path: str | Path) -> pd.DataFrame:
    frame = pd.read_csv(
        path,
        keep_default_na=False,
        na_values={c: ["", "NaN", "nan"] for c in ("snr_db", "pesq_wb", "stoi")},
        dtype={"utt_id": str, "pesq_error": str, "stoi_error": str, "tasks": str},
    )
    frame = fill_tasks(frame)  # '' for the accent alone, also in a file written before models had other tasks
    missing = [c for c in UTTERANCE_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path}: lacks {missing}")
    return frame


# ------------------------------------------------------------------------------------------------ the table
def _reasons(errors: pd.Series) -> str:
    counts = Counter(e for e in errors if e)
    return "; ".join(f"{reason} ×{n}" for reason, n in sorted(counts.items()))


def median_frame(utts: pd.DataFrame) -> pd.DataFrame:
    """Medians of SNR, PESQ wb and STOI per (setting, milestone) over the utterances each was scored on, the
    number of utterances, how many PESQ and STOI could not score, and why (``TABLE_COLUMNS``)."""
    rows = []
    for key, part in fill_tasks(utts).groupby([*SETTING_KEYS, "steps"], sort=True):  # a NaN key would drop its rows
        rows.append(
            {
                **dict(zip([*SETTING_KEYS, "steps"], key)),
                "snr_db": part["snr_db"].median(),
                "pesq_wb": part["pesq_wb"].median(),
                "stoi": part["stoi"].median(),
                "n_utts": len(part),
                "pesq_unscored": int(part["pesq_wb"].isna().sum()),
                "stoi_unscored": int(part["stoi"].isna().sum()),
                "unscored_reasons": _reasons(pd.concat([part["pesq_error"], part["stoi_error"]])),
            }
        )
    frame = pd.DataFrame(rows, columns=TABLE_COLUMNS)
    frame["steps"] = frame["steps"].astype(int)
    return frame


def column_labels(tables: Sequence[Mapping]) -> dict[Setting, str]:
    """Every attacked setting (a column of config ``tables``) in order of first appearance, labelled with each
    table's own label for it ("table1: STL (Decoder); table2: 1.0")."""
    labels: dict[Setting, list[str]] = {}
    for table in tables:
        for col in table["columns"]:
            labels.setdefault(Setting.of(col), []).append(f"{table['name']}: {col['label']}")
    return {s: "; ".join(names) for s, names in labels.items()}


def _fmt(value: float, decimals: int) -> str:
    if math.isnan(value):
        return "–"
    return "∞" if math.isinf(value) else f"{value:.{decimals}f}"


def perceptual_grid(frame: pd.DataFrame, labels: Mapping[Setting, str], steps: Sequence[int]) -> Grid:
    """Rows: each table column (setting) at each milestone, in the tables' order; cells: the medians."""
    by_key = {(Setting.of(r), int(r["steps"])): r for r in frame.to_dict("records")}
    rows = []
    for setting, label in labels.items():
        for s in steps:
            r = by_key.get((setting, int(s)))
            if r is None:
                raise ResultsError(f"no perceptual scores of {setting.spelled} at PGD-{s}")
            unscored = f"{r['pesq_unscored']} / {r['stoi_unscored']}"
            rows.append(
                [
                    Cell(setting.short),
                    Cell(label),
                    Cell(f"PGD-{int(s)}"),
                    Cell(_fmt(r["snr_db"], 2)),
                    Cell(_fmt(r["pesq_wb"], 2)),
                    Cell(_fmt(r["stoi"], 3)),
                    Cell(str(r["n_utts"])),
                    Cell(unscored),
                ]
            )
    n = int(frame["n_utts"].max()) if len(frame) else 0
    note = budget_note(steps)
    title = (
        f"Perceptual measures of the attacks: medians over the {n} attacked utterances of each setting and "
        "milestone (x + δ against the clean x)"
    )
    reasons = sorted({r for text in frame["unscored_reasons"] for r in text.split("; ") if r})
    legend = (
        "SNR = 10·log10(Σx²/Σδ²); PESQ = ITU-T P.862.2 wide band (pesq, 16 kHz), 1-4.64, 4.64 = "
        "indistinguishable; STOI = short-time objective intelligibility (pystoi), 0-1; not scored = "
        "utterances PESQ / STOI refused, left out of the median"
        + (f" ({'; '.join(reasons)})" if reasons else " (none)")
    )
    return Grid(
        f"{title} ({note})" if note else title,
        [
            setting_header(labels),
            "column",
            "steps",
            "SNR (dB)",
            "PESQ-WB",
            "STOI",
            "utterances",
            "not scored (PESQ / STOI)",
        ],
        rows,
        legend,
    )


def table_csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, float_format="%.4f", lineterminator="\n")


def write_table(
    frame: pd.DataFrame, labels: Mapping[Setting, str], steps: Sequence[int], paths: Mapping[str, str | Path]
) -> None:
    """tables/perceptual.{csv,md,tex,html}: the tidy medians as CSV, the grid in the other formats."""
    write_grid(perceptual_grid(frame, labels, steps), table_csv(frame), paths)
