"""The robustness checks: every verdict rule fed constructed numbers where it must pass and where it must
flag; the untargeted step of both engines; and (slow) a real smoke run of every check, with the partial-rerun plan
of one ε added to the sweep."""

from __future__ import annotations

import math
import shutil
from dataclasses import astuple

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from conftest import REPO, SMOKE, planned_jobs, run_snakemake

from hne_core.attack.pgd import l2_step
from hne_core.attack.run import run_attack
from hne_core.results.aggregate import Setting
from hne_core.results.compare import Comparison, Difference, FindingResult, robustness_support, seed_support
from hne_core.robustness.noise import noise_direction, noisy
from hne_core.robustness.report import pooled_scores, setting_verdicts
from hne_core.robustness.verdicts import (
    FLAG,
    PASSES,
    Estimate,
    noise_verdict,
    overall,
    seeds_verdicts,
    steps_verdicts,
    sweep_verdicts,
    transfer_verdicts,
    untargeted_verdicts,
)

SMOKE_ROBUSTNESS = REPO / "tests" / "configs" / "smoke_robustness.yaml"


def E(value: float, half: float = 5.0) -> Estimate:
    return Estimate(value, value - half, value + half)


# ------------------------------------------------------------------------------------------------ verdict rules
def test_steps_rule_flags_only_a_rise_beyond_the_earlier_interval():
    falling = steps_verdicts([(50, E(90)), (100, E(70)), (150, E(60))])
    assert [v.verdict for v in falling] == [PASSES, PASSES]
    within = steps_verdicts([(50, E(70)), (100, E(74.9))])  # rises, but inside [65, 75]
    assert within[0].verdict == PASSES
    beyond = steps_verdicts([(100, E(70)), (50, E(90)), (150, E(75.1))])  # unsorted in, 75.1 > CI-high 75
    assert [v.item for v in beyond] == ["PGD-100 vs PGD-50", "PGD-150 vs PGD-100"]
    assert [v.verdict for v in beyond] == [PASSES, FLAG]
    assert overall(beyond) == FLAG and overall(falling) == PASSES


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


def test_transfer_rule_flags_a_victim_that_falls_further_to_another_models_delta():
    assert transfer_verdicts("a", Estimate(-20, -30, -0.01), 60, 80).verdict == FLAG
    assert transfer_verdicts("a", Estimate(-20, -30, 0.0), 60, 80).verdict == PASSES  # touches zero
    passing = transfer_verdicts("a", Estimate(15, 5, 25), 95, 80)
    assert passing.verdict == PASSES and (passing.ci_low, passing.ci_high, passing.reference) == (85, 105, 80)


def test_noise_rule_flags_noise_far_below_the_benign_advtwer():
    assert noise_verdict(E(99), 100, 10, 0.1).verdict == PASSES
    assert noise_verdict(E(90), 100, 10, math.nan).verdict == PASSES  # exactly the margin
    flagged = noise_verdict(E(89.9), 100, 10, 0.5)
    assert flagged.verdict == FLAG and "50 %" in flagged.item


def test_untargeted_rules():
    good = untargeted_verdicts([(2, E(40)), (4, E(70))], Estimate(40, 20, 60), 30, Estimate(10, 2, 18), 60)
    assert [v.verdict for v in good] == [PASSES, PASSES, PASSES]
    falls = untargeted_verdicts([(2, E(70)), (4, E(64.9))], Estimate(40, 20, 60), 30, Estimate(10, 2, 18), 60)
    assert falls[0].verdict == FLAG
    no_effect = untargeted_verdicts([(2, E(40)), (4, E(41))], Estimate(2, -1, 5), 39, Estimate(0, -3, 3), 41)
    assert [v.verdict for v in no_effect] == [PASSES, FLAG, PASSES]
    weaker = untargeted_verdicts([(2, E(40)), (4, E(41))], Estimate(20, 10, 30), 21, Estimate(-9, -15, -1), 50)
    assert [v.verdict for v in weaker] == [PASSES, PASSES, FLAG]


def test_seeds_rules_flag_a_spread_wider_than_the_bootstrap_and_an_unstable_ranking():
    main = Estimate(60, 50, 70)  # interval width 20
    calm = seeds_verdicts({7: 60, 8: 65, 9: 55}, main, {"1.0/0.0/0.0": {7: 5, 8: 2, 9: 0.5}})
    assert [v.verdict for v in calm] == [PASSES, PASSES] and calm[0].reference == 20
    wide = seeds_verdicts({7: 60, 8: 80.5}, main, {})
    assert [v.verdict for v in wide] == [FLAG]
    flips = seeds_verdicts({7: 60, 8: 62}, main, {"b": {7: 3, 8: -1}})
    assert [v.verdict for v in flips] == [PASSES, FLAG]
    tie = seeds_verdicts({7: 60, 8: 62}, main, {"b": {7: 3, 8: 0.0}})
    assert tie[1].verdict == FLAG  # a tie at one seed is no strict sign


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
    assert robustness_support(holds, {best: {"steps": PASSES}}).startswith("supported")
    assert robustness_support(holds, {}).startswith("partly checked")
    fails = FindingResult("c", "adv_twer", [Comparison(best, base, {2: Difference(-5, -9, -1)})])
    assert robustness_support(fails, checks).startswith("not needed")


def test_a_finding_judged_across_training_seeds():
    """seed_support: from robustness_seeds.csv (AdvTWER per retrained setting and seed), each comparison of a
    finding with both sides retrained counts the seeds where the better side is higher; the finding holds at
    every seed, at none, or depends on the seed (a finding that holds at the run's seed only is reported so)."""
    best, base, other = Setting(0.7, 0.3, 0.0), Setting(1.0, 0.0, 0.0), Setting(1.0, 1.0, 1.0)

    def frame(values):
        return pd.DataFrame(
            [
                {
                    **dict(zip(("lambda_a", "lambda_c_train", "lambda_c_infer"), astuple(s))),
                    "seed": k,
                    "steps": 4,
                    "adv_twer": v,
                }
                for s, per in values.items()
                for k, v in per.items()
            ]  # fmt: skip
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


# ------------------------------------------------------------------------------------------------ the engines
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


@pytest.mark.slow
def test_every_check_runs_on_the_smoke_config_with_a_verdict_per_model(robustness_run):
    tables = robustness_run / "results" / "tables"
    frame = pd.read_csv(tables / "robustness_checks.csv")
    smoke = yaml.safe_load(SMOKE.read_text())
    columns = {Setting.of(c) for t in smoke["tables"] for c in t["columns"]}
    assert {Setting.of(r) for r in frame.to_dict("records")} == columns
    for s in columns:  # every check, for every column (settings: null), each row with its rule
        mine = frame[[Setting.of(r) == s for r in frame.to_dict("records")]]
        assert set(mine["check"]) == {"transfer", "sweep", "steps", "noise", "untargeted", "seeds"}
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
    # transfer matrix: the diagonal is the white-box AdvTWER of advtwer.csv's last milestone
    matrix = pd.read_csv(tables / "transfer_smoke.csv", index_col=0)
    adv = pd.read_csv(tables / "advtwer.csv")
    last = adv[adv["steps"] == adv["steps"].max()]
    assert sorted(np.diag(matrix.to_numpy()).round(2)) == sorted(last["adv_twer"].round(2))
    assert matrix.notna().all().all()
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
