"""The verdict rules of the robustness checks: numbers in, ``Verdict`` rows out, no files.

Every rule compares a number with a bootstrap interval (a percentile interval over resamples of the attacked
utterances, the same resamples for every number of a run), with a bootstrap standard error, or with a stated
threshold of config ``robustness:``, and says which. A check passes for a model when none of its rows flags.

Progress toward the target is measured in target-word hits (``report.hit_counts``: the target words a hypothesis
contains, by jiwer's alignment of the hypothesis against the target), not by AdvTWER alone: AdvTWER counts
insertions, so a shorter hypothesis lowers it without spelling one word of the target (an empty hypothesis
scores 100, a long wrong one more). A hit rate is the hits over the target words, in percent; a perturbation
cannot raise it by cutting the output short. The rules, in the words the outputs use:

- ``steps``: more steps of the same attack must not reach fewer target words: flag when the paired interval
  of hit rate(PGD-k+1) − hit rate(PGD-k) lies wholly below 0 (the attack gets weaker with more steps: its
  gradient misleads it). AdvTWER of both milestones is printed beside it.
- ``sweep``: AdvTWER at the last milestone must not rise with ε beyond the smaller ε's interval (flag:
  AdvTWER(ε') > CI-high(ε) for ε' > ε), and must keep falling toward 0: at the largest ε, an AdvTWER above
  ``sweep_floor`` that the last increase of ε did not lower beyond the previous ε's interval (AdvTWER(ε_max)
  ≥ CI-low(ε_prev)) is a curve that flattens (flag). An unbounded attack must succeed eventually.
- ``transfer``: a victim must not reach more of the target under another model's δ than under its own
  white-box δ: flag when the paired interval of hit rate(source -> victim) − hit rate(victim's own) lies wholly
  above 0 (its own gradient misleads its attack: masking).
- ``noise``: the attack must beat random noise of its own norms toward the target: flag unless the paired
  interval of AdvTWER(attack) − AdvTWER(noise) lies wholly below 0, and flag unless the paired interval of hit
  rate(attack) − hit rate(noise) lies wholly above 0 (an attack no better than noise of its size is masked or
  broken). And noise must not spell the target by itself: flag when hit rate(noise) − hit rate(benign) exceeds
  ``noise_margin`` points (the targets or the metric are then broken). The share of the attack's WER damage
  that the noise does alone is reported beside it.
- ``untargeted``: the WER against the references under the untargeted attack must not fall from one milestone
  to the next beyond the earlier one's interval; at the last milestone it must exceed the benign WER (the
  interval of the paired difference wholly above zero) and must not be below the targeted attack's WER against
  the references (the interval of that paired difference wholly below zero flags): ascending the loss of the
  truth is the easier goal.
- ``seeds`` (training noise): the model fine-tuned again with each of ``robustness.seeds`` and attacked to the
  last milestone. Flag when the standard deviation of AdvTWER across seeds (n − 1 in the denominator, this
  run's seed included) exceeds this run's bootstrap standard error (the SD of the resampled AdvTWER): retraining
  moves AdvTWER more than resampling utterances says it can. Both are spreads of one AdvTWER, so they compare
  like with like (the range of three seeds against a 95 % interval's width flags only at about 2.3 times the
  bootstrap SD). And, for a column against a baseline of its table retrained alike, flag when the difference
  (column − baseline) does not keep one strict sign across the seeds (the ranking is training noise).
- ``adaptive``: the attackers who also use the heads the victim does not decode with (``robustness.adaptive``:
  their own λC(a), ± μ·L_DIS) must not do better than the paper's attacker beyond its interval: flag when the
  worst case's interval (the member with the lowest AdvTWER) lies wholly below the paper attacker's interval.
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
class Paired:
    """Two numbers of the same utterances (percent) and the bootstrap interval of their paired difference
    ``first − second`` (the same resamples of the utterances on both sides)."""

    first: float
    second: float
    low: float
    high: float

    @property
    def difference(self) -> float:
        return self.first - self.second


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


def steps_verdict(earlier: int, later: int, hits: Paired, adv_twer: tuple[float, float]) -> Verdict:
    """Milestone ``later`` of an attack against its ``earlier`` one: ``hits`` is the target-word hit rate, later
    (first) against earlier (second); ``adv_twer``: AdvTWER (later, earlier), printed beside it only, since
    AdvTWER also moves with the hypothesis' length."""
    return Verdict(
        "steps",
        f"PGD-{later} − PGD-{earlier}: target-word hits {hits.first:.2f} − {hits.second:.2f} % "
        f"(AdvTWER {adv_twer[0]:.2f} vs {adv_twer[1]:.2f})",
        hits.difference,
        hits.low,
        hits.high,
        0.0,
        _v(hits.high < 0),
        f"flag if the paired interval of hit rate(PGD-{later}) − hit rate(PGD-{earlier}) lies wholly below 0 "
        "(more steps reach fewer target words)",
    )


def adaptive_verdict(steps: int, paper: Estimate, worst: Estimate, attacker: str) -> Verdict:
    """The worst case over the adaptive family at one milestone against the paper's attacker: a setting whose
    robustness holds only against the paper's attacker has a worst case wholly below the paper's interval."""
    return Verdict(
        "adaptive",
        f"PGD-{steps}: the worst case ({attacker}) against the paper's attacker",
        worst.value,
        worst.low,
        worst.high,
        paper.value,
        _v(worst.high < paper.low),
        "flag if the worst case's interval lies wholly below the paper attacker's interval",
    )


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


def transfer_verdict(source: str, hits: Paired, adv_twer: tuple[float, float]) -> Verdict:
    """One source's δ decoded by the victim against the victim's own white-box δ: ``hits`` is the target-word hit
    rate, transferred (first) against own (second); ``adv_twer``: AdvTWER (transferred, own), printed beside it
    only (a δ that only cuts the victim's output short lowers AdvTWER without reaching the target)."""
    return Verdict(
        "transfer",
        f"source {source} − own: target-word hits {hits.first:.2f} − {hits.second:.2f} % "
        f"(AdvTWER {adv_twer[0]:.2f} vs {adv_twer[1]:.2f})",
        hits.difference,
        hits.low,
        hits.high,
        0.0,
        _v(hits.low > 0),
        "flag if the paired interval of hit rate(source's δ → victim) − hit rate(victim's own δ) lies wholly above 0 "
        "(the victim reaches more of the target under another model's δ than under its own: masking)",
    )


def noise_verdicts(
    adv_twer: Paired, hits: Paired, benign_hits: float, margin: float, noise_share: float
) -> list[Verdict]:
    """The attack (first) against random noise of its norms (second), in AdvTWER and in target-word hit rate, both
    paired over the utterances (the noise draws of an utterance pooled); and the noise's hit rate against the
    benign one (``noise_share``: the share of the attack's WER damage the noise does alone, informational)."""
    share = "–" if not math.isfinite(noise_share) else f"{100 * noise_share:.0f} %"
    over_benign = hits.second - benign_hits
    return [
        Verdict(
            "noise",
            f"attack − noise: AdvTWER {adv_twer.first:.2f} − {adv_twer.second:.2f}",
            adv_twer.difference,
            adv_twer.low,
            adv_twer.high,
            0.0,
            _v(not adv_twer.high < 0),
            "flag unless the paired interval of AdvTWER(attack) − AdvTWER(noise of the attack's norms) lies wholly "
            "below 0 (the attack does no better than noise of its size)",
        ),
        Verdict(
            "noise",
            f"attack − noise: target-word hits {hits.first:.2f} − {hits.second:.2f} %",
            hits.difference,
            hits.low,
            hits.high,
            0.0,
            _v(not hits.low > 0),
            "flag unless the paired interval of hit rate(attack) − hit rate(noise of the attack's norms) lies wholly "
            "above 0 (the attack reaches no more of the target than noise of its size)",
        ),
        Verdict(
            "noise",
            f"noise − benign: target-word hits {hits.second:.2f} − {benign_hits:.2f} % (noise does {share} of the "
            "attack's WER damage)",
            over_benign,
            math.nan,
            math.nan,
            float(margin),
            _v(over_benign > margin),
            f"flag if hit rate(noise) − hit rate(benign) > {margin:g} (noise alone spells the target: the targets "
            "or the metric are broken)",
        ),
    ]


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
    per_seed: Mapping[int, float], bootstrap_se: float, against: Mapping[str, Mapping[int, float]]
) -> list[Verdict]:
    """``per_seed``: AdvTWER at the last milestone per training seed (this run's included, two or more);
    ``bootstrap_se``: the standard error of this run's AdvTWER over the utterance resamples; ``against``: per
    baseline (named), the difference column − baseline per seed."""
    if len(per_seed) < 2:
        raise ValueError(f"a spread over seeds needs two or more seeds, got {sorted(per_seed)}")
    values = [per_seed[k] for k in sorted(per_seed)]
    sd = float(np.std(values, ddof=1))
    seeds = ", ".join(f"{k}: {per_seed[k]:.2f}" for k in sorted(per_seed))
    out = [
        Verdict(
            "seeds",
            f"SD of AdvTWER over seeds ({seeds}; mean {np.mean(values):.2f}) vs this run's bootstrap SE",
            sd,
            math.nan,
            math.nan,
            float(bootstrap_se),
            _v(sd > bootstrap_se),
            "flag if the SD of AdvTWER over the training seeds (n − 1) > this run's bootstrap SE (the SD of its "
            "resampled AdvTWER)",
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
