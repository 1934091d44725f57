"""The robustness checks' tables: every check's numbers per model, its verdict and the rule that decided it
(``robustness_checks.csv``/``.md``), the transfer matrices per table (source × victim AdvTWER), and the numbers
the figures draw. Reads job outputs only; every setting comes from the files' own columns or summaries.

Every interval is a percentile bootstrap over the attacked utterances with ``results.bootstrap_samples``
resamples from ``seed``: the resample matrix of ``advtwer.csv``, so a number here and a cell there are
resampled alike, and every paired difference uses the same resamples on both sides.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from hne_core.atomic import atomic_path, write_text_atomic
from hne_core.naming import seed_of
from hne_core.results.aggregate import (
    ResultsError,
    Setting,
    UtteranceScores,
    bootstrap_indices,
    check_same_utterances,
    edit_counts,
    percentile_interval,
    read_summary,
    resampled_wer,
    scores_from_frame,
    sibling,
)
from hne_core.results.tables import Column, escape_md
from hne_core.robustness.noise import BENIGN_DRAW
from hne_core.robustness.transfer import SOURCE_KEYS
from hne_core.robustness.verdicts import (
    Estimate,
    Verdict,
    noise_verdict,
    overall,
    seeds_verdicts,
    steps_verdicts,
    sweep_verdicts,
    transfer_verdicts,
    untargeted_verdicts,
)

CHECKS = ("transfer", "sweep", "steps", "noise", "untargeted", "seeds")
CHECK_COLUMNS = [
    "lambda_a",
    "lambda_c_train",
    "lambda_c_infer",
    "check",
    "item",
    "value",
    "ci_low",
    "ci_high",
    "reference",
    "verdict",
    "rule",
]


@dataclass
class Bootstrap:
    indices: np.ndarray
    level: float

    def estimate(self, scores: UtteranceScores) -> Estimate:
        return Estimate(scores.wer, *percentile_interval(resampled_wer(scores, self.indices), self.level))

    def difference(self, a: UtteranceScores, b: UtteranceScores) -> Estimate:
        """a − b (percent points), paired over the same resampled utterances."""
        check_same_utterances({"a": a, "b": b})
        diff = resampled_wer(a, self.indices) - resampled_wer(b, self.indices)
        return Estimate(a.wer - b.wer, *percentile_interval(diff, self.level))


def pooled_scores(frame: pd.DataFrame, reference_column: str) -> UtteranceScores:
    """Scores of several decodes of each utterance (noise draws) pooled per utterance: edits and words summed
    over the draws, so resampling an utterance resamples all its draws together."""
    edits, words = edit_counts(list(frame[reference_column]), list(frame["hypothesis"]))
    grouped = (
        pd.DataFrame({"utt_id": frame["utt_id"].astype(str), "e": edits, "w": words}).groupby("utt_id", sort=True).sum()
    )
    return UtteranceScores(tuple(grouped.index), grouped["e"].to_numpy(np.int64), grouped["w"].to_numpy(np.int64))


def _read(path: str | Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False)


def _setting_of_row(row: Mapping, prefix: str = "") -> Setting:
    return Setting(*(round(float(row[f"{prefix}{k}"]), 6) for k in ("lambda_a", "lambda_c_train", "lambda_c_infer")))


@dataclass
class Inputs:
    """Per-utterance scores of every job the checks read, keyed by setting."""

    whitebox: dict[Setting, pd.DataFrame] = field(default_factory=dict)  # main attack, last milestone
    transfer: dict[tuple[Setting, Setting], pd.DataFrame] = field(default_factory=dict)  # (source, victim)
    sweep: dict[tuple[Setting, float], pd.DataFrame] = field(default_factory=dict)  # scale != 1
    noise: dict[Setting, pd.DataFrame] = field(default_factory=dict)
    untargeted: dict[tuple[Setting, int], pd.DataFrame] = field(default_factory=dict)
    seeds: dict[tuple[Setting, int], pd.DataFrame] = field(default_factory=dict)  # (setting, seed)


def read_inputs(
    whitebox_summaries: Sequence[str],
    whitebox_csvs: Sequence[str],
    transfer_csvs: Sequence[str],
    sweep_summaries: Sequence[str],
    sweep_csvs: Sequence[str],
    noise_csvs: Sequence[str],
    untargeted_summaries: Sequence[str],
    untargeted_csvs: Sequence[str],
    base_epsilon: float,
    seed_summaries: Sequence[str] = (),
    seed_csvs: Sequence[str] = (),
) -> Inputs:
    """Every job output, keyed by the setting (and steps / ε multiplier) its own summary or columns carry."""
    got = Inputs()
    for path in whitebox_summaries:
        got.whitebox[Setting.of(read_summary(path))] = _read(sibling(path, "utterances.csv", whitebox_csvs))
    for path in transfer_csvs:
        frame = _read(path)
        for _, part in frame.groupby([*SOURCE_KEYS, "lambda_a", "lambda_c_train", "lambda_c_infer"]):
            row = part.iloc[0]
            got.transfer[(_setting_of_row(row, "source_"), _setting_of_row(row))] = part
    for path in sweep_summaries:
        summary = read_summary(path)
        scale = round(float(summary["eps"]) / float(base_epsilon), 6)
        got.sweep[(Setting.of(summary), scale)] = _read(sibling(path, "utterances.csv", sweep_csvs))
    for path in noise_csvs:
        frame = _read(path)
        got.noise[_setting_of_row(frame.iloc[0])] = frame
    for path in untargeted_summaries:
        summary = read_summary(path)
        got.untargeted[(Setting.of(summary), int(summary["steps"]))] = _read(
            sibling(path, "utterances.csv", untargeted_csvs)
        )
    for path in seed_summaries:  # the seed is the folder's (naming.seed_dir); the setting the summary's
        got.seeds[(Setting.of(read_summary(path)), seed_of(path))] = _read(sibling(path, "utterances.csv", seed_csvs))
    return got


def _targets(frame: pd.DataFrame) -> UtteranceScores:
    return scores_from_frame(frame, "target")


def _refs(frame: pd.DataFrame) -> UtteranceScores:
    return scores_from_frame(frame, "reference")


# ------------------------------------------------------------------------------------------------ the checks
def transfer_matrices(
    tables: Sequence[Mapping], got: Inputs, boot: Bootstrap
) -> tuple[dict[str, pd.DataFrame], dict[Setting, list[Verdict]]]:
    """Per table with two or more columns: AdvTWER source (rows) × victim (columns), the diagonal the victim's own
    white-box attack; and the transfer verdicts of every victim, per source and table."""
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
                moved = _targets(got.transfer[key])
                mat.iloc[si, vi] = moved.wer
                verdicts.setdefault(victim.setting, []).append(
                    transfer_verdicts(
                        f"{source.setting.short} ({table['name']})", boot.difference(moved, own), moved.wer, own.wer
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
    frame = got.noise[setting]
    draw = frame["draw"].astype(int)
    clean, noisy = frame[draw == BENIGN_DRAW], frame[draw != BENIGN_DRAW]
    attack = got.whitebox[setting]
    benign_adv, benign_wer = _targets(clean).wer, boot.estimate(_refs(clean))
    noise_adv, noise_wer = (
        boot.estimate(pooled_scores(noisy, "target")),
        boot.estimate(pooled_scores(noisy, "reference")),
    )
    attack_wer = _refs(attack).wer
    damage = attack_wer - benign_wer.value
    share = (noise_wer.value - benign_wer.value) / damage if damage > 0 else math.nan
    return {
        "benign_adv": benign_adv,
        "benign_wer": benign_wer,
        "noise_adv": noise_adv,
        "noise_wer": noise_wer,
        "attack_wer": attack_wer,
        "share": share,
        "clean": clean,
    }


SEED_COLUMNS = ["lambda_a", "lambda_c_train", "lambda_c_infer", "seed", "steps", "adv_twer"]


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
        {"lambda_a": s.lambda_a, "lambda_c_train": s.lambda_c_train, "lambda_c_infer": s.lambda_c_infer,
         "seed": k, "steps": int(steps), "adv_twer": v}
        for s, values in per_seed_advtwer(got, run_seed).items()
        for k, v in sorted(values.items())
    ]  # fmt: skip
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
        rows += [(s, v) for v in seeds_verdicts(per_seed[s], boot.estimate(_targets(got.whitebox[s])), against)]
    return rows


def check_frame(
    tables: Sequence[Mapping],
    advtwer: pd.DataFrame,
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
    utt = check_same_utterances({str(s): _targets(f) for s, f in got.whitebox.items()})
    boot = Bootstrap(bootstrap_indices(len(utt), n_samples, seed), level)
    rows: list[tuple[Setting, Verdict]] = []
    matrices, transfer = transfer_matrices(tables, got, boot)
    rows += [(s, v) for s, vs in transfer.items() for v in vs]
    for s in sorted({Setting.of(r) for r in advtwer.to_dict("records")}):
        part = advtwer[[Setting.of(r) == s for r in advtwer.to_dict("records")]]
        pts = [
            (int(r["steps"]), Estimate(r["adv_twer"], r["adv_twer_ci_low"], r["adv_twer_ci_high"]))
            for r in part.to_dict("records")
        ]
        rows += [(s, v) for v in steps_verdicts(pts)]
    sweeps = sweep_points(settings, scales, got, boot)
    rows += [(s, v) for s, pts in sweeps.items() for v in sweep_verdicts(pts, sweep_floor)]
    for s in settings:
        n = noise_numbers(s, got, boot)
        rows.append((s, noise_verdict(n["noise_adv"], n["benign_adv"], noise_margin, n["share"])))
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
    frame = pd.DataFrame(
        [
            {"lambda_a": s.lambda_a, "lambda_c_train": s.lambda_c_train, "lambda_c_infer": s.lambda_c_infer, **v.row()}
            for s, v in rows
        ],
        columns=CHECK_COLUMNS,
    )
    order = {c: i for i, c in enumerate(CHECKS)}
    frame = (
        frame.assign(_o=frame["check"].map(order))
        .sort_values(["lambda_a", "lambda_c_train", "lambda_c_infer", "_o"], kind="stable")
        .drop(columns="_o")
    )
    return frame.reset_index(drop=True), matrices, sweeps


def setting_verdicts(frame: pd.DataFrame) -> dict[Setting, dict[str, str]]:
    """Per setting, per check it was given: ``passes`` or ``flag`` (``verdicts.overall``)."""
    out: dict[Setting, dict[str, str]] = {}
    for (a, t, i, check), part in frame.groupby(["lambda_a", "lambda_c_train", "lambda_c_infer", "check"]):
        verdicts = [Verdict(**{k: r[k] for k in CHECK_COLUMNS[3:]}) for r in part.to_dict("records")]
        out.setdefault(Setting(round(float(a), 6), round(float(t), 6), round(float(i), 6)), {})[check] = overall(
            verdicts
        )
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
        "## Verdicts per model",
        "",
        "| setting (λA/λC(t)/λC(i)) | " + " | ".join(CHECKS) + " |",
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
        s = Setting(r["lambda_a"], r["lambda_c_train"], r["lambda_c_infer"])
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
    with atomic_path(csv_path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_path(seeds_path) as tmp:
        seeds.to_csv(tmp, index=False, float_format="%.4f")
    write_text_atomic(md_path, md)
    for name, (csv, mdp) in matrix_paths.items():
        with atomic_path(csv) as tmp:
            matrices[name].to_csv(tmp, float_format="%.4f")
        write_text_atomic(mdp, matrix_markdown(name, matrices[name]))
