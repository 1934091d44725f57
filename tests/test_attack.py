"""The attack library on a tiny real ESPnet model: targets, Eq. 4, batch invariance, the native PGD engine against
ART's own PGD, chaining, resume, errors, greedy decoding against Speech2Text, and the workflow's attack job.

Tolerances (float32 on CPU, measured when written): native vs ART ≤ 1e-6 after 5 steps (measured ~4e-8, with
max|δ| ~5e-3); batched vs one-at-a-time ≤ 1e-6 on δ (measured ~4e-8) and ≤ 1e-5 relative on the input gradient
(measured ~1.5e-6); chaining and resume of the native engine are bit-identical.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml

from hne_core.attack.art_engine import ESPnetARTRecognizer, make_art_pgd, object_array
from hne_core.attack.batching import batch_invariant
from hne_core.attack.decode import GreedyDecoder
from hne_core.attack.job import attack_job, load_state
from hne_core.attack.loss import AttackSetupError, adversarial_losses, decoder_losses, pad_targets, pad_waves
from hne_core.attack.pgd import NaNGradientError, frozen
from hne_core.attack.run import run_attack
from hne_core.attack.targets import (LOREM_WORDS, SpellingError, TargetEncoder, assign_targets, check_spellable,
                                     make_targets, read_targets, spellable_words, write_targets)
from model_utils import TOKENS, build_tiny, tiny_config

EPS, STEP = 0.05, 0.02  # small ε so that the projection binds within a few steps
TARGETS = [[3, 4, 5], [4, 5, 6, 7], [3, 3, 2, 4]]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return build_tiny(1.0, 0.3)


@pytest.fixture(scope="module")
def waves():
    """Three noise 'utterances' (0.5, 0.375, 0.44 s); the second touches ±1 so that clipping binds."""
    rng = np.random.default_rng(0)
    out = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (8000, 6000, 7000)]
    out[1][:300:2], out[1][1:300:2] = 1.0, -1.0
    return out


@pytest.fixture(scope="module")
def bpe(tmp_path_factory):
    """A sentencepiece char model whose pieces are the tiny model's tokens (▁ A B C D E)."""
    from hne_core.tokenizer import train_sentencepiece

    d = tmp_path_factory.mktemp("bpe")
    (d / "text").write_text("".join(f"u{i} {s}\n" for i, s in enumerate(["ABC DE", "EDCBA", "BAD CAB", "DEAD BEE"])))
    train_sentencepiece(d / "text", d / "bpe.model", "char", 64)
    return d / "bpe.model"


def attack(engine, model, waves, steps, **kw):
    kw.setdefault("clip", True)
    return run_attack(engine, model, waves, TARGETS[: len(waves)], 0.3, EPS, STEP, steps, **kw)


# ------------------------------------------------------------------------------------------------ targets
def test_targets_are_deterministic_normalised_and_of_varying_length():
    a = make_targets(12, seed=5)
    assert a == make_targets(12, seed=5) and a != make_targets(12, seed=6)
    assert len(set(a)) == 12
    assert all(t == t.upper() and set(t) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZ ") for t in a)
    words = [len(t.split()) for t in a]
    assert words == sorted(words) and words[0] == 1 and words[-1] == 20
    assert set(" ".join(a).lower().split()) <= set(LOREM_WORDS)


def test_assign_targets_picks_the_closest_length_shorter_then_earlier_on_ties():
    targets = ["AB", "ABCD", "ABCDEF", "XY", "WXYZ"]
    refs = ["ABC", "ABCDE", "A", "ABCDEFGHIJ", "ABCD"]
    # 3: tie 2/4 -> shorter "AB" (before "XY"); 5: tie 4/6 -> shorter, earlier "ABCD"; 1 -> "AB";
    # 10 -> "ABCDEF"; 4: exact, earlier "ABCD" before "WXYZ"
    assert assign_targets(refs, targets) == ["AB", "ABCD", "AB", "ABCDEF", "ABCD"]


def test_unspellable_target_is_an_error_naming_it(bpe, tmp_path):
    check_spellable("ABC DE", TOKENS, bpe)
    with pytest.raises(SpellingError, match="'ABF CA'.*'F'"):
        check_spellable("ABF CA", TOKENS, bpe)
    enc = TargetEncoder(TOKENS, bpe)
    assert enc.encode("AB C") == [2, 3, 4, 2, 5] and enc.decode([2, 3, 4, 2, 5]) == "AB C"
    assert spellable_words(["bad", "cafe", "fab", "dab"], TOKENS, bpe) == ["BAD", "DAB"]
    write_targets(tmp_path / "t.txt", ["AB", "CDE"])
    assert read_targets(tmp_path / "t.txt") == ["AB", "CDE"]


# ------------------------------------------------------------------------------------------------ loss, batching
def grads(model, waves, targets, lambda_c=0.3):
    x, lens = pad_waves(waves, "cpu")
    x.requires_grad_(True)
    ys, ys_lens = pad_targets(targets, "cpu")
    with frozen(model):
        losses = adversarial_losses(model, x, lens, ys, ys_lens, lambda_c)
        (g,) = torch.autograd.grad(losses.sum(), x)
    return losses.detach(), g


def test_loss_is_eq4_per_utterance_as_espnet_computes_it(model, waves):
    # λA = 1: the model's own loss is λC L_CTC + (1-λC) L_DEC, so a batch of one must agree with it
    for w, t in zip(waves, TARGETS):
        ours = grads(model, [w], [t])[0][0]
        loss, _, _ = model(torch.from_numpy(w)[None], torch.tensor([len(w)]), torch.tensor([t]),
                           torch.tensor([len(t)]), accent=torch.zeros(1, 1, dtype=torch.long))
        assert float(ours) == pytest.approx(float(loss.detach()), rel=1e-5)
    with batch_invariant(model):
        batched = grads(model, waves, TARGETS)[0]
    singles = torch.stack([grads(model, [w], [t])[0][0] for w, t in zip(waves, TARGETS)])
    assert torch.allclose(batched, singles, rtol=1e-5)  # not divided by the batch size


@pytest.mark.parametrize("normalize_length", [False, True])
def test_decoder_losses_are_criterion_att_row_by_row(model, waves, normalize_length):
    """decoder_losses reduces per row by itself: it must equal ESPnet's criterion_att on each row alone."""
    from espnet2.legacy.nets.pytorch_backend.transformer.add_sos_eos import add_sos_eos

    crit = model.criterion_att
    x, lens = pad_waves(waves, "cpu")
    ys, ys_lens = pad_targets(TARGETS, "cpu")
    saved = crit.normalize_length
    crit.normalize_length = normalize_length
    try:
        with torch.no_grad():
            enc, enc_lens = model.encode(x, lens)
            ours = decoder_losses(model, enc, enc_lens, ys, ys_lens)
            ys_in, ys_out = add_sos_eos(ys, model.sos, model.eos, model.ignore_id)
            dec_out, _ = model.decoder(enc, enc_lens, ys_in, ys_lens + 1)
            rows = [crit(dec_out[i: i + 1, : n + 1], ys_out[i: i + 1, : n + 1])
                    for i, n in enumerate(ys_lens.tolist())]
    finally:
        crit.normalize_length = saved
    assert torch.allclose(ours, torch.stack(rows), rtol=1e-6)
    assert len(set(ys_lens.tolist())) > 1, "targets of different lengths exercise the padding"


def test_loss_refuses_missing_heads_and_training_mode(waves):
    x, lens = torch.from_numpy(waves[0])[None], torch.tensor([len(waves[0])])
    ys, ys_lens = pad_targets([TARGETS[0]], "cpu")
    with pytest.raises(AttackSetupError, match="needs the CTC head"):
        adversarial_losses(build_tiny(1.0, 0.0), x, lens, ys, ys_lens, 0.3)
    with pytest.raises(AttackSetupError, match="needs the attention decoder"):
        adversarial_losses(build_tiny(1.0, 1.0), x, lens, ys, ys_lens, 0.5)
    adversarial_losses(build_tiny(1.0, 0.0), x, lens, ys, ys_lens, 0.0)  # decoder only: fine
    m = build_tiny(1.0, 0.3).train()
    with pytest.raises(AttackSetupError, match="eval"):
        adversarial_losses(m, x, lens, ys, ys_lens, 0.3)


def test_batched_gradients_equal_one_at_a_time_and_padding_gets_none(model, waves):
    singles = [grads(model, [w], [t])[1][0] for w, t in zip(waves, TARGETS)]
    _, raw = grads(model, waves, TARGETS)
    with batch_invariant(model):
        _, fixed = grads(model, waves, TARGETS)
        assert torch.equal(grads(model, waves[:1], TARGETS[:1])[1][0], singles[0])  # a batch of one: untouched
    worst_raw = worst_fixed = 0.0
    for i, (w, s) in enumerate(zip(waves, singles)):
        n = len(w)
        worst_raw = max(worst_raw, float((raw[i, :n] - s).abs().max() / s.abs().max()))
        worst_fixed = max(worst_fixed, float((fixed[i, :n] - s).abs().max() / s.abs().max()))
        assert torch.count_nonzero(fixed[i, n:]) == 0
    assert worst_fixed <= 1e-5 < 1e-2 < worst_raw  # stock ESPnet: off by >1%; hooked: round-off


# ------------------------------------------------------------------------------------------------ engines
@pytest.fixture(scope="module")
def five_steps(model, waves):
    return {"art": attack("art", model, waves, 5), "native1": attack("native", model, waves, 5, batch_size=1),
            "native": attack("native", model, waves, 5, batch_size=3)}


def test_constraints_hold_and_bind(five_steps, model, waves):
    for result in five_steps.values():
        for x, d in zip(waves, result.deltas):
            assert d.dtype == np.float32 and d.shape == x.shape
            assert np.linalg.norm(d) <= EPS + 1e-6
            assert np.abs(x + d).max() <= 1.0 + 1e-6
    norms = [float(np.linalg.norm(d)) for d in five_steps["native"].deltas]
    assert min(norms[0], norms[2]) > EPS - 1e-6  # the projection binds (the clipped utterance's δ is shorter)
    unclipped = attack("native", model, waves, 5, batch_size=3, clip=False)
    assert np.abs(waves[1] + unclipped.deltas[1]).max() > 1.0  # and clipping does


def test_native_engine_is_arts_pgd(five_steps):
    for a, n1, nb in zip(five_steps["art"].deltas, five_steps["native1"].deltas, five_steps["native"].deltas):
        assert np.abs(n1 - a).max() <= 1e-6       # same semantics as ART
        assert np.abs(nb - n1).max() <= 1e-6      # batched = one at a time
        assert np.abs(a).max() > 1e-3


def test_art_run_step_by_step_is_art_generate(model, waves):
    est = ESPnetARTRecognizer(model, 0.3, clip_values=(-1.0, 1.0))
    pgd = make_art_pgd(est, EPS, STEP, 3)
    adv = pgd.generate(object_array([w.reshape(1, -1) for w in waves]),
                       object_array([np.array(t) for t in TARGETS]))
    ours = attack("art", model, waves, 3)
    for a, w, d in zip(adv, waves, ours.deltas):
        np.testing.assert_array_equal(a.reshape(-1) - w, d)


@pytest.mark.parametrize("engine, tol", [("native", 0.0), ("art", 1e-7)])
def test_chained_milestones_equal_one_run(model, waves, engine, tol):
    first = attack(engine, model, waves, 2)
    chained = attack(engine, model, waves, 3, delta0=first.deltas)
    straight = attack(engine, model, waves, 5)
    for c, s in zip(chained.deltas, straight.deltas):
        assert np.abs(c - s).max() <= tol


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("engine", ["native", "art"])
def test_resume_from_the_in_job_checkpoint(model, waves, tmp_path, engine):
    ckpt = tmp_path / "attack.ckpt"

    def die_at_3(step):
        if step == 3:
            raise Interrupt

    with pytest.raises(Interrupt):
        attack(engine, model, waves, 5, batch_size=3, checkpoint_path=ckpt, checkpoint_every=2, callback=die_at_3)
    assert ckpt.is_file() and torch.load(ckpt, weights_only=True)["step"] == 2
    seen = []
    resumed = attack(engine, model, waves, 5, batch_size=3, checkpoint_path=ckpt, checkpoint_every=2,
                     callback=seen.append)
    assert resumed.resumed_from == 2 and seen == [3, 4, 5]
    straight = attack(engine, model, waves, 5, batch_size=3)
    for r, s in zip(resumed.deltas, straight.deltas):
        np.testing.assert_array_equal(r, s)


def test_utterance_shorter_than_a_window_is_an_error(model, waves):
    short = [waves[0], waves[1][:400]]
    with pytest.raises(AttackSetupError, match=r"utterance b has 400 samples.*n_fft = 512"):
        run_attack("native", model, short, TARGETS[:2], 0.3, EPS, STEP, 1, names=["a", "b"])


@pytest.mark.parametrize("engine", ["native", "art"])
def test_nan_gradient_is_an_error_or_a_counted_skip(model, waves, engine):
    poisoned = len(waves[1])

    def nan_features(module, args, out):  # a real failure mode made to order: NaN features for one utterance
        feats, lens = out
        factor = torch.where(args[1] == poisoned, float("nan"), 1.0)[:, None, None]
        return feats * factor, lens

    handle = model.frontend.register_forward_hook(nan_features)
    try:
        with pytest.raises(NaNGradientError, match="utt-b"):
            attack(engine, model, waves, 2, batch_size=3, names=["utt-a", "utt-b", "utt-c"])
        result = attack(engine, model, waves, 2, batch_size=3, on_nan="skip")
    finally:
        handle.remove()
    assert result.nan_skips == [0, 2, 0]
    assert not result.deltas[1].any() and result.deltas[0].any() and result.deltas[2].any()


# ------------------------------------------------------------------------------------------------ decoding, job
@pytest.fixture(scope="module")
def exported(tmp_path_factory, bpe):
    """The tiny model exported by the project's own export step (stock config.yaml/model.pth + MTL files)."""
    from hne_core.model.export import export_model

    d = tmp_path_factory.mktemp("export")
    cfg = {**tiny_config(1.0, 0.3), "bpemodel": str(bpe)}
    (d / "train").mkdir()
    (d / "train" / "config.yaml").write_text(yaml.safe_dump(cfg))
    torch.save(build_tiny(1.0, 0.3).state_dict(), d / "weights.pth")
    return export_model(d / "train", d / "weights.pth", d / "model")


@pytest.mark.parametrize("lambda_c", [0.0, 0.3, 1.0])
def test_greedy_decoder_matches_speech2text(exported, model, waves, lambda_c):
    from hne_core.model.evaluate import load_speech2text

    s2t = load_speech2text(exported, lambda_c)
    ours = GreedyDecoder(model, lambda_c)
    for w in waves[:2]:
        assert ours(w) == s2t(w)[0][2]


def test_attack_job_chains_milestones_and_writes_checked_outputs(exported, bpe, waves, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    ids = ["u1", "u2", "u3"]
    refs = ["A BAD CAB", "DEAD", "BE"]
    for u, w in zip(ids, waves):
        sf.write(data / f"{u}.wav", w, 16000, subtype="FLOAT")
    (data / "wav.scp").write_text("".join(f"{u} {data / u}.wav\n" for u in ids))
    (data / "text").write_text("".join(f"{u} {r}\n" for u, r in zip(ids, refs)))
    (data / "accent").write_text("u1 0\nu2 1\nu3 0\n")
    write_targets(tmp_path / "targets.txt", ["CAB", "ABE DEED", "EBB"])
    out = {k: tmp_path / f"{k}" for k in ("c2.csv", "s2.npz", "j2.json", "c4.csv", "s4.npz", "j4.json")}

    def job(steps, prev, csv, state, summary, **kw):
        return attack_job(exported, data, ids, tmp_path / "targets.txt", 0.3, EPS, STEP, steps, prev, True,
                          "native", "cpu", 2, tmp_path / "ckpt", csv, state, summary, **kw)

    job(2, None, out["c2.csv"], out["s2.npz"], out["j2.json"])
    summary = job(4, out["s2.npz"], out["c4.csv"], out["s4.npz"], out["j4.json"])
    frame = pd.read_csv(out["c4.csv"], keep_default_na=False)
    assert list(frame.utt_id) == ids and list(frame.target) == ["ABE DEED", "CAB", "CAB"]
    assert {"reference", "hypothesis", "l2_norm", "snr_db", "target_wer", "adv_loss"} <= set(frame.columns)
    assert json.loads(out["j4.json"].read_text()) == summary
    assert summary["steps"] == 4 and summary["steps_run"] == 2 and summary["n_utts"] == 3
    assert summary["adv_twer"] >= 0 and summary["nan_skipped_steps"] == 0 and not (tmp_path / "ckpt").exists()
    state = load_state(out["s4.npz"])
    assert state["utt_ids"] == ids and state["meta"]["steps"] == 4
    for x, d, norm in zip(waves, state["deltas"], frame.l2_norm):
        assert np.linalg.norm(d) <= EPS + 1e-6 and np.abs(x + d).max() <= 1.0 + 1e-6
        assert norm == pytest.approx(float(np.linalg.norm(d.astype(np.float64))))
    # the 2-step state continued by 2 steps is the 4-step attack, up to the int16 storage of δ
    straight = run_attack("native", build_tiny(1.0, 0.3), waves, list(frame.target), 0.3, EPS, STEP, 4,
                          encoder=TargetEncoder(TOKENS, bpe))
    for d, s in zip(state["deltas"], straight.deltas):
        assert np.abs(d - s).max() <= 1e-5
    with pytest.raises(AttackSetupError, match="different attack"):
        attack_job(exported, data, ids, tmp_path / "targets.txt", 0.5, EPS, STEP, 4, out["s2.npz"], True, "native",
                   "cpu", 2, None, tmp_path / "x.csv", tmp_path / "x.npz", tmp_path / "x.json")
    write_targets(tmp_path / "bad.txt", ["FAB"])
    with pytest.raises(SpellingError, match="'FAB'"):
        attack_job(exported, data, ids, tmp_path / "bad.txt", 0.3, EPS, STEP, 1, None, True, "art", "cpu", 1,
                   None, tmp_path / "x.csv", tmp_path / "x.npz", tmp_path / "x.json")


def test_attack_benchmark_prints_consistent_figures_and_a_summary_line():
    """The bench's command line on a tiny setting: every figure the issue asks for, and sums that add up."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "hne_core.bench", "attack", "--utts", "2", "--steps", "1",
                          "--repeat", "1", "--paper-device", "cpu", "--paper-utts", "1", "--paper-steps", "1",
                          "--paper-seconds", "1.5"], cwd=repo, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    last = out.stdout.strip().splitlines()[-1]
    assert last.startswith("summary: ")
    f = dict(kv.split("=", 1) for kv in last.split()[1:])
    num = {k: float(v) for k, v in f.items() if k not in ("device", "paper_device")}
    for key in ("art_b1_utt_steps_per_s", "native_b1_utt_steps_per_s", "native_batched_utt_steps_per_s",
                "native_step_over_fwd_bwd", "sweep_native_over_art", "sweep_native_over_art_config_milestones",
                "sweep_ceiling", "paper_utt_step_ms", "paper_grid_device_hours"):
        assert num[key] > 0, key
    assert num["native_batched_over_art"] == pytest.approx(
        num["native_batched_utt_steps_per_s"] / num["art_b1_utt_steps_per_s"], abs=0.011)
    # the paper's sweep: 2000 chained steps against 5000, decoding the same four times in each
    assert num["sweep_native_over_art"] == pytest.approx(num["sweep_art_s"] / num["sweep_chained_s"], rel=0.01)
    assert num["sweep_independent_s"] > num["sweep_chained_s"]
    assert num["paper_grid_device_hours"] == pytest.approx(
        16 * 1000 * 2000 * num["paper_utt_step_ms"] / 1000 / 3600, rel=0.01)
    assert "paper sweep [500, 1000, 1500, 2000]" in out.stdout and "config sweep [50, 100, 150, 200]" in out.stdout
