"""The tidy AdvTWER frame: one row per (λA, λC(t), λC(i), tasks, PGD milestone), with a seeded bootstrap interval.

A setting's ``tasks`` is the model's tasks id (``naming.tasks_id``): '' for the accent alone, the paper's model, so
that the paper's settings read as they always have; every frame keyed by settings carries it as a column.

Beside AdvTWER (against the adversarial targets), each row carries ``ref_wer``: the WER of the same hypotheses
on the attacked audio against the utterances' references, with its interval computed the same way on the same
resamples. AdvTWER says how far the attack is from its goal; ref_wer how much of the true transcript it
destroyed on the way (the paper reports "equivalent robustness trends" for it without a table).

AdvTWER is a corpus WER (total word edits over total reference words, as ``jiwer.wer`` on lists), not a mean of
per-utterance rates, so the bootstrap cannot resample per-utterance WERs: it resamples utterances and
recomputes the corpus WER from their edit and word counts. Every attacked (model, λC(i), milestone) shares one
utterance set, so one index matrix drawn from the config's seed serves every cell; the intervals are then
reproducible, and any two cells can be compared pairwise (``compare.py``) on the very same resamples.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
import pandas as pd

from hne_core import naming
from hne_core.atomic import atomic_path

SETTING_KEYS = naming.SETTING_KEYS
ADVTWER_COLUMNS = [
    *SETTING_KEYS,
    "steps",
    "adv_twer",
    "adv_twer_ci_low",
    "adv_twer_ci_high",
    "ref_wer",
    "ref_wer_ci_low",
    "ref_wer_ci_high",
    "benign_wer",
    "accent_acc",
    "n_utts",
]
WEIGHT_KEYS = SETTING_KEYS[:3]  # the λs: every summary must carry them; ``tasks`` only a model with other tasks


class ResultsError(ValueError):
    """Inputs that cannot be aggregated as they are (utterance sets that differ, a summary that disagrees)."""


@dataclass(frozen=True, order=True)
class Setting:
    """One (λA, λC(t), λC(i), tasks): a trained model, with its tasks id ('' for the accent alone), and the
    inference weight it is decoded and attacked with. Normalised on construction (weights rounded as
    ``naming.fmt_weight`` rounds them, tasks spelled as ``naming.tasks_id`` spells them, a CSV's NaN read as the
    accent alone), so that any two spellings of one setting are equal and hash alike."""

    lambda_a: float
    lambda_c_train: float
    lambda_c_infer: float
    tasks: str = ""

    def __post_init__(self) -> None:
        key = naming.setting_key(self.lambda_a, self.lambda_c_train, self.lambda_c_infer, self.tasks)
        for name, value in zip(SETTING_KEYS, key):
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, mapping: Mapping) -> Setting:
        """From any mapping with the setting keys (a config column, a CSV row, a job's summary); ``tasks`` may be
        absent (the accent alone), a mapping (config) or a tasks id (summaries and CSVs)."""
        return cls(*naming.setting_of(mapping))

    @classmethod
    def parse(cls, text: str) -> Setting:
        """'1.0/0.5/0.0' or '0.7/0.0/0.0/sex1.0' (λA/λC(t)/λC(i)[/tasks]), the spelling of config ``findings:``."""
        return cls(*naming.parse_setting(text))

    def row(self) -> dict:
        """The setting as the columns of a frame keyed by ``SETTING_KEYS``."""
        return {k: getattr(self, k) for k in SETTING_KEYS}

    @property
    def short(self) -> str:
        """'1.0/0.5/0.0' or '0.7/0.0/0.0/sex1.0': the spelling of config ``findings:``."""
        return naming.format_setting(self.lambda_a, self.lambda_c_train, self.lambda_c_infer, self.tasks)

    @property
    def spelled(self) -> str:
        """'λA=0.7, λC(t)=0.0, λC(i)=0.0', with ', tasks sex1.0' after it for a model with other tasks."""
        weights = f"λA={self.lambda_a:.1f}, λC(t)={self.lambda_c_train:.1f}, λC(i)={self.lambda_c_infer:.1f}"
        return weights + (f", tasks {self.tasks}" if self.tasks else "")


def setting_header(settings: Iterable[Setting]) -> str:
    """The header of a column of ``Setting.short``: the tasks part named only where some setting has one."""
    return "λA/λC(t)/λC(i)" + ("/tasks" if any(s.tasks for s in settings) else "")


def fill_tasks(frame: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """``frame`` with its ``<prefix>tasks`` column as tasks ids: '' for the accent alone, where pandas reads an empty
    cell back as NaN and a file written before models had other tasks has no such column."""
    column = f"{prefix}tasks"
    values = frame[column].map(naming.tasks_id) if column in frame.columns else ""
    return frame.assign(**{column: values})


def setting_rows(frame: pd.DataFrame, setting: Setting) -> pd.Series:
    """The rows of ``frame`` (keyed by ``SETTING_KEYS``) that belong to ``setting``, all four keys compared."""
    mask = fill_tasks(frame)["tasks"] == setting.tasks
    for k in WEIGHT_KEYS:
        mask &= frame[k].astype(float).round(6) == getattr(setting, k)
    return mask


# ------------------------------------------------------------------------------------------------ job outputs
def read_summary(path: str | Path) -> dict:
    """A job's ``summary.json``; it must carry the (λA, λC(t), λC(i)) it was run with (and ``tasks`` only for a
    model with other tasks than the accent alone: its absence is the paper's model)."""
    summary = json.loads(Path(path).read_text(encoding="utf-8"))
    missing = [k for k in WEIGHT_KEYS if k not in summary]
    if missing:
        raise ResultsError(f"{path}: lacks {missing}; rerun the job that wrote it")
    return summary


def sibling(path: str | Path, name: str, declared: Iterable[str]) -> str:
    """The file ``name`` in the folder of ``path`` (a job's outputs lie together), which must be one of the
    rule's ``declared`` inputs, so that reading it cannot escape Snakemake's rerun bookkeeping."""
    other = str(Path(path).with_name(name))
    if other not in {str(Path(d)) for d in declared}:
        raise ResultsError(f"{other} (beside {path}) is not an input of this job")
    return other


def attack_cells(
    attack_summaries: Sequence[str], attack_csvs: Sequence[str], eval_summaries: Sequence[str]
) -> list[dict]:
    """The cells of ``advtwer_frame``: each attack milestone's setting and steps read from its own summary, its
    ``utterances.csv`` beside it, and the evaluation summary of the same setting (matched by setting, not by
    position in a list)."""
    evals = {Setting.of(read_summary(e)): e for e in eval_summaries}
    cells = []
    for path in attack_summaries:
        summary = read_summary(path)
        setting = Setting.of(summary)
        if setting not in evals:
            raise ResultsError(f"{path}: no evaluation summary of {setting.spelled} among the inputs")
        cells.append(
            {
                **setting.row(),
                "steps": int(summary["steps"]),
                "attack_csv": sibling(path, "utterances.csv", attack_csvs),
                "attack_summary": str(path),
                "eval_summary": evals[setting],
            }
        )
    return cells


# ------------------------------------------------------------------------------------------------ scores
@dataclass(frozen=True)
class UtteranceScores:
    """Word edits and reference words per utterance, sorted by utterance id (so two sets align)."""

    utt_ids: tuple[str, ...]
    edits: np.ndarray
    words: np.ndarray

    @property
    def wer(self) -> float:
        """Corpus WER in percent."""
        return corpus_wer_pct(self.edits, self.words)


def edit_counts(references: Sequence[str], hypotheses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per-utterance word edits (S+D+I) and reference words, by jiwer's own alignment: their sums give exactly
    ``jiwer.wer(references, hypotheses)``."""
    if len(references) != len(hypotheses):
        raise ResultsError(f"{len(references)} references but {len(hypotheses)} hypotheses")
    edits, words = [], []
    for ref, hyp in zip(references, hypotheses):
        out = jiwer.process_words(str(ref), str(hyp))
        edits.append(out.substitutions + out.deletions + out.insertions)
        words.append(out.substitutions + out.deletions + out.hits)
    return np.asarray(edits, dtype=np.int64), np.asarray(words, dtype=np.int64)


def scores_from_frame(frame: pd.DataFrame, reference_column: str, source: str = "") -> UtteranceScores:
    frame = frame.sort_values("utt_id", kind="stable")
    if frame["utt_id"].duplicated().any():
        raise ResultsError(f"{source}: utterance ids repeat")
    edits, words = edit_counts(list(frame[reference_column]), list(frame["hypothesis"]))
    return UtteranceScores(tuple(str(u) for u in frame["utt_id"]), edits, words)


def read_attack_scores(path: str | Path) -> UtteranceScores:
    """Scores against the adversarial targets (AdvTWER) from an attack job's ``utterances.csv``."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return scores_from_frame(frame, "target", str(path))


def read_attack_reference_scores(path: str | Path) -> UtteranceScores:
    """Scores against the references (WER under attack) from an attack job's ``utterances.csv``."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return scores_from_frame(frame, "reference", str(path))


def read_benign_scores(path: str | Path) -> UtteranceScores:
    """Scores against the references (benign WER) from an evaluation job's ``hypotheses.tsv``."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    return scores_from_frame(frame, "reference", str(path))


def corpus_wer_pct(edits: np.ndarray, words: np.ndarray) -> float:
    total = int(np.sum(words))
    if total == 0:
        raise ResultsError("no reference words: WER is undefined")
    return 100.0 * float(np.sum(edits)) / total


# ------------------------------------------------------------------------------------------------ bootstrap
def bootstrap_indices(n_utts: int, n_samples: int, seed: int) -> np.ndarray:
    """``n_samples`` resamples (with replacement) of ``n_utts`` utterance positions, from ``seed`` alone: the same
    seed and sizes give the same matrix, whichever cell it is applied to."""
    if n_utts < 1 or n_samples < 1:
        raise ResultsError(f"bootstrap needs utterances and samples (got {n_utts}, {n_samples})")
    return np.random.default_rng(seed).integers(0, n_utts, size=(n_samples, n_utts))


def resampled_wer(scores: UtteranceScores, indices: np.ndarray) -> np.ndarray:
    """Corpus WER (percent) of every resample. A resample whose references hold no word is NaN (only possible
    when some reference is empty)."""
    edits = scores.edits[indices].sum(axis=1).astype(float)
    words = scores.words[indices].sum(axis=1).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(words > 0, 100.0 * edits / words, np.nan)


def percentile_interval(samples: np.ndarray, level: float) -> tuple[float, float]:
    """The percentile bootstrap interval at ``level`` (0.95: the 2.5th and 97.5th percentiles)."""
    samples = np.asarray(samples, dtype=float)
    samples = samples[np.isfinite(samples)]
    if samples.size == 0:
        return math.nan, math.nan
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(samples, [tail, 100.0 - tail])
    return float(low), float(high)


def check_same_utterances(named: Mapping[str, UtteranceScores]) -> tuple[str, ...]:
    """The one utterance set all score sets share; a clear error naming the odd one out otherwise (a paired
    bootstrap over different utterances would compare different things)."""
    items = list(named.items())
    if not items:
        raise ResultsError("no scores to aggregate")
    first_name, first = items[0]
    for name, scores in items[1:]:
        if scores.utt_ids != first.utt_ids:
            raise ResultsError(f"{name} attacked other utterances than {first_name}")
    return first.utt_ids


# ------------------------------------------------------------------------------------------------ the frame
def _percent(value) -> float:
    return math.nan if value is None else 100.0 * float(value)


def advtwer_frame(cells: Iterable[Mapping], n_samples: int, level: float, seed: int) -> pd.DataFrame:
    """The tidy frame of ``ADVTWER_COLUMNS``, sorted by setting and milestone.

    Each cell maps the setting keys and ``steps`` to its files: ``attack_csv`` (per-utterance results),
    ``attack_summary`` (its AdvTWER, checked against the recomputed one) and ``eval_summary`` (benign WER and
    accent accuracy of the same (model, λC(i)) on the test split, fractions there, percent here). ``ref_wer``
    and its interval: the same hypotheses against the references, checked against the summary's ``wer``.
    """
    cells = list(cells)
    scores = {c["attack_csv"]: read_attack_scores(c["attack_csv"]) for c in cells}
    ref_scores = {c["attack_csv"]: read_attack_reference_scores(c["attack_csv"]) for c in cells}
    utt_ids = check_same_utterances(scores)
    indices = bootstrap_indices(len(utt_ids), n_samples, seed)
    rows = []
    for cell in cells:
        s = scores[cell["attack_csv"]]
        point, ref = s.wer, ref_scores[cell["attack_csv"]]
        summary = json.loads(Path(cell["attack_summary"]).read_text(encoding="utf-8"))
        for name, ours, theirs in (("AdvTWER", point, summary["adv_twer"]), ("WER", ref.wer, summary["wer"])):
            if not math.isclose(ours, theirs, rel_tol=1e-9, abs_tol=1e-6):
                raise ResultsError(
                    f"{cell['attack_csv']}: {name} from the utterances ({ours}) differs from its summary's ({theirs})"
                )
        low, high = percentile_interval(resampled_wer(s, indices), level)
        ref_low, ref_high = percentile_interval(resampled_wer(ref, indices), level)
        benign = json.loads(Path(cell["eval_summary"]).read_text(encoding="utf-8"))
        setting = Setting.of(cell)
        rows.append(
            {
                **setting.row(),
                "steps": int(cell["steps"]),
                "adv_twer": point,
                "adv_twer_ci_low": low,
                "adv_twer_ci_high": high,
                "ref_wer": ref.wer,
                "ref_wer_ci_low": ref_low,
                "ref_wer_ci_high": ref_high,
                "benign_wer": _percent(benign["wer"]),
                "accent_acc": _percent(benign.get("accent_acc")),
                "n_utts": len(s.utt_ids),
            }
        )
    frame = pd.DataFrame(rows, columns=ADVTWER_COLUMNS)
    return frame.sort_values([*SETTING_KEYS, "steps"], ignore_index=True)


def write_frame(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4f")


def read_advtwer(path: str | Path) -> pd.DataFrame:
    """advtwer.csv with its ``tasks`` as tasks ids ('' for the accent alone, never NaN)."""
    frame = fill_tasks(pd.read_csv(path))
    missing = [c for c in ADVTWER_COLUMNS if c not in frame.columns]
    if missing:
        raise ResultsError(f"{path}: lacks columns {missing}")
    return frame
