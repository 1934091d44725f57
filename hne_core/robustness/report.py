"""The robustness checks' tables: every check's numbers per model, its verdict and the rule that decided it
(``robustness_checks.csv``/``.md``), the transfer matrices per table (source × victim AdvTWER), and the numbers
the figures draw. Reads job outputs only; every setting comes from the files' own columns or summaries.

Every interval is a percentile bootstrap over the attacked utterances with ``results.bootstrap_samples``
resamples from ``seed``: the resample matrix of ``advtwer.csv``, so a number here and a cell there are
resampled alike, and every paired difference uses the same resamples on both sides. Scores are keyed and sorted by
utterance id before they meet, so the row order of a job's CSV never decides what is paired with what.

Progress toward the target is counted in target-word hits (``hit_counts``) beside AdvTWER: no job output records
them, so they are computed here from each CSV's ``target`` and ``hypothesis`` columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jiwer
import numpy as np
import pandas as pd

from hne_core.atomic import atomic_path, write_text_atomic
from hne_core.naming import seed_of
from hne_core.results.aggregate import (
    SETTING_KEYS,
    ResultsError,
    Setting,
    UtteranceScores,
    bootstrap_indices,
    check_same_utterances,
    edit_counts,
    fill_tasks,
    percentile_interval,
    read_summary,
    resampled_wer,
    scores_from_frame,
    setting_header,
    sibling,
)
from hne_core.results.tables import Column, escape_md
from hne_core.robustness.adaptive import adaptive_frame, adaptive_rows, attacker_of
from hne_core.robustness.noise import BENIGN_DRAW
from hne_core.robustness.transfer import SOURCE_KEYS
from hne_core.robustness.verdicts import (
    Estimate,
    Paired,
    Verdict,
    noise_verdicts,
    overall,
    seeds_verdicts,
    steps_verdict,
    sweep_verdicts,
    transfer_verdict,
    untargeted_verdicts,
)

CHECKS = ("transfer", "sweep", "steps", "noise", "untargeted", "seeds", "adaptive")
CHECK_COLUMNS = [
    *SETTING_KEYS,
    "check",
    "item",
    "value",
    "ci_low",
    "ci_high",
    "reference",
    "verdict",
    "rule",
]
VERDICT_COLUMNS = CHECK_COLUMNS[len(SETTING_KEYS) :]  # the fields of a ``Verdict``


@dataclass
class Bootstrap:
    """One resample matrix of utterance positions (rows: resamples) applied to every score set of a run."""

    indices: np.ndarray
    level: float

    def estimate(self, scores: UtteranceScores) -> Estimate:
        return Estimate(scores.wer, *percentile_interval(resampled_wer(scores, self.indices), self.level))

    def standard_error(self, scores: UtteranceScores) -> float:
        """The SD of the resampled rate: the spread that resampling the utterances alone gives it."""
        samples = resampled_wer(scores, self.indices)
        return float(np.std(samples[np.isfinite(samples)], ddof=1))

    def paired(self, a: UtteranceScores, b: UtteranceScores) -> Paired:
        """a and b with the interval of a − b (percent points), paired: each resample draws the same utterances
        for both sides (both sorted by utterance id, checked equal), so what the utterances share cancels."""
        check_same_utterances({"a": a, "b": b})
        diff = resampled_wer(a, self.indices) - resampled_wer(b, self.indices)
        return Paired(a.wer, b.wer, *percentile_interval(diff, self.level))

    def difference(self, a: UtteranceScores, b: UtteranceScores) -> Estimate:
        """a − b (percent points), paired over the same resampled utterances."""
        p = self.paired(a, b)
        return Estimate(p.difference, p.low, p.high)


def hit_counts(targets: Sequence[str], hypotheses: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Per utterance, the target words the hypothesis contains and the target's words: the matched words of
    jiwer's alignment of the hypothesis against the target (target words minus substitutions and deletions).

    Why beside AdvTWER: AdvTWER counts insertions too, so a hypothesis that only gets shorter lowers it (an
    empty one scores 100, a long wrong one more) without reaching one word of the target; a hypothesis gains a
    hit only by spelling a target word in its place."""
    if len(targets) != len(hypotheses):
        raise ResultsError(f"{len(targets)} targets but {len(hypotheses)} hypotheses")
    hits, words = [], []
    for target, hyp in zip(targets, hypotheses):
        out = jiwer.process_words(str(target), str(hyp))
        hits.append(out.hits)
        words.append(out.hits + out.substitutions + out.deletions)
    return np.asarray(hits, dtype=np.int64), np.asarray(words, dtype=np.int64)


def pooled_scores(frame: pd.DataFrame, reference_column: str, counts=edit_counts) -> UtteranceScores:
    """Scores of several decodes of each utterance (noise draws) pooled per utterance: counts (``edit_counts``:
    word edits; ``hit_counts``: target-word hits, in the scores' ``edits`` slot) and words summed over the draws,
    so resampling an utterance resamples all its draws together. Sorted by utterance id."""
    counted, words = counts(list(frame[reference_column]), list(frame["hypothesis"]))
    grouped = (
        pd.DataFrame({"utt_id": frame["utt_id"].astype(str), "e": counted, "w": words})
        .groupby("utt_id", sort=True)
        .sum()
    )
    return UtteranceScores(tuple(grouped.index), grouped["e"].to_numpy(np.int64), grouped["w"].to_numpy(np.int64))


def _read(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _setting_of_row(row: Mapping, prefix: str = "") -> Setting:
    """The setting of a row of a job's CSV (``source_``: the transfer's source); no ``tasks``: the accent alone."""
    return Setting.of({k: row.get(f"{prefix}{k}") for k in SETTING_KEYS})


def _read_keyed(path: str | Path, *prefixes: str) -> pd.DataFrame:
    """A CSV whose rows carry their settings (transfer, noise), its tasks columns filled ('' for the accent alone)."""
    frame = _read(path)
    for prefix in prefixes:
        frame = fill_tasks(frame, prefix)
    return frame


@dataclass
class Inputs:
    """Per-utterance results of every job the checks read, keyed by setting."""

    attacks: dict[tuple[Setting, int], pd.DataFrame] = field(default_factory=dict)  # main attack, every milestone
    transfer: dict[tuple[Setting, Setting], pd.DataFrame] = field(default_factory=dict)  # (source, victim)
    sweep: dict[tuple[Setting, float], pd.DataFrame] = field(default_factory=dict)  # scale != 1
    noise: dict[Setting, pd.DataFrame] = field(default_factory=dict)
    untargeted: dict[tuple[Setting, int], pd.DataFrame] = field(default_factory=dict)
    seeds: dict[tuple[Setting, int], pd.DataFrame] = field(default_factory=dict)  # (setting, seed)
    adaptive: dict[tuple[Setting, int, str], pd.DataFrame] = field(default_factory=dict)  # (setting, steps, attacker)

    @property
    def whitebox(self) -> dict[Setting, pd.DataFrame]:
        """The main attack at each setting's last milestone: what transfer, sweep ×1, noise and seeds compare with."""
        last: dict[Setting, int] = {}
        for s, k in self.attacks:
            last[s] = max(k, last.get(s, k))
        return {s: self.attacks[(s, k)] for s, k in sorted(last.items())}


def read_inputs(
    attack_summaries: Sequence[str],
    attack_csvs: Sequence[str],
    transfer_csvs: Sequence[str],
    sweep_summaries: Sequence[str],
    sweep_csvs: Sequence[str],
    noise_csvs: Sequence[str],
    untargeted_summaries: Sequence[str],
    untargeted_csvs: Sequence[str],
    base_epsilon: float,
    seed_summaries: Sequence[str] = (),
    seed_csvs: Sequence[str] = (),
    adaptive_summaries: Sequence[str] = (),
    adaptive_csvs: Sequence[str] = (),
) -> Inputs:
    """Every job output, keyed by the setting (and steps / ε multiplier) its own summary or columns carry."""
    got = Inputs()
    for path in attack_summaries:
        summary = read_summary(path)
        got.attacks[(Setting.of(summary), int(summary["steps"]))] = _read(sibling(path, "utterances.csv", attack_csvs))
    for path in transfer_csvs:
        frame = _read_keyed(path, "source_", "")
        for _, part in frame.groupby([*SOURCE_KEYS, *SETTING_KEYS]):
            row = part.iloc[0]
            got.transfer[(_setting_of_row(row, "source_"), _setting_of_row(row))] = part
    for path in sweep_summaries:
        summary = read_summary(path)
        scale = round(float(summary["eps"]) / float(base_epsilon), 6)
        got.sweep[(Setting.of(summary), scale)] = _read(sibling(path, "utterances.csv", sweep_csvs))
    for path in noise_csvs:
        frame = _read_keyed(path, "")
        got.noise[_setting_of_row(frame.iloc[0])] = frame
    for path in untargeted_summaries:
        summary = read_summary(path)
        got.untargeted[(Setting.of(summary), int(summary["steps"]))] = _read(
            sibling(path, "utterances.csv", untargeted_csvs)
        )
    for path in seed_summaries:  # the seed is the folder's (naming.seed_dir); the setting the summary's
        got.seeds[(Setting.of(read_summary(path)), seed_of(path))] = _read(sibling(path, "utterances.csv", seed_csvs))
    for path in adaptive_summaries:
        summary = read_summary(path)
        key = (Setting.of(summary), int(summary["steps"]), attacker_of(summary))
        got.adaptive[key] = _read(sibling(path, "utterances.csv", adaptive_csvs))
    return got


def _targets(frame: pd.DataFrame) -> UtteranceScores:
    return scores_from_frame(frame, "target")


def _refs(frame: pd.DataFrame) -> UtteranceScores:
    return scores_from_frame(frame, "reference")


def _hits(frame: pd.DataFrame) -> UtteranceScores:
    """Target-word hits per utterance (one decode each), sorted by utterance id."""
    if frame["utt_id"].astype(str).duplicated().any():
        raise ResultsError("utterance ids repeat")
    return pooled_scores(frame, "target", hit_counts)


# ------------------------------------------------------------------------------------------------ the checks
def transfer_matrices(
    tables: Sequence[Mapping], got: Inputs, boot: Bootstrap
) -> tuple[dict[str, pd.DataFrame], dict[Setting, list[Verdict]]]:
    """Per table with two or more columns: AdvTWER source (rows) × victim (columns), the diagonal the victim's own
    white-box attack; and the transfer verdicts of every victim, per source and table (target-word hits under the
    source's δ against under the victim's own, paired by utterance id)."""
    matrices, verdicts = {}, {}
    for table in tables:
        cols = [Column.of(c) for c in table["columns"]]
        if len(cols) < 2:
            continue
        labels = [f"{c.label} ({c.setting.short})" for c in cols]
        mat = pd.DataFrame(index=pd.Index(labels, name="source \\ victim"), columns=labels, dtype=float)
        for vi, victim in enumerate(cols):
            own = _targets(got.whitebox[victim.setting])
            mat.iloc[vi, vi] = own.wer
            for si, source in enumerate(cols):
                if si == vi:
                    continue
                key = (source.setting, victim.setting)
                if key not in got.transfer:
                    raise ResultsError(f"no transfer of {source.setting.short} to {victim.setting.short}")
                moved = got.transfer[key]
                mat.iloc[si, vi] = _targets(moved).wer
                verdicts.setdefault(victim.setting, []).append(
                    transfer_verdict(
                        f"{source.setting.short} ({table['name']})",
                        boot.paired(_hits(moved), _hits(got.whitebox[victim.setting])),
                        (_targets(moved).wer, own.wer),
                    )
                )
        matrices[table["name"]] = mat
    return matrices, verdicts


def sweep_points(
    settings: Sequence[Setting], scales: Sequence[float], got: Inputs, boot: Bootstrap
) -> dict[Setting, list[tuple[float, Estimate]]]:
    """AdvTWER at the last milestone per ε multiplier (×1: the main attack itself)."""
    out = {}
    for s in settings:
        pts = []
        for scale in sorted(set(scales)):
            frame = got.whitebox[s] if math.isclose(scale, 1.0) else got.sweep[(s, round(scale, 6))]
            pts.append((float(scale), boot.estimate(_targets(frame))))
        out[s] = pts
    return out


def noise_numbers(setting: Setting, got: Inputs, boot: Bootstrap) -> dict:
    """The noise check's numbers of one setting: the attack's final δ against the noise of its norms (draws
    pooled per utterance), paired by utterance id, in AdvTWER (``adv``) and target-word hit rate (``hits``); the
    clean audio's hit rate (``benign_hits``) and WER (``benign_wer``); and the share of the attack's WER damage
    (against the references) that the noise does alone (``share``, NaN when the attack does no damage)."""
    frame = got.noise[setting]
    draw = frame["draw"].astype(int)
    clean, noisy = frame[draw == BENIGN_DRAW], frame[draw != BENIGN_DRAW]
    attack = got.whitebox[setting]
    benign_wer = boot.estimate(_refs(clean))
    noise_wer = pooled_scores(noisy, "reference").wer
    damage = _refs(attack).wer - benign_wer.value
    return {
        "adv": boot.paired(_targets(attack), pooled_scores(noisy, "target")),
        "hits": boot.paired(_hits(attack), pooled_scores(noisy, "target", hit_counts)),
        "benign_hits": _hits(clean).wer,
        "benign_wer": benign_wer,
        "share": (noise_wer - benign_wer.value) / damage if damage > 0 else math.nan,
        "clean": clean,
    }


def noise_rows(numbers: Mapping, margin: float) -> list[Verdict]:
    """The noise check's verdicts of one setting: its ``noise_numbers`` judged by ``noise_verdicts``."""
    return noise_verdicts(numbers["adv"], numbers["hits"], numbers["benign_hits"], margin, numbers["share"])


def steps_rows(got: Inputs, boot: Bootstrap) -> list[tuple[Setting, Verdict]]:
    """Every pair of consecutive milestones of every attacked setting: target-word hits, paired by utterance."""
    rows = []
    for s in sorted({s for s, _ in got.attacks}):
        milestones = sorted(k for t, k in got.attacks if t == s)
        for k0, k1 in zip(milestones, milestones[1:]):
            a0, a1 = got.attacks[(s, k0)], got.attacks[(s, k1)]
            hits = boot.paired(_hits(a1), _hits(a0))
            rows.append((s, steps_verdict(k0, k1, hits, (_targets(a1).wer, _targets(a0).wer))))
    return rows


SEED_COLUMNS = [*SETTING_KEYS, "seed", "steps", "adv_twer"]


def per_seed_advtwer(got: Inputs, run_seed: int | None) -> dict[Setting, dict[int, float]]:
    """AdvTWER at the last milestone of every retrained setting, per training seed (this run's at ``run_seed``)."""
    return {
        s: {
            run_seed: _targets(got.whitebox[s]).wer,
            **{k: _targets(f).wer for (t, k), f in got.seeds.items() if t == s},
        }
        for s in sorted({s for s, _ in got.seeds})
    }


def seed_frame(got: Inputs, run_seed: int | None, steps: int) -> pd.DataFrame:
    """``per_seed_advtwer`` as a tidy table (``SEED_COLUMNS``): what the paper comparison judges each finding
    against across seeds (``hne_core.results.compare.seed_support``)."""
    rows = [
        {**s.row(), "seed": k, "steps": int(steps), "adv_twer": v}
        for s, values in per_seed_advtwer(got, run_seed).items()
        for k, v in sorted(values.items())
    ]
    return pd.DataFrame(rows, columns=SEED_COLUMNS)


def seed_rows(
    tables: Sequence[Mapping], got: Inputs, boot: Bootstrap, run_seed: int | None
) -> list[tuple[Setting, Verdict]]:
    """The training-noise rules of every retrained setting: its AdvTWER per seed (this run's at ``run_seed``),
    and, where a baseline of one of its tables was retrained alike, its difference from it per seed."""
    per_seed = per_seed_advtwer(got, run_seed)
    settings = sorted(per_seed)
    rows = []
    for s in settings:
        against = {}
        for table in tables:
            cols = [Column.of(c) for c in table["columns"]]
            if s not in {c.setting for c in cols}:
                continue
            for b in cols:
                if b.baseline and b.setting != s and b.setting in per_seed:
                    common = sorted(set(per_seed[s]) & set(per_seed[b.setting]))
                    against[b.setting.short] = {k: per_seed[s][k] - per_seed[b.setting][k] for k in common}
        se = boot.standard_error(_targets(got.whitebox[s]))
        rows += [(s, v) for v in seeds_verdicts(per_seed[s], se, against)]
    return rows


def adaptive_cells(tables: Sequence[Mapping], got: Inputs, boot: Bootstrap) -> pd.DataFrame:
    """Every table cell against the strongest attacker of the adaptive family (``adaptive.adaptive_frame``)."""
    paper = {key: _targets(frame) for key, frame in got.attacks.items()}
    members = {key: _targets(frame) for key, frame in got.adaptive.items()}
    return adaptive_frame(tables, paper, members, boot.estimate)


def run_bootstrap(got: Inputs, n_samples: int, level: float, seed: int) -> Bootstrap:
    """The run's one resample matrix over the attacked utterances (every white-box attack checked to share them)."""
    utt = check_same_utterances({str(s): _targets(f) for s, f in got.whitebox.items()})
    return Bootstrap(bootstrap_indices(len(utt), n_samples, seed), level)


def check_frame(
    tables: Sequence[Mapping],
    got: Inputs,
    settings: Sequence[Setting],
    scales: Sequence[float],
    steps: Sequence[int],
    sweep_floor: float,
    noise_margin: float,
    n_samples: int,
    level: float,
    seed: int,
    run_seed: int | None = None,
) -> tuple[pd.DataFrame, dict[str, pd.DataFrame], dict]:
    """(the checks' tidy frame of ``CHECK_COLUMNS``, the transfer matrices, the sweep points per setting)."""
    boot = run_bootstrap(got, n_samples, level, seed)
    rows: list[tuple[Setting, Verdict]] = []
    matrices, transfer = transfer_matrices(tables, got, boot)
    rows += [(s, v) for s, vs in transfer.items() for v in vs]
    rows += steps_rows(got, boot)
    sweeps = sweep_points(settings, scales, got, boot)
    rows += [(s, v) for s, pts in sweeps.items() for v in sweep_verdicts(pts, sweep_floor)]
    for s in settings:
        n = noise_numbers(s, got, boot)
        rows += [(s, v) for v in noise_rows(n, noise_margin)]
        pts = [(k, boot.estimate(_refs(got.untargeted[(s, k)]))) for k in steps]
        last = _refs(got.untargeted[(s, steps[-1])])
        rows += [
            (s, v)
            for v in untargeted_verdicts(
                pts,
                boot.difference(last, _refs(n["clean"])),
                n["benign_wer"].value,
                boot.difference(last, _refs(got.whitebox[s])),
                _refs(got.whitebox[s]).wer,
            )
        ]
    rows += seed_rows(tables, got, boot, run_seed)
    rows += adaptive_rows(adaptive_cells(tables, got, boot))
    frame = pd.DataFrame([{**s.row(), **v.row()} for s, v in rows], columns=CHECK_COLUMNS)
    order = {c: i for i, c in enumerate(CHECKS)}
    frame = (
        frame.assign(_o=frame["check"].map(order)).sort_values([*SETTING_KEYS, "_o"], kind="stable").drop(columns="_o")
    )
    return frame.reset_index(drop=True), matrices, sweeps


def setting_verdicts(frame: pd.DataFrame) -> dict[Setting, dict[str, str]]:
    """Per setting, per check it was given: ``passes`` or ``flag`` (``verdicts.overall``). ``frame`` may be read
    back from robustness_checks.csv, where an accent-only setting's empty ``tasks`` is NaN."""
    out: dict[Setting, dict[str, str]] = {}
    for (*key, check), part in fill_tasks(frame).groupby([*SETTING_KEYS, "check"]):
        verdicts = [Verdict(**{k: r[k] for k in VERDICT_COLUMNS}) for r in part.to_dict("records")]
        out.setdefault(Setting(*key), {})[check] = overall(verdicts)
    return out


# ------------------------------------------------------------------------------------------------ writing
def _num(v: float) -> str:
    return "–" if v is None or not math.isfinite(float(v)) else f"{float(v):.2f}"


def checks_markdown(
    frame: pd.DataFrame,
    settings: Sequence[Setting],
    scales: Sequence[float],
    n_samples: int,
    level: float,
    seed: int,
    n_utts: int,
    params: Mapping,
) -> str:
    summary = setting_verdicts(frame)
    lines = [
        "# Is the robustness real? Adaptive-attack and gradient-masking checks",
        "",
        f"Over {n_utts} attacked utterances; intervals: {100 * level:g}% percentile bootstrap ({n_samples} "
        f"resamples of the utterances, seed {seed}), the resamples of `advtwer.csv`. ε multipliers "
        f"{', '.join(f'{s:g}' for s in scales)} (α scaled alike); sweep, noise and untargeted checks on "
        f"{len(settings)} settings; noise: {params['noise_draws']} draws; thresholds: sweep_floor "
        f"{params['sweep_floor']:g}, noise_margin {params['noise_margin']:g}. Rules: "
        "`hne_core/robustness/verdicts.py`; docs/robustness.md.",
        "",
        "Target-word hits: the target words a hypothesis contains (jiwer's alignment of the hypothesis against the "
        "target: target words − substitutions − deletions); a hit rate is the hits over the target words (%). "
        "Steps, transfer and noise measure progress toward the target with it, since AdvTWER also falls when a "
        "hypothesis only gets shorter. A row whose item reads a − b gives the paired difference a − b as its value "
        "and the interval of that difference (the same resamples on both sides); seeds: the SD of AdvTWER over "
        "the training seeds against this run's bootstrap SE.",
        "",
        "## Verdicts per model",
        "",
        f"| setting ({setting_header(summary)}) | " + " | ".join(CHECKS) + " |",
        "|---|" + "---|" * len(CHECKS),
    ]
    for s in sorted(summary):
        cells = [("**flag**" if summary[s].get(c) == "flag" else summary[s].get(c, "–")) for c in CHECKS]
        lines.append(f"| {s.short} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "## Every rule, every number",
        "",
        "| setting | check | item | value [CI] | compared with | verdict | rule |",
        "|---|---|---|---:|---:|---|---|",
    ]
    for r in frame.to_dict("records"):
        s = Setting.of(r)
        lines.append(
            f"| {s.short} | {r['check']} | {escape_md(str(r['item']))} | {_num(r['value'])} "
            f"[{_num(r['ci_low'])}, {_num(r['ci_high'])}] | {_num(r['reference'])} | "
            f"{'**flag**' if r['verdict'] == 'flag' else r['verdict']} | {escape_md(str(r['rule']))} |"
        )
    return "\n".join(lines) + "\n"


def matrix_markdown(name: str, matrix: pd.DataFrame) -> str:
    lines = [
        f"# Transfer matrix: {escape_md(name)}",
        "",
        "AdvTWER (%) of each source's final δ (rows) decoded by each victim (columns); the diagonal is the "
        "victim's own white-box attack. Lower = the perturbation works better on that victim.",
        "",
        "| source \\ victim | " + " | ".join(escape_md(c) for c in matrix.columns) + " |",
        "|---|" + "---:|" * len(matrix.columns),
    ]
    for label, row in matrix.iterrows():
        lines.append(f"| {escape_md(str(label))} | " + " | ".join(_num(v) for v in row) + " |")
    return "\n".join(lines) + "\n"


def write_frame(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4f")


def write_outputs(
    frame: pd.DataFrame,
    matrices: Mapping[str, pd.DataFrame],
    md: str,
    csv_path: str | Path,
    md_path: str | Path,
    matrix_paths: Mapping[str, tuple[str | Path, str | Path]],
    seeds: pd.DataFrame,
    seeds_path: str | Path,
) -> None:
    write_frame(frame, csv_path)
    write_frame(seeds, seeds_path)
    write_text_atomic(md_path, md)
    for name, (csv, mdp) in matrix_paths.items():
        with atomic_path(csv) as tmp:
            matrices[name].to_csv(tmp, float_format="%.4f")
        write_text_atomic(mdp, matrix_markdown(name, matrices[name]))
