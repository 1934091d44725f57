"""The robustness checks: every verdict rule fed constructed numbers where it must pass and where it must
flag; the untargeted step of both engines; and (slow) a real smoke run of every check, with the partial-rerun plan
of one ε added to the sweep."""

from __future__ import annotations

import math
import shutil

import jiwer
import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, SMOKE, planned_jobs, run_snakemake

from hne_core.attack.pgd import l2_step
from hne_core.attack.run import run_attack
from hne_core.naming import summary_weights
from hne_core.results.aggregate import (
    ResultsError,
    Setting,
    UtteranceScores,
    bootstrap_indices,
    percentile_interval,
    resampled_wer,
)
from hne_core.results.compare import Comparison, Difference, FindingResult, robustness_support, seed_support
from hne_core.robustness.adaptive import PAPER, adaptive_frame, adaptive_markdown, adaptive_rows, worst_case
from hne_core.robustness.noise import NOISE_COLUMNS, noise_direction, noisy
from hne_core.robustness.report import (
    CHECK_COLUMNS,
    CHECKS,
    Bootstrap,
    Inputs,
    check_frame,
    hit_counts,
    noise_numbers,
    noise_rows,
    pooled_scores,
    read_inputs,
    setting_verdicts,
    steps_rows,
    transfer_matrices,
    write_frame,
)
from hne_core.robustness.transfer import TRANSFER_COLUMNS
from hne_core.robustness.verdicts import (
    FLAG,
    PASSES,
    Estimate,
    Paired,
    noise_verdicts,
    overall,
    seeds_verdicts,
    steps_verdict,
    sweep_verdicts,
    transfer_verdict,
    untargeted_verdicts,
)
from hne_core.robustness.victim import Victim

SMOKE_ROBUSTNESS = REPO / "tests" / "configs" / "smoke_robustness.yaml"
MILESTONES_SMOKE = yaml.safe_load(SMOKE.read_text())["attack"]["steps"]


def E(value: float, half: float = 5.0) -> Estimate:
    return Estimate(value, value - half, value + half)


# ------------------------------------------------------------------------------------------------ verdict rules
def test_steps_rule_flags_fewer_target_words_at_more_steps():
    """Paired hit-rate difference later − earlier: flag only when its interval lies wholly below 0; AdvTWER is
    printed beside it and decides nothing."""
    assert steps_verdict(50, 100, Paired(40, 45, -9, -0.01), (70, 60)).verdict == FLAG
    touches = steps_verdict(50, 100, Paired(40, 45, -9, 0.0), (70, 60))
    assert touches.verdict == PASSES and (touches.value, touches.ci_low, touches.ci_high) == (-5, -9, 0.0)
    assert "PGD-100 − PGD-50" in touches.item and "wholly below 0" in touches.rule
    rising_advtwer = steps_verdict(50, 100, Paired(30, 10, 5, 35), (125, 100))  # longer output, more hits
    assert rising_advtwer.verdict == PASSES


def test_sweep_rule_flags_a_rise_and_a_flat_tail_above_the_floor():
    healthy = sweep_verdicts([(0.5, E(95)), (1.0, E(60)), (2.0, E(20)), (4.0, E(3))], floor=10)
    assert overall(healthy) == PASSES
    rising = sweep_verdicts([(0.5, E(60)), (1.0, E(66)), (2.0, E(20))], floor=10)  # 66 > 65
    assert [v.verdict for v in rising[:2]] == [FLAG, PASSES]
    flat = sweep_verdicts([(1.0, E(80)), (2.0, E(60)), (4.0, E(56))], floor=10)  # 56 >= CI-low 55 of ε×2, > 10
    assert flat[-1].verdict == FLAG and "flattens" in flat[-1].rule
    fell = sweep_verdicts([(1.0, E(80)), (2.0, E(60)), (4.0, E(54.9))], floor=10)
    assert fell[-1].verdict == PASSES
    at_zero = sweep_verdicts([(1.0, E(30)), (2.0, E(4, 2)), (4.0, E(4, 2))], floor=10)  # flat, but at ~0
    assert overall(at_zero) == PASSES


def test_transfer_rule_flags_a_victim_that_reaches_more_of_the_target_under_another_models_delta():
    flagged = transfer_verdict("a", Paired(60, 40, 0.01, 30), (50, 70))
    assert flagged.verdict == FLAG and flagged.value == 20 and flagged.reference == 0
    assert transfer_verdict("a", Paired(60, 40, 0.0, 30), (50, 70)).verdict == PASSES  # touches zero
    # a δ that only empties the victim's output lowers its AdvTWER (125 -> 100) but spells no target word
    assert transfer_verdict("a", Paired(0, 0, 0, 0), (100, 125)).verdict == PASSES


def test_noise_rules_compare_the_attack_with_noise_of_its_norms_and_count_target_words():
    good = noise_verdicts(Paired(10, 100, -95, -80), Paired(90, 0, 80, 97), 0.0, 10, 0.1)
    assert [v.verdict for v in good] == [PASSES, PASSES, PASSES] and "10 %" in good[2].item
    # gradient masking: the attack does no better than noise of its size, toward the target, whatever benign says
    masked = noise_verdicts(Paired(98, 100, -6, 0.0), Paired(1, 0, 0.0, 3), 0.0, 10, math.nan)
    assert [v.verdict for v in masked] == [FLAG, FLAG, PASSES]
    # noise that only shortens the output (AdvTWER 125 -> 100) reaches no target word: no flag
    shorter = noise_verdicts(Paired(10, 100, -95, -80), Paired(90, 0, 80, 97), 0.0, 10, 0.0)
    assert shorter[2].verdict == PASSES
    spelled = noise_verdicts(Paired(10, 60, -60, -40), Paired(90, 20.5, 60, 80), 10.0, 10, 0.2)
    assert [v.verdict for v in spelled] == [PASSES, PASSES, FLAG] and spelled[2].value == 10.5
    assert noise_verdicts(Paired(10, 60, -60, -40), Paired(90, 20, 60, 80), 10.0, 10, 0.2)[2].verdict == PASSES


def test_untargeted_rules():
    good = untargeted_verdicts([(2, E(40)), (4, E(70))], Estimate(40, 20, 60), 30, Estimate(10, 2, 18), 60)
    assert [v.verdict for v in good] == [PASSES, PASSES, PASSES]
    falls = untargeted_verdicts([(2, E(70)), (4, E(64.9))], Estimate(40, 20, 60), 30, Estimate(10, 2, 18), 60)
    assert falls[0].verdict == FLAG
    no_effect = untargeted_verdicts([(2, E(40)), (4, E(41))], Estimate(2, -1, 5), 39, Estimate(0, -3, 3), 41)
    assert [v.verdict for v in no_effect] == [PASSES, FLAG, PASSES]
    weaker = untargeted_verdicts([(2, E(40)), (4, E(41))], Estimate(20, 10, 30), 21, Estimate(-9, -15, -1), 50)
    assert [v.verdict for v in weaker] == [PASSES, PASSES, FLAG]


def test_seeds_rules_flag_an_sd_over_seeds_above_the_bootstrap_se_and_an_unstable_ranking():
    """The spread over seeds is their SD (n − 1), against this run's bootstrap SE: SD 6 over three seeds against
    SE 5 flags, though the range (12) is well inside a 95 % interval's width (about 3.92 SE = 19.6)."""
    above = seeds_verdicts({7: 60, 8: 66, 9: 54}, 5.0, {})
    assert above[0].value == pytest.approx(6.0, abs=1e-12) and above[0].reference == 5.0
    assert [v.verdict for v in above] == [FLAG] and "SD" in above[0].rule and "SE" in above[0].rule
    calm = seeds_verdicts({7: 60, 8: 64, 9: 56}, 5.0, {"1.0/0.0/0.0": {7: 5, 8: 2, 9: 0.5}})  # SD 4
    assert [v.verdict for v in calm] == [PASSES, PASSES]
    two = seeds_verdicts({7: 60, 8: 67.1}, 5.0, {})  # SD of two: |a − b| / sqrt(2) = 5.02
    assert two[0].verdict == FLAG and seeds_verdicts({7: 60, 8: 67.0}, 5.0, {})[0].verdict == PASSES
    flips = seeds_verdicts({7: 60, 8: 62}, 5.0, {"b": {7: 3, 8: -1}})
    assert [v.verdict for v in flips] == [PASSES, FLAG]
    tie = seeds_verdicts({7: 60, 8: 62}, 5.0, {"b": {7: 3, 8: 0.0}})
    assert tie[1].verdict == FLAG  # a tie at one seed is no strict sign
    with pytest.raises(ValueError, match="two or more seeds"):
        seeds_verdicts({7: 60}, 5.0, {})


def test_setting_verdicts_and_the_comparisons_support_line():
    rows = [
        {
            "lambda_a": 0.7,
            "lambda_c_train": 0.3,
            "lambda_c_infer": 0.0,
            "check": c,
            "item": "x",
            "value": 1.0,
            "ci_low": 0.0,
            "ci_high": 2.0,
            "reference": 1.0,
            "verdict": v,
            "rule": "r",
        }
        for c, v in (("steps", PASSES), ("steps", FLAG), ("noise", PASSES))
    ]
    checks = setting_verdicts(pd.DataFrame(rows))
    best, base = Setting(0.7, 0.3, 0.0), Setting(1.0, 0.0, 0.0)
    assert checks == {best: {"steps": FLAG, "noise": PASSES}}
    holds = FindingResult("c", "adv_twer", [Comparison(best, base, {2: Difference(5, 1, 9)})])
    assert robustness_support(holds, checks).startswith("**not supported**: flagged 0.7/0.3/0.0 (steps)")
    # a setting outside robustness.settings gets transfer and steps only: the text names what its support rests on
    every = {c: PASSES for c in ("transfer", "sweep", "steps", "noise", "untargeted", "seeds")}
    two = {best: {"transfer": PASSES, "steps": PASSES}, base: every}
    assert robustness_support(holds, two) == (
        "supported by the checks run (0.7/0.3/0.0 passes steps, transfer (not given: noise, seeds, sweep, untargeted))"
    )
    assert robustness_support(holds, {best: every}) == (
        "supported by the checks run (0.7/0.3/0.0 passes noise, seeds, steps, sweep, transfer, untargeted)"
    )
    assert robustness_support(holds, {base: every}) == "partly checked: no flags, but not checked: 0.7/0.3/0.0"
    fails = FindingResult("c", "adv_twer", [Comparison(best, base, {2: Difference(-5, -9, -1)})])
    assert robustness_support(fails, checks).startswith("not needed")


def test_a_finding_judged_across_training_seeds():
    """seed_support: from robustness_seeds.csv (AdvTWER per retrained setting and seed), each comparison of a
    finding with both sides retrained counts the seeds where the better side is higher; the finding holds at
    every seed, at none, or depends on the seed (a finding that holds at the run's seed only is reported so)."""
    best, base, other = Setting(0.7, 0.3, 0.0), Setting(1.0, 0.0, 0.0), Setting(1.0, 1.0, 1.0)

    def frame(values):
        return pd.DataFrame(
            [{**s.row(), "seed": k, "steps": 4, "adv_twer": v} for s, per in values.items() for k, v in per.items()]
        )

    finding = FindingResult(
        "c", "adv_twer", [Comparison(best, base, {4: Difference(5, 1, 9)}), Comparison(best, other, {})]
    )
    every = frame({best: {1: 110, 2: 108, 9: 120}, base: {1: 100, 2: 100, 9: 101}})
    assert seed_support(finding, every) == (
        "holds at every seed at PGD-4 (seeds where the better side has the higher AdvTWER: "
        "0.7/0.3/0.0 vs 1.0/0.0/0.0 3 of 3); 1 comparisons not retrained"
    )
    run_seed_only = frame({best: {1: 90, 2: 108, 9: 120}, base: {1: 100, 2: 108, 9: 101}})  # a tie is no win
    assert seed_support(finding, run_seed_only).startswith("**depends on the training seed** at PGD-4")
    assert "1.0/0.0/0.0 1 of 3" in seed_support(finding, run_seed_only)
    never = frame({best: {1: 90, 9: 95}, base: {1: 100, 9: 101}, other: {1: 99, 9: 99.5}})
    assert seed_support(finding, never).startswith("holds at no seed")
    assert seed_support(finding, frame({best: {1: 90, 9: 95}, other: {1: 99}})).startswith("not judged")
    benign = FindingResult("c", "benign_wer", finding.comparisons)
    assert seed_support(benign, every).startswith("not applicable")


def test_noise_has_the_attacks_norm_and_the_same_direction_for_every_model():
    x = np.linspace(-0.5, 0.5, 4000).astype(np.float32)
    d = noise_direction(7, 0, 3, len(x))
    assert np.array_equal(d, noise_direction(7, 0, 3, len(x))) and not np.array_equal(
        d, noise_direction(7, 1, 3, len(x))
    )
    out = noisy(x, 0.5, d, clip=True)
    # float64 sum rounded once to float32: |err| <= u·|x + n·d| <= u per sample, so the norm is off by <= u·sqrt(T)
    assert abs(np.linalg.norm(out.astype(np.float64) - x) - 0.5) <= 2.0**-24 * math.sqrt(len(x)) * 2
    big = noisy(x, 100.0, d, clip=True)
    assert np.abs(big).max() <= 1.0 and np.linalg.norm(big.astype(np.float64) - x) < 100.0  # clipping shortens


def test_pooled_scores_sum_the_draws_of_an_utterance():
    frame = pd.DataFrame(
        {"utt_id": ["b", "a", "b", "a"], "target": ["X Y", "Z", "X Y", "Z"], "hypothesis": ["X", "Z", "Q Y", "W"]}
    )
    s = pooled_scores(frame, "target")
    assert s.utt_ids == ("a", "b") and s.edits.tolist() == [1, 2] and s.words.tolist() == [2, 4]
    assert s.wer == pytest.approx(50.0)


# ------------------------------------------------------------------------------------------------ pairing
# Constructed per-utterance outputs: 8 utterances, each with the 4-word target TARGET. ``hyp(h, extra)`` spells the
# first h target words, fills the other 4 − h positions with a wrong word and appends ``extra`` more (insertions):
# h target-word hits, AdvTWER (4 − h + extra) / 4. FLIP lists the rows in reverse: a CSV's rows in another order,
# which pairs every even utterance with an odd one if rows were paired by position.
TARGET = "LOREM IPSUM DOLOR SIT"
UTTS = [f"u{i}" for i in range(8)]
FLIP = list(range(7, -1, -1))
A, B = Setting(1.0, 0.0, 0.0), Setting(0.7, 0.3, 0.0)
PAIR_TABLE = {
    "name": "pair",
    "title": "pair",
    "columns": [
        {"lambda_a": 1.0, "lambda_c_train": 0.0, "lambda_c_infer": 0.0, "label": "STL", "baseline": True},
        {"lambda_a": 0.7, "lambda_c_train": 0.3, "lambda_c_infer": 0.0, "label": "MTL"},
    ],
}
# every resampled rate is 100·count/words, two roundings (≤ 2·100·u each, u = 2^-53), and the difference of two
# such adds one more rounding (≤ 200·u, the difference being at most 200): |error| ≤ 600·u
PAIRED_TOL = 600 * 2.0**-53


def hyp(hits: int, extra: int = 0) -> str:
    return " ".join(TARGET.split()[:hits] + ["QQ"] * (4 - hits) + ["ZZ"] * extra)


def alternating(even: str, odd: str) -> list[str]:
    return [even if i % 2 == 0 else odd for i in range(len(UTTS))]


def outputs(hyps: list[str], order: list[int] | None = None, reference: str = "A B C D", **columns) -> pd.DataFrame:
    """An utterances.csv as read (strings), rows in ``order``."""
    frame = pd.DataFrame({"utt_id": UTTS, "reference": reference, "target": TARGET, "hypothesis": hyps, **columns})
    return frame.iloc[order or list(range(len(UTTS)))].reset_index(drop=True)


def unpaired(a: UtteranceScores, b: UtteranceScores, n_samples: int = 400) -> tuple[float, float]:
    """The interval of a − b with b resampled independently of a: what the pairing must not be."""
    one, other = bootstrap_indices(len(UTTS), n_samples, 5), bootstrap_indices(len(UTTS), n_samples, 6)
    return percentile_interval(resampled_wer(a, one) - resampled_wer(b, other), 0.95)


def boot(n_samples: int = 400) -> Bootstrap:
    return Bootstrap(bootstrap_indices(len(UTTS), n_samples, 5), 0.95)


def hit_scores(frame: pd.DataFrame) -> UtteranceScores:
    return pooled_scores(frame, "target", hit_counts)


def test_hit_counts_are_the_target_words_the_hypothesis_spells():
    hits, words = hit_counts([TARGET] * 5, [TARGET, hyp(3), hyp(1, extra=3), "", "SIT LOREM"])
    assert words.tolist() == [4] * 5 and hits.tolist() == [4, 3, 1, 0, 1]
    # AdvTWER falls from 125 to 100 when a wrong hypothesis only gets shorter; its hits stay 0
    assert 100 * jiwer.wer(TARGET, hyp(0, extra=1)) == 125 and 100 * jiwer.wer(TARGET, "") == 100
    assert hit_counts([TARGET, TARGET], [hyp(0, extra=1), ""])[0].tolist() == [0, 0]


def test_bootstrap_difference_is_paired_over_the_same_utterances():
    """Scores that move together (b = a + 1 edit of 10 words on every utterance): the paired difference is 10
    points in every resample; resampling b apart from a gives an interval that holds 0."""
    ids = tuple(UTTS)
    worse = UtteranceScores(ids, np.array([0, 10, 1, 9, 2, 8, 0, 10]), np.full(8, 10))
    better = UtteranceScores(ids, worse.edits + 1, worse.words)
    d = boot().difference(better, worse)
    assert d.value == pytest.approx(10.0, abs=PAIRED_TOL)
    assert 10.0 - PAIRED_TOL <= d.low <= d.high <= 10.0 + PAIRED_TOL
    low, high = unpaired(better, worse)
    assert low < 0 < high
    assert boot().paired(better, worse).first == better.wer and boot().standard_error(worse) > 0
    with pytest.raises(ResultsError, match="other utterances"):
        boot().difference(better, UtteranceScores(ids[::-1], worse.edits, worse.words))


def test_transfer_matrices_pair_each_utterance_with_itself_and_count_target_words():
    """Victim STL's own attack spells 0 / 3 target words (even / odd utterances), MTL's δ makes it spell one more
    on every utterance: the paired hit-rate difference is +25 in every resample (flag), though resampled apart
    it holds 0. Victim MTL's own attack leaves 4 wrong words and one more (AdvTWER 125); STL's δ empties its output
    (AdvTWER 100) and spells nothing: no flag. The transfer CSVs list their rows in another order."""
    own_a, b_to_a = alternating(hyp(0), hyp(3)), alternating(hyp(1), hyp(4))
    own_b, a_to_b = [hyp(0, extra=1)] * 8, [""] * 8
    got = Inputs(
        attacks={(A, 4): outputs(own_a), (B, 4): outputs(own_b)},
        transfer={(B, A): outputs(b_to_a, FLIP), (A, B): outputs(a_to_b, FLIP)},
    )
    matrices, verdicts = transfer_matrices([PAIR_TABLE], got, boot())
    mat = matrices["pair"]
    targets = [TARGET] * 8
    assert mat.to_numpy().ravel().tolist() == pytest.approx(  # rows: sources, columns: victims
        [100 * jiwer.wer(targets, h) for h in (own_a, a_to_b, b_to_a, own_b)]
    )
    (a,), (b,) = verdicts[A], verdicts[B]
    assert a.verdict == FLAG and a.value == pytest.approx(25.0)
    assert 25.0 - PAIRED_TOL <= a.ci_low <= a.ci_high <= 25.0 + PAIRED_TOL
    low, high = unpaired(hit_scores(outputs(b_to_a)), hit_scores(outputs(own_a)))
    assert low < 0 < high
    assert b.verdict == PASSES and (b.value, b.ci_low, b.ci_high) == (0, 0, 0) and "AdvTWER 100.00 vs 125.00" in b.item


NOISE_ATTACK = alternating(hyp(1), hyp(4))  # AdvTWER 75 / 0
NOISE_DRAWS = alternating("", hyp(3))  # AdvTWER 100 / 25: the attack's, 25 points higher on every utterance
NOISE_CLEAN = alternating(hyp(0, extra=1), hyp(3))  # AdvTWER 125 / 25, the noise's hits


def noise_outputs(clean: list[str], draws: list[str]) -> pd.DataFrame:
    """A noise job's rows: the clean audio (draw -1) and two draws, interleaved in a shuffled order."""
    parts = [outputs(h, draw=d) for d, h in ((-1, clean), (0, draws), (1, draws))]
    frame = pd.concat(parts, ignore_index=True).astype({"draw": str})
    return frame.iloc[np.random.default_rng(0).permutation(len(frame))].reset_index(drop=True)


def test_noise_numbers_pair_the_attack_with_the_noise_of_each_utterance():
    """The attack against noise that shortens the output: paired over the utterances (draws pooled), the attack is
    25 points of AdvTWER below the noise and 25 points of hit rate above it on every utterance (intervals exclude 0,
    resampled apart they hold 0). The noise lowers AdvTWER below the benign one by 12.5 (more than the margin 10)
    only by emptying hypotheses: it spells no more target words than the clean audio, so nothing flags."""
    got = Inputs(attacks={(A, 4): outputs(NOISE_ATTACK)}, noise={A: noise_outputs(NOISE_CLEAN, NOISE_DRAWS)})
    n = noise_numbers(A, got, boot())
    assert n["adv"].difference == pytest.approx(-25.0) and n["adv"].high <= -25.0 + PAIRED_TOL
    assert n["hits"].difference == pytest.approx(25.0) and n["hits"].low >= 25.0 - PAIRED_TOL
    assert unpaired(hit_scores(outputs(NOISE_ATTACK)), hit_scores(outputs(NOISE_DRAWS)))[0] < 0
    assert n["benign_hits"] == pytest.approx(37.5) and n["hits"].second == pytest.approx(37.5)
    assert 100 * jiwer.wer([TARGET] * 8, NOISE_DRAWS) < 100 * jiwer.wer([TARGET] * 8, NOISE_CLEAN) - 10
    assert [v.verdict for v in noise_rows(n, 10.0)] == [PASSES, PASSES, PASSES]
    # an attack that does nothing (its output the clean one, the noise's too): masking the noise rule must see
    nothing = Inputs(attacks={(A, 4): outputs(NOISE_DRAWS)}, noise={A: noise_outputs(NOISE_DRAWS, NOISE_DRAWS)})
    assert [v.verdict for v in noise_rows(noise_numbers(A, nothing, boot()), 10.0)] == [FLAG, FLAG, PASSES]


def test_steps_rows_pair_milestones_and_count_target_words():
    """PGD-2 empties every output (AdvTWER 100, no hit); PGD-4 spells 1 / 4 target words with insertions (AdvTWER
    112.5, up; hits up): no flag. PGD-6 spells one word fewer on every utterance (rows in another order): the
    paired difference is -25 in every resample (flag), though resampled apart it holds 0."""
    m4, m6 = alternating(hyp(1, extra=2), hyp(4, extra=4)), alternating(hyp(0, extra=2), hyp(3, extra=4))
    got = Inputs(attacks={(A, 2): outputs([""] * 8), (A, 4): outputs(m4), (A, 6): outputs(m6, FLIP)})
    rows = steps_rows(got, boot())
    assert [v.item.split(":")[0] for _, v in rows] == ["PGD-4 − PGD-2", "PGD-6 − PGD-4"]
    (_, up), (_, down) = rows
    assert up.verdict == PASSES and "AdvTWER 112.50 vs 100.00" in up.item
    assert down.verdict == FLAG and 25.0 - PAIRED_TOL <= -down.ci_high <= -down.ci_low <= 25.0 + PAIRED_TOL
    assert unpaired(hit_scores(outputs(m6)), hit_scores(outputs(m4)))[1] > 0


def every_check_inputs(order: list[int] | None) -> Inputs:
    """Two settings with every job output the checks read, each CSV's rows in ``order``."""

    def out(hyps, **kw):
        return outputs(hyps, order, **kw)

    def refs(hyps):  # the untargeted attack: its target is the reference
        return outputs(hyps, order, reference=TARGET)

    noise = noise_outputs(NOISE_CLEAN, NOISE_DRAWS)
    return Inputs(
        attacks={
            (A, 2): out(alternating(hyp(0), hyp(2))),
            (A, 4): out(NOISE_ATTACK),
            (B, 2): out([""] * 8),
            (B, 4): out(alternating(hyp(2), hyp(3))),
        },
        transfer={(B, A): out(alternating(hyp(1), hyp(3))), (A, B): out(alternating(hyp(3), hyp(4)))},
        sweep={(A, 0.5): out(alternating(hyp(0), hyp(2))), (A, 4.0): out([TARGET] * 8)},
        noise={A: noise if order is None else noise.iloc[::-1].reset_index(drop=True)},
        untargeted={(A, 2): refs(alternating(hyp(2), hyp(3))), (A, 4): refs(alternating(hyp(0), hyp(1)))},
        seeds={(A, 8): out(alternating(hyp(1), hyp(3))), (B, 8): out(alternating(hyp(3), hyp(4)))},
    )


def test_check_frame_judges_every_check_alike_whatever_the_row_order_of_each_csv():
    """check_frame on two settings with every input: the verdicts that pairing decides come out as constructed,
    and listing every CSV's rows in another order changes no number of the frame."""
    kw = dict(
        settings=[A], scales=[0.5, 1.0, 4.0], steps=[2, 4], sweep_floor=10.0, noise_margin=10.0, n_samples=400,
        level=0.95, seed=5, run_seed=7,
    )  # fmt: skip
    frame, matrices, sweeps = check_frame([PAIR_TABLE], every_check_inputs(None), **kw)
    shuffled, matrices2, sweeps2 = check_frame([PAIR_TABLE], every_check_inputs(FLIP), **kw)
    pd.testing.assert_frame_equal(frame, shuffled)
    pd.testing.assert_frame_equal(matrices["pair"], matrices2["pair"])
    assert sweeps == sweeps2
    checks = setting_verdicts(frame)
    assert set(checks[A]) == set(CHECKS) - {"adaptive"} and set(checks[B]) == {"transfer", "steps", "seeds"}
    transfer = frame[frame["check"] == "transfer"].set_index("lambda_a")
    assert transfer.loc[1.0, "verdict"] == PASSES  # MTL's δ spells one word fewer on the odd utterances of STL
    assert transfer.loc[0.7, "verdict"] == FLAG  # STL's δ spells one word more on every utterance of MTL
    assert transfer.loc[0.7, "ci_low"] >= 25.0 - PAIRED_TOL
    noise = frame[(frame["lambda_a"] == 1.0) & (frame["check"] == "noise")]
    assert noise["verdict"].tolist() == [PASSES] * 3
    # seeds: the SD over the seeds against this run's bootstrap SE, the SD of its resampled AdvTWER
    spread = frame[(frame["check"] == "seeds") & frame["item"].str.startswith("SD")].set_index("lambda_a")
    resampled = resampled_wer(pooled_scores(outputs(NOISE_ATTACK), "target"), bootstrap_indices(8, 400, 5))
    assert spread.loc[1.0, "reference"] == np.std(resampled, ddof=1)  # the same numbers, the same operations
    steps = frame[frame["check"] == "steps"]
    assert steps["verdict"].tolist() == [PASSES, PASSES] and (steps["ci_low"] > 0).all()


# ------------------------------------------------------------------------------------------------ tasks
PLAIN, SEX = Setting(0.7, 0.0, 0.0), Setting(0.7, 0.0, 0.0, "sex1.0")  # the same λs, the accent alone and sex alone


def test_a_victim_writes_its_tasks_into_every_row():
    def victim(weights):
        return Victim("model", "data", [], 0.0, summary_weights(weights)).setting()

    assert victim({"lambda_a": 0.7, "lambda_c": 0.0}) == {**PLAIN.row(), "tasks": ""}
    assert victim({"lambda_a": 0.7, "lambda_c": 0.0, "tasks": {"sex": 1.0}}) == SEX.row()


def _keyed_csv(path, columns, rows):
    pd.DataFrame(rows, columns=columns).to_csv(path, index=False)  # an empty tasks cell, read back as NaN by default
    return str(path)


def test_transfer_and_noise_csvs_are_keyed_by_their_tasks_too(tmp_path):
    """A transfer between the two models of the same λs goes both ways; each direction is its own (source, victim)
    pair, the accent-only side keyed '' (not NaN); a noise CSV written before models had tasks is the accent's."""
    row = {"utt_id": "u0", "reference": "A", "target": "B", "hypothesis": "B", "l2_norm": 1.0}

    def transfer(source, victim):
        return {**{f"source_{k}": v for k, v in source.row().items()}, **victim.row(), **row}

    transfer_csv = _keyed_csv(tmp_path / "t.csv", TRANSFER_COLUMNS, [transfer(SEX, PLAIN), transfer(PLAIN, SEX)])
    noise_csv = _keyed_csv(tmp_path / "n.csv", NOISE_COLUMNS, [{**SEX.row(), "draw": -1, **row}])
    old = pd.DataFrame([{**PLAIN.row(), "draw": -1, **row}]).drop(columns="tasks")
    old_csv = _keyed_csv(tmp_path / "old.csv", old.columns, old.to_dict("records"))
    got = read_inputs([], [], [transfer_csv], [], [], [noise_csv, old_csv], [], [], 2.0)
    assert set(got.transfer) == {(SEX, PLAIN), (PLAIN, SEX)} and set(got.noise) == {SEX, PLAIN}
    assert got.transfer[(SEX, PLAIN)]["tasks"].tolist() == [""]


def test_check_verdicts_read_back_from_the_csv_keep_both_models_of_the_same_weights(tmp_path):
    verdicts = (("", "steps", FLAG), ("sex1.0", "steps", PASSES), ("sex1.0", "noise", FLAG))
    rows = [
        {**PLAIN.row(), "tasks": t, "check": c, "item": "x", "value": 1.0, "ci_low": 0.0, "ci_high": 2.0,
         "reference": 1.0, "verdict": v, "rule": "r"}
        for t, c, v in verdicts
    ]  # fmt: skip
    write_frame(pd.DataFrame(rows, columns=CHECK_COLUMNS), tmp_path / "checks.csv")
    checks = setting_verdicts(pd.read_csv(tmp_path / "checks.csv"))
    assert checks == {PLAIN: {"steps": FLAG}, SEX: {"steps": PASSES, "noise": FLAG}}


def test_the_adaptive_table_shows_each_models_own_cell():
    paper = {(PLAIN, 2): scores([8] * 8), (SEX, 2): scores([3] * 8)}
    family = {(SEX, 2, "lca1.0_mu0.0"): scores([1] * 8), (PLAIN, 2, "lca1.0_mu0.0"): scores([6] * 8)}
    table = {"name": "t", "title": "t", "columns": [
        {**PLAIN.row(), "label": "accent"},
        {**PLAIN.row(), "tasks": {"sex": 1.0}, "label": "sex"},
    ]}  # fmt: skip
    frame = adaptive_frame([table], paper, family, lambda sc: E(sc.wer, 1.0))
    assert frame["tasks"].tolist() == ["", "sex1.0"] and frame["worst_adv_twer"].tolist() == pytest.approx([60, 10])
    assert [s for s, _ in adaptive_rows(frame)] == [PLAIN, SEX]
    md = adaptive_markdown(table, frame, 0.95)
    assert "accent (0.7/0.0/0.0) | sex (0.7/0.0/0.0/sex1.0) |" in md
    assert "| PGD-2 | 60.00 [59.00, 61.00] lca1.0_mu0.0 · paper 80.00 · n 1 | 10.00 [9.00, 11.00]" in md


# ------------------------------------------------------------------------------------------------ the engines
def scores(edits: list[int], words: int = 10) -> UtteranceScores:
    return UtteranceScores(tuple(UTTS[: len(edits)]), np.array(edits), np.full(len(edits), words))


def test_the_worst_case_is_the_lowest_advtwer_over_the_paper_attacker_and_the_family():
    """Constructed scores: per (setting, milestone) the member with the lowest AdvTWER, the paper's attacker on a
    tie or when no member tried it; every table cell beside the paper's; the adaptive rule flags only a worst case
    whose interval lies wholly below the paper attacker's."""
    stl, mtl = Setting(1.0, 0.0, 0.0), Setting(0.7, 0.5, 0.0)
    paper = {(stl, 2): scores([8] * 8), (mtl, 2): scores([9] * 8), (mtl, 4): scores([6] * 8)}
    family = {
        (mtl, 2, "lca1.0_mu0.0"): scores([2] * 8),  # far below the paper's 90 %: flagged
        (mtl, 2, "lca0.0_mu-1.0"): scores([5] * 8),
        (mtl, 4, "lca1.0_mu0.0"): scores([6] * 8),  # a tie keeps the paper's attacker
        (mtl, 4, "lca0.0_mu-1.0"): scores([6, 6, 6, 6, 6, 6, 6, 5]),  # 1 edit in 80 words lower: within the interval
    }
    worst = worst_case(paper, family)
    assert worst[(stl, 2)][0] == PAPER and worst[(mtl, 2)][0] == "lca1.0_mu0.0"
    assert worst[(mtl, 4)][0] == "lca0.0_mu-1.0" and worst[(mtl, 4)][1].wer == pytest.approx(100 * 47 / 80)
    table = {"name": "t", "columns": [
        {"lambda_a": 1.0, "lambda_c_train": 0.0, "lambda_c_infer": 0.0, "label": "STL", "baseline": True},
        {"lambda_a": 0.7, "lambda_c_train": 0.5, "lambda_c_infer": 0.0, "label": "MTL"},
    ]}  # fmt: skip
    frame = adaptive_frame([table], paper, family, lambda sc: E(sc.wer, 3.0))
    assert list(frame["steps"]) == [2, 2, 4] and list(frame["n_attackers"]) == [0, 2, 2]
    assert list(frame["worst_adv_twer"]) == pytest.approx([80.0, 20.0, 100 * 47 / 80])
    assert list(frame["paper_adv_twer"]) == pytest.approx([80.0, 90.0, 60.0])
    rows = adaptive_rows(frame)
    assert [(s, v.verdict) for s, v in rows] == [(mtl, FLAG), (mtl, PASSES)]
    assert "lca1.0_mu0.0" in rows[0][1].item and rows[0][1].reference == pytest.approx(90.0)
    with pytest.raises(ValueError, match="without the paper's attack"):
        worst_case({}, family)


def test_untargeted_step_is_the_targeted_step_of_the_negated_gradient():
    """l2_step(targeted=False) ascends: bit-identical to the targeted step fed -grad (the same operations)."""
    rng = np.random.default_rng(3)
    x = torch.from_numpy(rng.uniform(-0.9, 0.9, (2, 300)).astype(np.float32))
    delta = torch.from_numpy((0.01 * rng.standard_normal((2, 300))).astype(np.float32))
    grad = torch.from_numpy(rng.standard_normal((2, 300)).astype(np.float32))
    mask = torch.ones_like(x, dtype=torch.bool)
    up = l2_step(x, delta, grad, mask, 0.5, 0.05, (-1.0, 1.0), targeted=False)
    assert torch.equal(up, l2_step(x, delta, -grad, mask, 0.5, 0.05, (-1.0, 1.0)))
    assert not torch.equal(up, l2_step(x, delta, grad, mask, 0.5, 0.05, (-1.0, 1.0)))


def test_untargeted_attack_raises_the_loss_in_both_engines_and_they_agree():
    """Ascending Eq. 4 of the true tokens raises it (targeted descent lowers it), and ART's own untargeted PGD takes
    the native engine's step within test_attack's derived bound."""
    from model_utils import build_tiny
    from test_attack import TARGETS, step_bound

    from hne_core.attack.loss import adversarial_losses, pad_targets

    torch.set_num_threads(1)
    model = build_tiny(1.0, 0.3)
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (8000, 6000)]
    targets = TARGETS[:2]

    def losses(deltas):
        with torch.no_grad():
            out = []
            for w, d, t in zip(waves, deltas, targets):
                ys, ys_lens = pad_targets([t], "cpu")
                out.append(
                    float(
                        adversarial_losses(
                            model, torch.from_numpy(w + d)[None], torch.tensor([len(w)]), ys, ys_lens, 0.3
                        )[0]
                    )
                )
            return np.array(out)

    base = losses([np.zeros_like(w) for w in waves])
    kw = dict(clip=True, batch_size=2)
    up = run_attack("native", model, waves, targets, 0.3, 0.05, 0.02, 3, targeted=False, **kw)
    down = run_attack("native", model, waves, targets, 0.3, 0.05, 0.02, 3, **kw)
    assert (losses(up.deltas) > base).all() and (losses(down.deltas) < base).all()
    one_native = run_attack("native", model, waves, targets, 0.3, 0.05, 0.02, 1, targeted=False, batch_size=1)
    one_art = run_attack("art", model, waves, targets, 0.3, 0.05, 0.02, 1, targeted=False)
    for i, (x, a, n) in enumerate(zip(waves, one_art.deltas, one_native.deltas)):
        xt = torch.from_numpy(x)[None].requires_grad_(True)
        ys, ys_lens = pad_targets([targets[i]], "cpu")
        with torch.enable_grad():
            (g,) = torch.autograd.grad(
                adversarial_losses(model, xt, torch.tensor([len(x)]), ys, ys_lens, 0.3).sum(), xt
            )
        bound = step_bound(x, np.zeros_like(x), a, g[0].numpy())
        assert float(np.abs(a - n).max()) <= bound


def test_untargeted_resumes_from_its_own_checkpoint_only(tmp_path):
    """A killed untargeted attack resumes from its in-job checkpoint bit for bit; a targeted attack of the same
    inputs never takes that checkpoint for its own (the fingerprint holds the direction)."""
    from model_utils import build_tiny

    torch.set_num_threads(1)
    model = build_tiny(1.0, 0.3)
    rng = np.random.default_rng(1)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (6000, 5000)]
    targets = [[3, 4, 5], [4, 5, 6, 7]]
    ckpt = tmp_path / "untargeted.checkpoint"
    kw = dict(clip=True, batch_size=2, checkpoint_path=ckpt, checkpoint_every=1)

    class Killed(Exception):
        pass

    def kill_after_two(step):
        if step == 2:
            raise Killed

    with pytest.raises(Killed):
        run_attack("native", model, waves, targets, 0.3, 0.05, 0.02, 4, targeted=False, callback=kill_after_two, **kw)
    assert ckpt.is_file()
    targeted = run_attack("native", model, waves, targets, 0.3, 0.05, 0.02, 4, **{**kw, "checkpoint_path": None})
    other = run_attack(
        "native",
        model,
        waves,
        targets,
        0.3,
        0.05,
        0.02,
        4,
        checkpoint_path=ckpt,
        checkpoint_every=100,
        clip=True,
        batch_size=2,
    )
    assert other.resumed_from == 0  # the targeted attack ignored the untargeted checkpoint
    assert all(np.array_equal(a, b) for a, b in zip(other.deltas, targeted.deltas))
    resumed = run_attack("native", model, waves, targets, 0.3, 0.05, 0.02, 4, targeted=False, **kw)
    straight = run_attack("native", model, waves, targets, 0.3, 0.05, 0.02, 4, targeted=False, clip=True, batch_size=2)
    assert resumed.resumed_from == 2  # the checkpoint written after step 2, just before the kill
    assert all(np.array_equal(a, b) for a, b in zip(resumed.deltas, straight.deltas))


# ------------------------------------------------------------------------------------------------ the workflow
@pytest.fixture(scope="module")
def robustness_run(smoke_run, tmp_path_factory):
    """The finished smoke run (a copy) with every robustness check run on top (tests/configs/smoke_robustness.yaml)."""
    dest = tmp_path_factory.mktemp("robustness") / "run"
    shutil.copytree(smoke_run, dest, symlinks=True, copy_function=shutil.copy2)
    run_snakemake(dest, "--configfile", str(SMOKE), str(SMOKE_ROBUSTNESS), "--cores", "2")
    return dest


def overlay_plan(workdir, tmp_path, overlay: dict) -> dict[str, int]:
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    proc = run_snakemake(workdir, "-n", "--cores", "2", "--configfile", str(SMOKE), str(SMOKE_ROBUSTNESS), str(path))
    return planned_jobs(proc)


def source_of(row: dict) -> Setting:
    return Setting.of({k: row[f"source_{k}"] for k in ("lambda_a", "lambda_c_train", "lambda_c_infer")})


def check_transfer_matrix(run, table: dict) -> None:
    """The transfer matrix of a finished run, cell by cell: the diagonal is the victim's white-box AdvTWER of
    advtwer.csv's last milestone (matched by column, not as a sorted list), and every other cell is recomputed
    from the transfer job's own CSV, each of whose rows carries the target of the victim's attack on the same
    utterance (what makes the transfer verdicts' pairing by utterance meaningful)."""
    matrix = pd.read_csv(run / "results/tables" / f"transfer_{table['name']}.csv", index_col=0)
    adv = pd.read_csv(run / "results/tables/advtwer.csv")
    last = adv[adv["steps"] == adv["steps"].max()]
    columns = [(f"{c['label']} ({Setting.of(c).short})", Setting.of(c)) for c in table["columns"]]
    assert list(matrix.index) == list(matrix.columns) == [label for label, _ in columns]
    # both CSVs print 4 decimals; a cell recomputed here is off by at most half of the last one (+ float round-off)
    printed = 0.5e-4 + 1e-12
    for victim_label, victim in columns:
        folder = f"la{victim.lambda_a}_lc{victim.lambda_c_train}/infer{victim.lambda_c_infer}"
        own = last[[Setting.of(r) == victim for r in last.to_dict("records")]]
        assert matrix.loc[victim_label, victim_label] == pytest.approx(float(own["adv_twer"].iloc[0]), abs=1e-12)
        whitebox = pd.read_csv(run / "results/attacks" / folder / f"pgd{int(last['steps'].max())}/utterances.csv")
        transfer = pd.read_csv(run / "results/robustness/transfer" / folder / "utterances.csv", keep_default_na=False)
        for source_label, source in columns:
            if source == victim:
                continue
            part = transfer[[source_of(r) == source for r in transfer.to_dict("records")]]
            paired = part.merge(whitebox, on="utt_id", suffixes=("", "_own"), validate="one_to_one")
            assert len(paired) == len(part) == len(whitebox) and (paired["target"] == paired["target_own"]).all()
            recomputed = 100 * jiwer.wer(list(part["target"]), list(part["hypothesis"]))
            assert matrix.loc[source_label, victim_label] == pytest.approx(recomputed, abs=printed)


@pytest.mark.slow
def test_every_check_runs_on_the_smoke_config_with_a_verdict_per_model(robustness_run):
    tables = robustness_run / "results" / "tables"
    frame = pd.read_csv(tables / "robustness_checks.csv")
    smoke = yaml.safe_load(SMOKE.read_text())
    columns = {Setting.of(c) for t in smoke["tables"] for c in t["columns"]}
    assert {Setting.of(r) for r in frame.to_dict("records")} == columns
    for s in columns:  # every check, for every column (settings: null), each row with its rule; adaptive where
        mine = frame[[Setting.of(r) == s for r in frame.to_dict("records")]]  # the model has heads to exploit
        checks = {"transfer", "sweep", "steps", "noise", "untargeted", "seeds"} | (
            {"adaptive"} if s.lambda_a < 1 else set()
        )
        assert set(mine["check"]) == checks
    assert set(frame["verdict"]) <= {"passes", "flag"} and frame["rule"].str.len().min() > 10
    # the sweep covers every multiplier; the sweep's attacks kept the scaled ε (the job checks it before writing)
    scales = yaml.safe_load(SMOKE_ROBUSTNESS.read_text())["robustness"]["epsilon_scales"]
    sweep = frame[frame["check"] == "sweep"]
    assert len(sweep) == len(columns) * len(scales)  # consecutive pairs + the flat-tail rule
    for scale in (0.5, 4.0):
        for summary in (robustness_run / "results/robustness/sweep" / f"eps{scale}").glob("*/*/pgd4/summary.json"):
            s = yaml.safe_load(summary.read_text())
            assert s["eps"] == pytest.approx(2.0 * scale) and s["step_size"] == pytest.approx(0.05 * scale)
            assert s["max_l2_norm"] <= s["eps"] * (1 + 64 * 2.0**-24)
    check_transfer_matrix(robustness_run, smoke["tables"][0])
    # noise: the same norms as the attack's final δ (up to clipping, which only shortens)
    noise = pd.read_csv(robustness_run / "results/robustness/noise/la1.0_lc0.0/infer0.0/utterances.csv")
    state = robustness_run / "results/attacks/la1.0_lc0.0/infer0.0/pgd4/utterances.csv"
    attack = pd.read_csv(state).set_index("utt_id")
    noisy_rows = noise[noise["draw"] >= 0]
    norms = attack.loc[noisy_rows["utt_id"], "l2_norm"].to_numpy()
    # x + n·d rounded once to float32: per sample at most u·|x + n·d| <= u, so the norm moves by <= u·sqrt(T)
    slack = 2.0**-24 * np.sqrt(attack.loc[noisy_rows["utt_id"], "n_samples"].to_numpy())
    assert (noisy_rows["l2_norm"].to_numpy() <= norms + slack).all()
    assert (noisy_rows["l2_norm"].to_numpy() >= 0.5 * norms).all()  # clipping shortens only where x nears ±1
    assert (noise[noise["draw"] == -1]["l2_norm"] == 0).all()
    # untargeted: a bounded perturbation at every milestone
    for summary in (robustness_run / "results/robustness/untargeted").glob("*/*/pgd*/summary.json"):
        s = yaml.safe_load(summary.read_text())
        assert s["targeted"] is False and s["max_l2_norm"] <= 2.0 * (1 + 64 * 2.0**-24)
    # training noise: both columns retrained with seed 8 and attacked; the MTL column judged against the baseline
    seeds = frame[frame["check"] == "seeds"]
    assert len(seeds) == 3 and seeds["item"].str.startswith("minus baseline 1.0/0.0/0.0").sum() == 1
    for model in ("la1.0_lc0.0", "la0.7_lc0.3"):
        assert (robustness_run / f"results/robustness/seeds/seed8/models/{model}/model.pth").is_file()
        assert (robustness_run / f"results/robustness/seeds/seed8/attacks/{model}/infer0.0/pgd4/summary.json").is_file()
    for name in ("robustness_checks.md", "transfer_smoke.md"):
        assert (tables / name).stat().st_size > 0
    for name in ("budget_sweep.png", "transfer.png"):
        assert (robustness_run / "results/figures" / name).read_bytes()[:4] == b"\x89PNG"
    comparison = (tables / "paper_comparison.md").read_text()
    assert comparison.count("- Robustness checks (robustness_checks.md): ") == len(smoke["findings"])
    # the findings judged across seeds, from the per-seed AdvTWER of both retrained columns (seeds 8 and the run's)
    per_seed = pd.read_csv(tables / "robustness_seeds.csv")
    assert sorted(per_seed["seed"].unique()) == sorted([8, smoke["seed"]]) and len(per_seed) == 4
    assert (per_seed["steps"] == 4).all()
    assert comparison.count("- Across training seeds (robustness_seeds.csv): ") == len(smoke["findings"])
    check_adaptive(robustness_run, comparison, smoke)


def check_adaptive(run, comparison: str, smoke: dict) -> None:
    """The adaptive family of the MTL column (CTC alone as a surrogate; away from its accent), chained over the
    milestones; every cell of the worst-case table is the lowest AdvTWER of the paper's attacker and the family's
    jobs, read back from their own summaries; the STL decoder has no head to exploit and keeps the paper's."""
    adaptive = run / "results/robustness/adaptive"
    family = {"lca1.0_mu0.0": (1.0, 0.0), "lca0.0_mu-1.0": (0.0, -1.0)}
    assert sorted(p.name for p in adaptive.iterdir()) == sorted(family)
    cells = pd.read_csv(run / "results/tables/smoke_adaptive.csv")
    assert len(cells) == 2 * len(MILESTONES_SMOKE)
    for steps in MILESTONES_SMOKE:
        paper = {
            m: yaml.safe_load((run / f"results/attacks/{m}/infer0.0/pgd{steps}/summary.json").read_text())["adv_twer"]
            for m in ("la1.0_lc0.0", "la0.7_lc0.3")
        }
        members = {}
        for name, (lca, mu) in family.items():
            s = yaml.safe_load((adaptive / name / f"la0.7_lc0.3/infer0.0/pgd{steps}/summary.json").read_text())
            # a weight at the paper attacker's value is left out of the summary (its state then chains as that)
            weights = (s.get("lambda_c_attack", s["lambda_c_infer"]), s.get("mu", 0.0), s["lambda_c_infer"])
            assert (*weights, s["steps"]) == (lca, mu, 0.0, steps)
            assert s["prev_steps"] == (0 if steps == MILESTONES_SMOKE[0] else MILESTONES_SMOKE[0])
            members[name] = s["adv_twer"]
        mtl = cells[(cells["lambda_a"] == 0.7) & (cells["steps"] == steps)].iloc[0]
        stl = cells[(cells["lambda_a"] == 1.0) & (cells["steps"] == steps)].iloc[0]
        best = min([("paper", paper["la0.7_lc0.3"]), *members.items()], key=lambda kv: kv[1])
        assert mtl["worst_attacker"] == best[0] and mtl["n_attackers"] == 2
        assert mtl["worst_adv_twer"] == pytest.approx(best[1], abs=1e-4)  # the CSV's four decimals
        assert mtl["paper_adv_twer"] == pytest.approx(paper["la0.7_lc0.3"], abs=1e-4)
        assert stl["worst_attacker"] == "paper" and stl["n_attackers"] == 0
        assert stl["worst_adv_twer"] == pytest.approx(paper["la1.0_lc0.0"], abs=1e-4)
    adv_findings = [f for f in smoke["findings"] if f["metric"] == "adv_twer"]
    section = comparison.split("## The findings against the strongest attacker", 1)[1]
    assert sum(f"| {f['claim']} |" in section for f in adv_findings) == len(adv_findings)


@pytest.mark.slow
def test_nothing_changed_plans_nothing_with_the_checks_on(robustness_run, tmp_path):
    assert overlay_plan(robustness_run, tmp_path, {}) == {}


@pytest.mark.slow
def test_one_epsilon_added_plans_only_its_sweep_jobs_and_the_aggregates(robustness_run, tmp_path):
    scales = yaml.safe_load(SMOKE_ROBUSTNESS.read_text())["robustness"]["epsilon_scales"]
    planned = overlay_plan(
        robustness_run, tmp_path, {"robustness": {"enabled": True, "epsilon_scales": [*scales, 2.0]}}
    )
    # ε×2 for the 2 attacked settings, the report, and the comparison that reads its verdicts
    assert planned == {"robustness_sweep": 2, "robustness_report": 1, "results_comparison": 1, "all": 1}


@pytest.mark.slow
def test_one_adaptive_attacker_added_plans_its_chained_attacks_and_the_aggregates(robustness_run, tmp_path):
    rob = yaml.safe_load(SMOKE_ROBUSTNESS.read_text())["robustness"]
    family = {**rob["adaptive"], "mu": [*rob["adaptive"]["mu"], 1.0]}  # μ = +1 on the one model with a head
    planned = overlay_plan(robustness_run, tmp_path, {"robustness": {**rob, "adaptive": family}})
    steps = len(MILESTONES_SMOKE)
    assert planned == {"robustness_adaptive": steps, "robustness_report": 1, "results_comparison": 1, "all": 1}


@pytest.mark.slow
def test_one_training_seed_added_plans_its_fine_tunes_attacks_and_the_aggregates(robustness_run, tmp_path):
    rob = yaml.safe_load(SMOKE_ROBUSTNESS.read_text())["robustness"]
    planned = overlay_plan(robustness_run, tmp_path, {"robustness": {**rob, "seeds": [*rob["seeds"], 9]}})
    assert planned == {
        "robustness_seed_finetune": 2,
        "robustness_seed_attack": 2,
        "robustness_report": 1,
        "results_comparison": 1,
        "all": 1,
    }


@pytest.mark.slow
def test_the_checks_are_off_by_default_and_a_bad_setting_is_refused(tmp_path):
    assert "robustness_report" not in planned_jobs(
        run_snakemake(tmp_path, "-n", "--cores", "1", "--configfile", str(SMOKE))
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"robustness": {"enabled": True, "settings": ["0.9/0.0/0.0"]}}))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(SMOKE), str(bad), check=False)
    assert proc.returncode != 0 and "robustness.settings.0" in proc.stdout + proc.stderr
