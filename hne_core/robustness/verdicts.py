"""The verdict rules of the robustness checks: numbers in, ``Verdict`` rows out, no files.

Every rule compares a number with a bootstrap interval (a percentile interval over resamples of the attacked
utterances, the same resamples for every number of a run) or with a stated threshold of config ``robustness:``,
and says which. A check passes for a model when none of its rows flags. The rules, in the words the outputs use:

- ``steps``: AdvTWER must not rise from one milestone to the next beyond the earlier milestone's interval
  (flag: AdvTWER(k+1) > CI-high(k)); more steps of the same attack cannot make it weaker unless its gradient
  misleads it.
- ``sweep``: AdvTWER at the last milestone must not rise with ε beyond the smaller ε's interval (flag:
  AdvTWER(ε') > CI-high(ε) for ε' > ε), and must keep falling toward 0: at the largest ε, an AdvTWER above
  ``sweep_floor`` that the last increase of ε did not lower beyond the previous ε's interval (AdvTWER(ε_max)
  ≥ CI-low(ε_prev)) is a curve that flattens (flag). An unbounded attack must succeed eventually.
- ``transfer``: a victim must not fall further to another model's δ than to its own white-box δ: flag when the
  interval of the paired difference AdvTWER(source -> victim) − AdvTWER(victim's own) lies wholly below zero.
- ``noise``: random noise of the attack's norms must leave AdvTWER near the benign one: flag when the noise's
  AdvTWER is below the benign AdvTWER by more than ``noise_margin`` points (the targets are then not what the
  attack moves toward, or the metric is broken). The share of the attack's WER damage that the noise does
  alone is reported beside it.
- ``untargeted``: the WER against the references under the untargeted attack must not fall from one milestone
  to the next beyond the earlier one's interval; at the last milestone it must exceed the benign WER (the
  interval of the paired difference wholly above zero) and must not be below the targeted attack's WER against
  the references (the interval of that paired difference wholly below zero flags): ascending the loss of the
  truth is the easier goal.
- ``seeds`` (training noise): the model fine-tuned again with each of ``robustness.seeds`` and attacked to the
  last milestone. Flag when the spread of AdvTWER across seeds (max − min, this run's seed included) is wider
  than this run's bootstrap interval (retraining moves AdvTWER more than resampling utterances says it can), and,
  for a column against a baseline of its table retrained alike, when the difference (column − baseline) does not
  keep one strict sign across the seeds (the ranking is training noise).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np

PASSES, FLAG = "passes", "flag"


@dataclass(frozen=True)
class Estimate:
    """A point value with its bootstrap interval (percent)."""

    value: float
    low: float
    high: float


@dataclass(frozen=True)
class Verdict:
    check: str
    item: str  # what was compared: "PGD-100 vs PGD-50", "ε×2.0 vs ε×1.0", "source 1.0/0.0/0.0"
    value: float
    ci_low: float
    ci_high: float
    reference: float  # what it was compared with (NaN where the rule has none)
    verdict: str
    rule: str

    def row(self) -> dict:
        return asdict(self)


def _v(flag: bool) -> str:
    return FLAG if flag else PASSES


def steps_verdicts(points: Sequence[tuple[int, Estimate]]) -> list[Verdict]:
    """AdvTWER per milestone (increasing): flag a rise beyond the earlier milestone's interval."""
    out = []
    points = sorted(points)
    for (s0, a), (s1, b) in zip(points, points[1:]):
        out.append(
            Verdict(
                "steps",
                f"PGD-{s1} vs PGD-{s0}",
                b.value,
                b.low,
                b.high,
                a.high,
                _v(b.value > a.high),
                f"flag if AdvTWER(PGD-{s1}) > CI-high(PGD-{s0})",
            )
        )
    return out


def sweep_verdicts(points: Sequence[tuple[float, Estimate]], floor: float) -> list[Verdict]:
    """AdvTWER at the last milestone per ε multiplier: must fall with ε, and not flatten above ``floor``."""
    out = []
    points = sorted(points)
    for (e0, a), (e1, b) in zip(points, points[1:]):
        out.append(
            Verdict(
                "sweep",
                f"ε×{e1:g} vs ε×{e0:g}",
                b.value,
                b.low,
                b.high,
                a.high,
                _v(b.value > a.high),
                f"flag if AdvTWER(ε×{e1:g}) > CI-high(ε×{e0:g})",
            )
        )
    if len(points) >= 2:
        (e0, a), (e1, b) = points[-2], points[-1]
        flat = b.value > floor and b.value >= a.low
        out.append(
            Verdict(
                "sweep",
                f"ε×{e1:g} (largest) vs ε×{e0:g}",
                b.value,
                b.low,
                b.high,
                a.low,
                _v(flat),
                f"flag (flattens) if AdvTWER(ε×{e1:g}) > {floor:g} and ≥ CI-low(ε×{e0:g})",
            )
        )
    return out


def transfer_verdicts(source: str, difference: Estimate, transferred: float, whitebox: float) -> Verdict:
    """One source against the victim's own white-box attack; ``difference`` = transferred − white-box (paired)."""
    return Verdict(
        "transfer",
        f"source {source}",
        transferred,
        difference.low + whitebox,
        difference.high + whitebox,
        whitebox,
        _v(difference.high < 0),
        "flag if the interval of AdvTWER(source→victim) − AdvTWER(white-box) lies wholly below 0",
    )


def noise_verdict(noise: Estimate, benign: float, margin: float, noise_share: float) -> Verdict:
    """Random noise of the attack's norms against the benign AdvTWER (``noise_share``: informational)."""
    share = "–" if not math.isfinite(noise_share) else f"{100 * noise_share:.0f} %"
    return Verdict(
        "noise",
        f"noise vs benign (noise does {share} of the attack's WER damage)",
        noise.value,
        noise.low,
        noise.high,
        benign,
        _v(noise.value < benign - margin),
        f"flag if the noise's AdvTWER < benign AdvTWER − {margin:g}",
    )


def untargeted_verdicts(
    points: Sequence[tuple[int, Estimate]],
    over_benign: Estimate,
    benign: float,
    over_targeted: Estimate,
    targeted: float,
) -> list[Verdict]:
    """WER against the references per milestone (increasing) under the untargeted attack; ``over_benign`` and
    ``over_targeted``: paired differences at the last milestone (untargeted − benign, untargeted − targeted)."""
    out = []
    points = sorted(points)
    for (s0, a), (s1, b) in zip(points, points[1:]):
        out.append(
            Verdict(
                "untargeted",
                f"WER PGD-{s1} vs PGD-{s0}",
                b.value,
                b.low,
                b.high,
                a.low,
                _v(b.value < a.low),
                f"flag if WER(PGD-{s1}) < CI-low(PGD-{s0})",
            )
        )
    last_steps, last = points[-1]
    out.append(
        Verdict(
            "untargeted",
            f"WER PGD-{last_steps} vs benign",
            last.value,
            last.low,
            last.high,
            benign,
            _v(not over_benign.low > 0),
            "flag unless the interval of WER(untargeted) − WER(benign) lies wholly above 0",
        )
    )
    out.append(
        Verdict(
            "untargeted",
            f"WER PGD-{last_steps} vs the targeted attack's",
            last.value,
            last.low,
            last.high,
            targeted,
            _v(over_targeted.high < 0),
            "flag if the interval of WER(untargeted) − WER(targeted) lies wholly below 0",
        )
    )
    return out


def overall(verdicts: Sequence[Verdict]) -> str:
    """A check passes for a model when none of its rows flags."""
    return FLAG if any(v.verdict == FLAG for v in verdicts) else PASSES


def seeds_verdicts(
    per_seed: Mapping[int, float], main: Estimate, against: Mapping[str, Mapping[int, float]]
) -> list[Verdict]:
    """``per_seed``: AdvTWER at the last milestone per training seed (this run's included, as ``main``'s value);
    ``against``: per baseline (named), the difference column − baseline per seed."""
    values = [per_seed[k] for k in sorted(per_seed)]
    spread = max(values) - min(values)
    seeds = ", ".join(f"{k}: {per_seed[k]:.2f}" for k in sorted(per_seed))
    out = [
        Verdict(
            "seeds",
            f"AdvTWER over seeds ({seeds})",
            float(np.mean(values)),
            min(values),
            max(values),
            main.high - main.low,
            _v(spread > main.high - main.low),
            "flag if max − min over seeds > the width of this run's bootstrap interval",
        )
    ]
    for name, diffs in sorted(against.items()):
        d = [diffs[k] for k in sorted(diffs)]
        stable = all(x > 0 for x in d) or all(x < 0 for x in d)
        out.append(
            Verdict(
                "seeds",
                f"minus baseline {name} over seeds ({', '.join(f'{x:+.2f}' for x in d)})",
                float(np.mean(d)),
                min(d),
                max(d),
                math.nan,
                _v(not stable),
                "flag unless the difference from the baseline has one strict sign at every seed",
            )
        )
    return out
