"""``paper_comparison.md``: every table cell beside the paper's, and the paper's findings checked one by one.

A finding (declared in config, ``findings:``) is a set of paired comparisons "A is better than B": for
``adv_twer`` better means a higher AdvTWER (harder to attack) at every PGD milestone, for ``benign_wer`` a lower
benign WER. ``best: X`` stands for X against every other attacked setting of the tables.

Each comparison is a paired difference (better minus worse for AdvTWER, worse minus better for WER, so a
positive number always agrees with the claim) with a bootstrap interval over the same resamples of the same
utterances for both sides: the attacked utterance set is shared by every attacked setting, and the benign test
split by every evaluated one. A comparison holds at a milestone when the difference is positive (a tie does
not hold); it is outside the bootstrap interval when the interval of the difference lies wholly above zero.
A finding holds when every comparison holds at every milestone, does not hold when none does, and partly
holds otherwise; the same verdict is computed on the paper's own published numbers where it gives them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from hne_core.results.aggregate import (
    Setting,
    UtteranceScores,
    bootstrap_indices,
    check_same_utterances,
    percentile_interval,
    resampled_wer,
    setting_header,
)
from hne_core.results.paper import budget_note, describe_mapping, milestone_map, paper_adv_twer, paper_benign_wer
from hne_core.results.tables import Column, escape_md

BENIGN = 0  # the "milestone" of a benign comparison


def parse_setting(text: str) -> Setting:
    """'1.0/0.5/0.0' or '0.7/0.0/0.0/sex1.0' (λA/λC(t)/λC(i)[/tasks]) -> Setting; the 3-part spelling is the
    paper's model (the accent alone), so a finding names a model with other tasks by its 4th part."""
    return Setting.parse(text)


def finding_pairs(finding: Mapping, attacked: Sequence[Setting]) -> list[tuple[Setting, Setting]]:
    """The (expected better, expected worse) pairs of a config finding."""
    if "best" in finding:
        best = parse_setting(finding["best"])
        return [(best, other) for other in sorted(set(attacked)) if other != best]
    return [(parse_setting(a), parse_setting(b)) for a, b in finding["comparisons"]]


@dataclass
class Difference:
    point: float
    low: float
    high: float

    @property
    def holds(self) -> bool:
        return self.point > 0

    @property
    def outside(self) -> bool:
        """The bootstrap interval of the paired difference excludes zero (in the claimed direction)."""
        return self.low > 0

    @property
    def against(self) -> bool:
        """The interval excludes zero on the other side: the run contradicts the claim beyond resampling noise."""
        return self.high < 0


@dataclass
class Comparison:
    better: Setting
    worse: Setting
    ours: dict[int, Difference]  # milestone (or BENIGN) -> difference
    paper: dict[int, float] = field(default_factory=dict)


@dataclass
class FindingResult:
    claim: str
    metric: str
    comparisons: list[Comparison]

    def _cells(self) -> list[Difference]:
        return [d for c in self.comparisons for d in c.ours.values()]

    @property
    def n(self) -> int:
        return len(self._cells())

    @property
    def n_hold(self) -> int:
        return sum(d.holds for d in self._cells())

    @property
    def n_outside(self) -> int:
        return sum(d.outside for d in self._cells())

    @property
    def n_against(self) -> int:
        return sum(d.against for d in self._cells())

    @property
    def verdict(self) -> str:
        return _verdict(self.n_hold, self.n)

    @property
    def paper_counts(self) -> tuple[int, int]:
        diffs = [v for c in self.comparisons for v in c.paper.values()]
        return sum(v > 0 for v in diffs), len(diffs)


def _verdict(k: int, n: int) -> str:
    if n == 0:
        return "not tested"
    return "holds" if k == n else "does not hold" if k == 0 else "partly holds"


def paired_difference(
    better: UtteranceScores, worse: UtteranceScores, indices: np.ndarray, level: float, higher_is_better: bool
) -> Difference:
    """Better minus worse (AdvTWER) or worse minus better (WER), with the interval of that difference over the
    same resamples for both sides."""
    check_same_utterances({"better": better, "worse": worse})
    sign = 1.0 if higher_is_better else -1.0
    point = sign * (better.wer - worse.wer)
    low, high = percentile_interval(sign * (resampled_wer(better, indices) - resampled_wer(worse, indices)), level)
    return Difference(point, low, high)


def evaluate_findings(
    findings: Sequence[Mapping],
    attack_scores: Mapping[tuple[Setting, int], UtteranceScores],
    benign_scores: Mapping[Setting, UtteranceScores],
    steps: Sequence[int],
    n_samples: int,
    level: float,
    seed: int,
    paper: pd.DataFrame | None = None,
) -> list[FindingResult]:
    """Every config finding on this run's per-utterance scores and on the paper's published numbers."""
    attacked = sorted({s for s, _ in attack_scores})
    adv_idx = (
        bootstrap_indices(len(next(iter(attack_scores.values())).utt_ids), n_samples, seed) if attack_scores else None
    )
    ben_idx = (
        bootstrap_indices(len(next(iter(benign_scores.values())).utt_ids), n_samples, seed) if benign_scores else None
    )
    paper_adv = paper_adv_twer(steps, paper)
    paper_ben = paper_benign_wer(paper)
    results = []
    for finding in findings:
        metric = finding["metric"]
        comparisons = []
        for better, worse in finding_pairs(finding, attacked):
            if metric == "adv_twer":
                ours = {
                    s: paired_difference(attack_scores[(better, s)], attack_scores[(worse, s)], adv_idx, level, True)
                    for s in steps
                }
                published = {
                    s: paper_adv[(better, s)] - paper_adv[(worse, s)]
                    for s in steps
                    if (better, s) in paper_adv and (worse, s) in paper_adv
                }
            else:
                ours = {BENIGN: paired_difference(benign_scores[better], benign_scores[worse], ben_idx, level, False)}
                published = (
                    {BENIGN: paper_ben[worse] - paper_ben[better]} if better in paper_ben and worse in paper_ben else {}
                )
            comparisons.append(Comparison(better, worse, ours, published))
        results.append(FindingResult(str(finding["claim"]), metric, comparisons))
    return results


# ------------------------------------------------------------------------------------------------ markdown
def _num(v: float, signed: bool = False) -> str:
    if v is None or not math.isfinite(v):
        return "–"
    return f"{v:+.2f}" if signed else f"{v:.2f}"


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = [
        "| " + " | ".join(escape_md(h) for h in header) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|",
    ]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines


def cells_section(
    tables: Sequence[Mapping], frame: pd.DataFrame, steps: Sequence[int], paper: pd.DataFrame | None
) -> list[str]:
    """One markdown table per config table: 'ours [CI] · paper' in every cell."""
    published = paper_adv_twer(steps, paper)
    mapping = milestone_map(steps)
    ours = {(Setting.of(r), int(r["steps"])): r for r in frame.to_dict("records")}
    lines = []
    for table in tables:
        columns = [Column.of(c) for c in table["columns"]]
        rows = []
        for s in steps:
            label = f"PGD-{s}" + (f" (paper PGD-{mapping[s]})" if s in mapping and mapping[s] != s else "")
            row = [escape_md(label)]
            for col in columns:
                r = ours.get((col.setting, s))
                mine = (
                    "–"
                    if r is None
                    else (f"{_num(r['adv_twer'])} [{_num(r['adv_twer_ci_low'])}, {_num(r['adv_twer_ci_high'])}]")
                )
                row.append(f"{mine} · paper {_num(published.get((col.setting, s), math.nan))}")
            rows.append(row)
        lines += [
            f"### {escape_md(table['title'])}",
            "",
            *_table(["steps"] + [f"{c.label} ({c.setting.short})" for c in columns], rows),
            "",
        ]
    return lines


def benign_section(benign: Mapping[Setting, UtteranceScores], paper: pd.DataFrame | None) -> list[str]:
    published = paper_benign_wer(paper)
    rows = [
        [escape_md(s.spelled), _num(benign[s].wer) if s in benign else "–", _num(v)]
        for s, v in sorted(published.items())
    ]
    return [
        "### Benign WER (%) where the paper gives it (section 5)",
        "",
        *_table(["setting", "this run", "paper"], rows),
        "",
    ]


def robustness_support(f: FindingResult, checks: Mapping[Setting, Mapping[str, str]]) -> str:
    """Whether the robustness checks (``robustness_checks.csv``: per setting, per check, passes or
    flag) support a finding that holds: every setting it calls more robust must pass every check it was given,
    since a flag (masking, a flat sweep, noise, a failed untargeted attack) says its AdvTWER may not be robustness.
    The text names, per setting, the checks it passed and those of the run it was not given (a setting outside
    ``robustness.settings`` gets transfer and steps, and seeds when retrained), so support by two checks never reads
    as support by six."""
    if f.metric != "adv_twer":
        return "not applicable (a benign-WER finding)"
    if f.verdict not in ("holds", "partly holds"):
        return "not needed (the finding does not hold on this run)"
    better = sorted({c.better for c in f.comparisons})
    unchecked = [s.short for s in better if s not in checks]
    flagged = [
        f"{s.short} ({', '.join(c for c, v in sorted(checks[s].items()) if v == 'flag')})"
        for s in better
        if s in checks and any(v == "flag" for v in checks[s].values())
    ]
    if flagged:
        return f"**not supported**: flagged {'; '.join(flagged)}" + (
            f"; not checked: {', '.join(unchecked)}" if unchecked else ""
        )
    run = sorted({c for given in checks.values() for c in given})
    passed = "; ".join(_checks_passed(s, checks[s], run) for s in better if s in checks)
    if unchecked:
        return f"partly checked: no flags{f' ({passed})' if passed else ''}, but not checked: {', '.join(unchecked)}"
    return f"supported by the checks run ({passed})"


def _checks_passed(setting: Setting, given: Mapping[str, str], run: Sequence[str]) -> str:
    """'1.0/0.3/0.0 passes steps, transfer (not given: noise, sweep)': what one setting's support rests on."""
    missing = [c for c in run if c not in given]
    return f"{setting.short} passes {', '.join(sorted(given))}" + (
        f" (not given: {', '.join(missing)})" if missing else ""
    )


def seed_support(f: FindingResult, seeds: pd.DataFrame) -> str:
    """The finding judged across training seeds (``robustness_seeds.csv``: AdvTWER at the last milestone
    per retrained setting and seed, this run's seed included): for each of its comparisons whose two settings were
    both retrained, at how many seeds the better one has the higher AdvTWER. A finding that holds at this run's
    seed but not at every seed is reported as depending on the seed, whatever the bootstrap over utterances says,
    since the bootstrap resamples utterances and never the training."""
    if f.metric != "adv_twer":
        return "not applicable (a benign-WER finding)"
    per: dict[Setting, dict[int, float]] = {}
    for r in seeds.to_dict("records"):
        per.setdefault(Setting.of(r), {})[int(r["seed"])] = float(r["adv_twer"])
    judged: list[tuple[Comparison, int, int]] = []  # (comparison, seeds where it holds, seeds)
    for c in f.comparisons:
        common = sorted(set(per.get(c.better, {})) & set(per.get(c.worse, {})))
        if len(common) >= 2:
            judged.append((c, sum(per[c.better][k] > per[c.worse][k] for k in common), len(common)))
    if not judged:
        return "not judged (no comparison of it has both settings retrained: robustness.seed_settings)"
    if all(held == n for _, held, n in judged):
        verdict = "holds at every seed"
    elif all(held == 0 for _, held, _ in judged):
        verdict = "holds at no seed"
    else:
        verdict = "**depends on the training seed**"
    counts = "; ".join(f"{c.better.short} vs {c.worse.short} {held} of {n}" for c, held, n in judged)
    rest = len(f.comparisons) - len(judged)
    return (
        f"{verdict} at PGD-{int(seeds['steps'].max())} (seeds where the better side has the higher AdvTWER: "
        f"{counts})" + (f"; {rest} comparisons not retrained" if rest else "")
    )


def findings_section(
    results: Sequence[FindingResult],
    steps: Sequence[int],
    level: float,
    checks: Mapping[Setting, Mapping[str, str]] | None = None,
    seeds: pd.DataFrame | None = None,
) -> list[str]:
    pct = f"{100 * level:g}%"
    lines = []
    for i, f in enumerate(results, 1):
        k_paper, n_paper = f.paper_counts
        lines += [
            f"### {i}. {escape_md(f.claim)}: **{f.verdict}**",
            "",
            f"- This run: {f.n_hold} of {f.n} paired differences in the claimed direction; {f.n_outside} of "
            f"{f.n} outside the {pct} bootstrap interval (the interval of the paired difference lies wholly "
            f"above zero); {f.n_against} of {f.n} wholly below zero (against the claim).",
            f"- The paper's numbers: {_verdict(k_paper, n_paper)} ({k_paper} of {n_paper} where it gives both sides).",
            *(
                [f"- Robustness checks (robustness_checks.md): {robustness_support(f, checks)}."]
                if checks is not None
                else []
            ),
            *(
                [f"- Across training seeds (robustness_seeds.csv): {seed_support(f, seeds)}."]
                if seeds is not None and len(seeds)
                else []
            ),
            "",
        ]
        what = "AdvTWER (better − worse)" if f.metric == "adv_twer" else "benign WER (worse − better)"
        cols = [f"PGD-{s}" for s in steps] if f.metric == "adv_twer" else ["test split"]
        keys = list(steps) if f.metric == "adv_twer" else [BENIGN]
        rows = []
        for c in f.comparisons:
            cells = []
            for key in keys:
                d = c.ours[key]
                mark = ("✓" if d.holds else "✗") + (" (outside CI)" if d.outside or d.against else "")
                paper = f" · paper {_num(c.paper[key], True)}" if key in c.paper else ""
                cells.append(f"{_num(d.point, True)} [{_num(d.low, True)}, {_num(d.high, True)}] {mark}{paper}")
            rows.append([f"{c.better.short} vs {c.worse.short}", *cells])
        header = setting_header(s for c in f.comparisons for s in (c.better, c.worse))
        lines += [*_table([f"{what}, {header}", *cols], rows), ""]
    return lines


def comparison_markdown(
    tables: Sequence[Mapping],
    frame: pd.DataFrame,
    results: Sequence[FindingResult],
    benign: Mapping[Setting, UtteranceScores],
    steps: Sequence[int],
    n_samples: int,
    level: float,
    seed: int,
    paper: pd.DataFrame | None = None,
    checks: Mapping[Setting, Mapping[str, str]] | None = None,
    seeds: pd.DataFrame | None = None,
) -> str:
    n_utts = int(frame["n_utts"].max()) if len(frame) else 0
    note = budget_note(steps)
    intro = [
        "# This run beside Das & Chau (Interspeech 2022)",
        "",
        *([f"**{note}.**", ""] if note else []),
        f"AdvTWER (%) over {n_utts} attacked utterances; in brackets the {100 * level:g}% percentile bootstrap "
        f"interval ({n_samples} resamples of the utterances, seed {seed}), then the paper's published value "
        f"(about 1000 Common Voice utterances). {describe_mapping(steps)}",
        "",
        "## Every cell",
        "",
    ]
    return (
        "\n".join(
            [
                *intro,
                *cells_section(tables, frame, steps, paper),
                *benign_section(benign, paper),
                "## The paper's findings",
                "",
                "Each finding is a set of paired comparisons (config `findings:`); a positive difference "
                "agrees with the claim. ✓ = in the claimed direction (a tie is not), ✗ = not.",
                "",
                *findings_section(results, steps, level, checks, seeds),
            ]
        )
        + "\n"
    )
