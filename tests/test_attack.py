"""The attack library on a tiny real ESPnet model: targets, Eq. 4, batch invariance, the native PGD engine against
ART's own PGD, chaining, resume, errors, greedy decoding against Speech2Text, and the workflow's attack job.

What is exact and what is bounded (float32; u = 2^-24 is its unit round-off). Every bound is derived from the
arithmetic, so it holds on any x86-64 CPU whatever SIMD code path torch, MKL, oneDNN or numpy take:
- identical by construction, compared with ``==``: native chaining (2 + 3 steps = 5 steps: the same operations
  in the same order), resume from the in-job checkpoint, ART stepped by us against ART's ``generate``, a batch of
  one with and without the batch-invariance hooks;
- one PGD step from the same state: native (batch 1) and ART take the same gradient (same code, same shapes) and
  differ only in how the two norms are summed; ``step_bound`` bounds the difference from T, α, ε and u. Batched
  native steps and ART's chained steps also see a gradient that differs by round-off (padding, or x + (x_adv - x)
  against x_adv): the measured gradient difference is carried through the step, which is 1-Lipschitz in it;
- after several steps the trajectories are not compared sample by sample: a step is not a contraction (with
  clipping, a sample on the ±1 boundary is clipped or not by round-off), so differences of 1e-8 grow to 1e-5
  in 5 steps on some CPUs (measured under MKL_CBWR=COMPATIBLE, ATEN_CPU_CAPABILITY=default). What must hold after
  many steps holds instead: every engine meets ‖δ‖₂ ≤ ε·(1 + NORM_RTOL) and |x + δ| ≤ 1 + CLIP_TOL, and all three
  decode to the same tokens;
- batched input gradients equal one-at-a-time ones within ``GRAD_RTOL`` (see there).
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from pathlib import Path

import jiwer
import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import torch
import yaml
from model_utils import TOKENS, build_tiny, tiny_config

from hne_core.attack.art_engine import ESPnetARTRecognizer, make_art_pgd, object_array
from hne_core.attack.job import AttackJob, AttackOutputs, AttackSettings, attack_job, dequantize, load_state, quantize
from hne_core.attack.loss import AttackSetupError, HeadTerm, adversarial_losses, decoder_losses, pad_targets
from hne_core.attack.pgd import (
    CLIP_TOL,
    FLOAT32_U,
    NORM_RTOL,
    AuxHead,
    NaNGradientError,
    channels_last,
    cpu_has_bf16,
    frozen,
    length_batches,
    resolve_autocast,
)
from hne_core.attack.run import run_attack
from hne_core.attack.stft_grad import fast_stft_gradient
from hne_core.attack.targets import (
    LOREM_WORDS,
    SpellingError,
    TargetEncoder,
    assign_targets,
    check_spellable,
    make_targets,
    read_targets,
    spellable_words,
    write_targets,
)
from hne_core.batching import batch_invariant
from hne_core.decoding import GreedyDecoder
from hne_core.heads import SetupError, pad_waves

pytestmark = pytest.mark.numeric

EPS, STEP = 0.05, 0.02  # small ε so that the projection binds within a few steps
# Batched against one-at-a-time (hooks on): the same sums in another order (other GEMM blockings for other batch
# shapes). Higham's bound for one dot product of length K in any order is γ_K = Ku/(1-Ku) of Σ|a·b|; a forward and
# backward pass of the tiny model chains about 30 reductions of length ≤ 512 (the STFT's n_fft), so the worst
# case with well-conditioned sums is ~30·512·u ≈ 9e-4 relative. Measured 1.5e-6 to 3.8e-6 under three forced
# CPU code paths; the defect this guards against (ESPnet's own zero padding) is off by 15 %.
GRAD_RTOL = 30 * 512 * FLOAT32_U
SETTINGS = AttackSettings(eps=EPS, step_size=STEP, batch_size=2)  # the job's settings object, as the workflow builds it
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
def grads(model, waves, targets, lambda_c=0.3, levers=True):
    """Losses and input gradients; ``levers``: with the native engine's float32 speed-ups (its default), so that a
    gradient here is the one the engine steps with."""
    x, lens = pad_waves(waves, "cpu")
    x.requires_grad_(True)
    ys, ys_lens = pad_targets(targets, "cpu")
    stft = fast_stft_gradient() if levers else contextlib.nullcontext()
    with frozen(model), stft, channels_last(model, levers):
        losses = adversarial_losses(model, x, lens, ys, ys_lens, lambda_c)
        (g,) = torch.autograd.grad(losses.sum(), x)
    return losses.detach(), g


# The STFT gradient by irfft + overlap-add against PyTorch's (a complex FFT over the full spectrum): the same linear
# map summed in another order. Each FFT's relative error in norm is O(log2(N)·u) (about 5·log2(N)·u for the
# radix-2/4 kernels of pocketfft and MKL); two of them, plus the overlap-add's ceil(N/hop) terms per sample.
def stft_grad_rtol(n_fft: int, hop: int) -> float:
    return (10 * np.log2(n_fft) + np.ceil(n_fft / hop)) * FLOAT32_U


@pytest.mark.parametrize("n_fft,hop,length", [(512, 160, 16000), (512, 256, 12345), (400, 128, 9000), (511, 100, 7000)])
def test_fast_stft_gradient_is_torch_stft_gradient(n_fft, hop, length):
    """Bit-identical spectrum, and the input gradient of a random complex cotangent within ``stft_grad_rtol``; a
    slip in the adjoint (no halving of interior bins, a missing window, the wrong Nyquist bin) is off by >10 %."""
    gen = torch.Generator().manual_seed(n_fft + hop)
    x = torch.randn(3, length, generator=gen)
    window = torch.hann_window(n_fft)
    frames = 1 + (length + 2 * (n_fft // 2) - n_fft) // hop  # centred: padded by n_fft // 2 on both sides
    cot = torch.randn(3, n_fft // 2 + 1, frames, dtype=torch.complex64, generator=gen)
    out, original = {}, torch.stft
    for fast in (False, True):
        xx = x.clone().requires_grad_(True)
        with fast_stft_gradient() if fast else contextlib.nullcontext():
            spec = torch.stft(xx, n_fft, hop_length=hop, window=window, center=True, return_complex=True)
        (g,) = torch.autograd.grad(spec, xx, cot)
        out[fast] = (spec.detach(), g)
    assert torch.equal(out[False][0], out[True][0])
    ref, fast = out[False][1].double(), out[True][1].double()
    assert 0 < float((fast - ref).norm() / ref.norm()) <= stft_grad_rtol(n_fft, hop)
    assert torch.stft is original  # restored after the block


def test_speed_levers_change_the_input_gradient_only_by_round_off(model, waves):
    """The fast STFT gradient and channels-last convolutions against neither, batched with the hooks on: within
    ``GRAD_RTOL`` (the same sums in another order), and the padding still gets no gradient."""
    with batch_invariant(model):
        _, plain = grads(model, waves, TARGETS, levers=False)
        _, fast = grads(model, waves, TARGETS)
    for i, w in enumerate(waves):
        n = len(w)
        a, b = plain[i, :n].double(), fast[i, :n].double()
        assert float((a - b).abs().max() / a.abs().max()) <= GRAD_RTOL
        assert torch.count_nonzero(fast[i, n:]) == 0
    assert all(p.is_contiguous() for p in model.parameters())  # the layout is restored after the block


def test_loss_is_eq4_per_utterance_as_espnet_computes_it(model, waves):
    # λA = 1: the model's own loss is λC L_CTC + (1-λC) L_DEC, so a batch of one must agree with it
    for w, t in zip(waves, TARGETS):
        ours = grads(model, [w], [t])[0][0]
        loss, _, _ = model(
            torch.from_numpy(w)[None],
            torch.tensor([len(w)]),
            torch.tensor([t]),
            torch.tensor([len(t)]),
            accent=torch.zeros(1, 1, dtype=torch.long),
        )
        # the same CTC and attention ops; only the final sums over ≤ 45 terms are ordered differently
        assert float(ours) == pytest.approx(float(loss.detach()), rel=2 * 45 * FLOAT32_U)
    with batch_invariant(model):
        batched = grads(model, waves, TARGETS)[0]
    singles = torch.stack([grads(model, [w], [t])[0][0] for w, t in zip(waves, TARGETS)])
    assert torch.allclose(batched, singles, rtol=GRAD_RTOL, atol=0)  # not divided by the batch size (1/3 off)


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
            rows = [
                crit(dec_out[i : i + 1, : n + 1], ys_out[i : i + 1, : n + 1]) for i, n in enumerate(ys_lens.tolist())
            ]
    finally:
        crit.normalize_length = saved
    # one reduction over vocabulary x (target length + 1) terms in another order: ≤ 2·γ_n relative
    n = len(model.token_list) * (int(ys_lens.max()) + 1)
    assert torch.allclose(ours, torch.stack(rows), rtol=2 * n * FLOAT32_U, atol=0)
    assert len(set(ys_lens.tolist())) > 1, "targets of different lengths exercise the padding"


def test_loss_refuses_missing_heads_and_training_mode(waves):
    x, lens = torch.from_numpy(waves[0])[None], torch.tensor([len(waves[0])])
    ys, ys_lens = pad_targets([TARGETS[0]], "cpu")
    with pytest.raises(SetupError, match="needs the CTC head"):
        adversarial_losses(build_tiny(1.0, 0.0), x, lens, ys, ys_lens, 0.3)
    with pytest.raises(SetupError, match="needs the attention decoder"):
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
    assert worst_fixed <= GRAD_RTOL < 1e-2 < worst_raw  # stock ESPnet: off by >1%; hooked: round-off


# ------------------------------------------------------------------------------------------------ engines
@pytest.fixture(scope="module")
def five_steps(model, waves):
    return {
        "art": attack("art", model, waves, 5),
        "native1": attack("native", model, waves, 5, batch_size=1),
        "native": attack("native", model, waves, 5, batch_size=3),
    }


def test_constraints_hold_and_bind(five_steps, model, waves):
    for result in five_steps.values():
        for x, d in zip(waves, result.deltas):
            assert d.dtype == np.float32 and d.shape == x.shape
            assert np.linalg.norm(d.astype(np.float64)) <= EPS * (1 + NORM_RTOL)
            assert np.abs(x.astype(np.float64) + d).max() <= 1.0 + CLIP_TOL
    norms = [float(np.linalg.norm(d.astype(np.float64))) for d in five_steps["native"].deltas]
    assert min(norms[0], norms[2]) > EPS * (1 - NORM_RTOL)  # the projection binds (the clipped one is shorter)
    unclipped = attack("native", model, waves, 5, batch_size=3, clip=False)
    assert np.abs(waves[1] + unclipped.deltas[1]).max() > 1.0  # and clipping does


def step_bound(
    x: np.ndarray,
    delta_in: np.ndarray,
    delta_out: np.ndarray,
    grad: np.ndarray,
    grad_diff: float = 0.0,
    input_diff: float = 0.0,
) -> float:
    """Largest |δ'_a - δ'_b| of two implementations of one step of ``pgd.l2_step`` from states ``delta_in`` whose
    inputs x + δ differ by at most ``input_diff`` per sample and whose gradients differ by ``grad_diff`` in L2
    (``grad`` is one of them; ``delta_out`` one of the results). Error analysis, u the float32 unit round-off:
    - ‖g‖: ART sums T squares in float32 in some order (relative error ≤ γ_T = Tu/(1-Tu) for any order, halved
      by the square root, + u), native rounds a float64 sum (≤ u): ρ = γ_T/2 + 2u between them;
    - g/‖g‖, α·ĝ, x_adv + α·ĝ, d = x_adv - x: each rounding ≤ u of its value, so per sample
      e ≤ α·|ĝ|·(ρ + 4u) + 2u·max|x_adv| + 2u·max|d| + input_diff + α·2‖Δg‖/‖g‖ (the direction of the gradient
      moves by at most 2‖Δg‖/‖g‖; clipping and the projection are 1-Lipschitz);
    - the scale min(1, ε/‖d‖) moves by its relative error √T·e/‖d‖ + ρ + 2u (‖d‖ ≥ ‖δ'‖: the projection shrinks).
    """
    u, T = FLOAT32_U, len(x)
    rho = T * u / (1 - T * u) / 2 + 2 * u
    g = grad.astype(np.float64)
    gnorm = float(np.linalg.norm(g))
    ghat = float(np.abs(g).max()) / gnorm
    d_max = float(np.abs(delta_in).max()) + STEP * ghat
    xadv_max = float(np.abs(x.astype(np.float64) + delta_in).max()) + STEP * ghat
    e = STEP * ghat * (rho + 4 * u) + 2 * u * xadv_max + 2 * u * d_max + input_diff + STEP * 2 * grad_diff / gnorm
    d_norm = max(float(np.linalg.norm(delta_out.astype(np.float64))), 1e-30)
    return e + float(np.abs(delta_out).max()) * (np.sqrt(T) * e / d_norm + rho + 2 * u)


def grads_in_engine_order(model, waves, targets, batch_size):
    """Input gradients as the native engine batches them (longest first, ``batch_size`` at a time)."""
    out = [None] * len(waves)
    with batch_invariant(model):
        for idx in length_batches([len(w) for w in waves], batch_size):
            _, g = grads(model, [waves[i] for i in idx], [targets[i] for i in idx])
            for r, i in enumerate(idx):
                out[i] = g[r, : len(waves[i])].numpy()
    return out


def test_native_step_is_arts_step_at_every_step(model, waves):
    """Along ART's own 5-step trajectory, one native step (batch 1, and batched) from ART's state equals ART's
    step within ``step_bound``: ART's semantics (sign, normalisation, clip before projection, ball centred on the
    original x) at every step, on any CPU. A semantic slip (projection before clipping, no normalisation, a ball
    re-centred on x + δ) moves δ by ~α·|ĝ| ≥ 1e-4 here, hundreds of times the bound."""
    delta = [np.zeros_like(w) for w in waves]
    worst = {"native1": 0.0, "native": 0.0}
    for _ in range(5):
        art = attack("art", model, waves, 1, delta0=delta).deltas
        runs = {
            "native1": attack("native", model, waves, 1, delta0=delta, batch_size=1).deltas,
            "native": attack("native", model, waves, 1, delta0=delta, batch_size=3).deltas,
        }
        x_adv = [w + d for w, d in zip(waves, delta)]
        single = grads_in_engine_order(model, x_adv, TARGETS, 1)
        batched = grads_in_engine_order(model, x_adv, TARGETS, 3)
        for i, x in enumerate(waves):
            assert np.abs(art[i]).max() > 1e-4
            for name, other in (("native1", single[i]), ("native", batched[i])):
                diff = float(np.linalg.norm(other.astype(np.float64) - single[i]))
                bound = step_bound(x, delta[i], art[i], single[i], grad_diff=diff)
                err = float(np.abs(runs[name][i] - art[i]).max())
                assert err <= bound, f"{name}, utterance {i}: |δ - δ_ART| = {err:.3g} > bound {bound:.3g}"
                worst[name] = max(worst[name], err / bound)
        delta = art
    assert max(worst.values()) < 1.0


def test_engines_decode_the_same_tokens_after_many_steps(five_steps, model, waves):
    """After 5 steps the engines' δ are not compared sample by sample (see the module docstring): what the attack
    reports from them, the greedy transcripts of x + δ, must be the same, and the attack must have moved them."""
    decode = GreedyDecoder(model, 0.3)
    tokens = {name: [decode(w + d) for w, d in zip(waves, r.deltas)] for name, r in five_steps.items()}
    assert tokens["native1"] == tokens["art"] and tokens["native"] == tokens["art"]
    assert tokens["art"] != [decode(w) for w in waves]


def test_art_run_step_by_step_is_art_generate(model, waves):
    est = ESPnetARTRecognizer(model, 0.3, clip_values=(-1.0, 1.0))
    pgd = make_art_pgd(est, EPS, STEP, 3)
    adv = pgd.generate(object_array([w.reshape(1, -1) for w in waves]), object_array([np.array(t) for t in TARGETS]))
    ours = attack("art", model, waves, 3)
    for a, w, d in zip(adv, waves, ours.deltas):
        np.testing.assert_array_equal(a.reshape(-1) - w, d)


def test_native_chained_milestones_equal_one_run(model, waves):
    """2 + 3 steps are the 5 steps: the same operations on the same float32 δ, so bit for bit."""
    first = attack("native", model, waves, 2)
    chained = attack("native", model, waves, 3, delta0=first.deltas)
    straight = attack("native", model, waves, 5)
    for c, s in zip(chained.deltas, straight.deltas):
        np.testing.assert_array_equal(c, s)


def test_art_chained_milestone_continues_arts_own_run(model, waves, tmp_path):
    """ART's state is x_adv; a milestone hands on δ = x_adv - x and the next starts from x + δ, which is x_adv up
    to one rounding (Sterbenz: exact unless |x| < |δ|). So step 3 chained from the 2-step δ equals step 3 of one
    3-step run within ``step_bound`` for inputs one rounding apart and their measured gradient difference."""
    ckpt = tmp_path / "art.ckpt"
    straight = attack("art", model, waves, 3, checkpoint_path=ckpt, checkpoint_every=2).deltas
    x_adv2 = [a.numpy() for a in torch.load(ckpt, weights_only=True)["x_adv"]]  # ART's own state after step 2
    delta2 = [a - w for a, w in zip(x_adv2, waves)]
    chained = attack("art", model, waves, 1, delta0=delta2).deltas
    g_own = [g.numpy() for g in (grads(model, [a], [t])[1][0] for a, t in zip(x_adv2, TARGETS))]
    g_chain = [g.numpy() for g in (grads(model, [w + d], [t])[1][0] for w, d, t in zip(waves, delta2, TARGETS))]
    for i, x in enumerate(waves):
        input_diff = float(np.abs((x + delta2[i]).astype(np.float64) - x_adv2[i]).max())
        assert input_diff <= FLOAT32_U * 2  # one rounding of a value in [-1, 1]
        diff = float(np.linalg.norm(g_chain[i].astype(np.float64) - g_own[i]))
        bound = step_bound(x, delta2[i], straight[i], g_own[i], grad_diff=diff, input_diff=input_diff)
        assert float(np.abs(chained[i] - straight[i]).max()) <= bound


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
    resumed = attack(
        engine, model, waves, 5, batch_size=3, checkpoint_path=ckpt, checkpoint_every=2, callback=seen.append
    )
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


JOB_IDS, JOB_REFS = ["u1", "u2", "u3"], ["A BAD CAB", "DEAD", "BE"]


def write_job_data(tmp_path, waves) -> Path:
    """A Kaldi-style data directory of the first three waves (the attack job's input)."""
    data = tmp_path / "data"
    data.mkdir()
    for u, w in zip(JOB_IDS, waves):
        sf.write(data / f"{u}.wav", w, 16000, subtype="FLOAT")
    (data / "wav.scp").write_text("".join(f"{u} {data / u}.wav\n" for u in JOB_IDS))
    (data / "text").write_text("".join(f"{u} {r}\n" for u, r in zip(JOB_IDS, JOB_REFS)))
    (data / "accent").write_text("u1 0\nu2 1\nu3 0\n")
    return data


def test_attack_job_chains_milestones_and_writes_checked_outputs(exported, bpe, waves, tmp_path):
    data, ids = write_job_data(tmp_path, waves), JOB_IDS
    write_targets(tmp_path / "targets.txt", ["CAB", "ABE DEED", "EBB"])
    out = {k: tmp_path / f"{k}" for k in ("c2.csv", "s2.npz", "j2.json", "c4.csv", "s4.npz", "j4.json")}
    elsewhere = AttackOutputs(tmp_path / "x.csv", tmp_path / "x.npz", tmp_path / "x.json")

    def job(steps, prev, csv, state, summary, **kw):
        return attack_job(
            AttackJob(exported, data, ids, tmp_path / "targets.txt", 0.3, steps, prev_state=prev),
            SETTINGS,
            AttackOutputs(csv, state, summary, tmp_path / "ckpt"),
            device="cpu",
            **kw,
        )

    job(2, None, out["c2.csv"], out["s2.npz"], out["j2.json"])
    summary = job(4, out["s2.npz"], out["c4.csv"], out["s4.npz"], out["j4.json"])
    frame = pd.read_csv(out["c4.csv"], keep_default_na=False)
    assert list(frame.utt_id) == ids and list(frame.target) == ["ABE DEED", "CAB", "CAB"]
    assert {"reference", "hypothesis", "l2_norm", "snr_db", "target_wer", "adv_loss"} <= set(frame.columns)
    assert json.loads(out["j4.json"].read_text()) == summary
    assert summary["steps"] == 4 and summary["steps_run"] == 2 and summary["n_utts"] == 3
    assert summary["nan_skipped_steps"] == 0 and not (tmp_path / "ckpt").exists()
    # AdvTWER: the word edits of every hypothesis against its target (jiwer's alignment, utterance by utterance)
    # summed, over the target words summed. The summary's is one division times 100 (two roundings), this one
    # 100·edits (exact) over words (one rounding): at most 3 units of round-off apart, relatively
    counts = [jiwer.process_words(t, h) for t, h in zip(frame.target, frame.hypothesis)]
    edits = sum(c.substitutions + c.deletions + c.insertions for c in counts)
    words = sum(c.hits + c.substitutions + c.deletions for c in counts)
    assert summary["adv_twer"] == pytest.approx(100 * edits / words, rel=4 * 2.0**-53, abs=0)
    state = load_state(out["s4.npz"])
    assert state["utt_ids"] == ids and state["meta"]["steps"] == 4
    for x, d, norm in zip(waves, state["deltas"], frame.l2_norm):
        assert np.linalg.norm(d.astype(np.float64)) <= EPS * (1 + NORM_RTOL)
        assert np.abs(x.astype(np.float64) + d).max() <= 1.0 + CLIP_TOL
        assert norm == pytest.approx(float(np.linalg.norm(d.astype(np.float64))))
    # The 2-milestone is the 2-step attack as stored: int16 toward zero, so within two quanta (max|δ|/32767: the
    # truncation, and one more where the float32 product rounded up) and never larger in magnitude. The 4-milestone
    # continues exactly that stored state: the same 2 steps from it, quantised, bit for bit (round-off amplified
    # over steps is never compared; see the module docstring).
    model, encoder = build_tiny(1.0, 0.3), TargetEncoder(TOKENS, bpe)
    stored2 = load_state(out["s2.npz"])["deltas"]
    two = run_attack("native", model, waves, list(frame.target), 0.3, EPS, STEP, 2, batch_size=2, encoder=encoder)
    for d, s in zip(stored2, two.deltas):
        quantum = float(np.abs(s).max()) / 32767
        assert np.abs(d - s).max() <= 2 * quantum and np.all(np.abs(d) <= np.abs(s))
    more = run_attack(
        "native", model, waves, list(frame.target), 0.3, EPS, STEP, 2, delta0=stored2, batch_size=2, encoder=encoder
    )
    for d, s in zip(state["deltas"], more.deltas):
        np.testing.assert_array_equal(d, dequantize(*quantize(s)))
    with pytest.raises(AttackSetupError, match="different attack"):
        attack_job(
            AttackJob(exported, data, ids, tmp_path / "targets.txt", 0.5, 4, prev_state=out["s2.npz"]),
            SETTINGS,
            elsewhere,
            device="cpu",
        )
    write_targets(tmp_path / "bad.txt", ["FAB"])
    with pytest.raises(SpellingError, match="'FAB'"):
        attack_job(
            AttackJob(exported, data, ids, tmp_path / "bad.txt", 0.3, 1),
            replace(SETTINGS, engine="art", batch_size=1),
            elsewhere,
            device="cpu",
        )
    with pytest.raises(AttackSetupError, match="engine must be one of"):
        replace(SETTINGS, engine="cleverhans")


def test_untargeted_attack_job_ascends_the_references_and_never_chains_a_targeted_state(exported, bpe, waves, tmp_path):
    """The robustness checks' untargeted attack is the attack job with ``targeted=False``: no targets file, the
    references are what it moves away from (the CSV's target column), δ is ``run_attack(targeted=False)``'s as
    stored, and a targeted milestone's state is refused as its previous state (and the reverse)."""
    data = write_job_data(tmp_path, waves)
    untargeted = replace(SETTINGS, targeted=False)
    paths = {k: tmp_path / k for k in ("u.csv", "u.npz", "u.json", "t.csv", "t.npz", "t.json")}
    summary = attack_job(
        AttackJob(exported, data, JOB_IDS, None, 0.3, 2),
        untargeted,
        AttackOutputs(paths["u.csv"], paths["u.npz"], paths["u.json"]),
        device="cpu",
    )
    frame = pd.read_csv(paths["u.csv"], keep_default_na=False)
    assert list(frame.target) == JOB_REFS and (frame.target_wer == frame.wer).all()
    assert list(frame.success) == [h != r for h, r in zip(frame.hypothesis, frame.reference)]
    assert summary["targeted"] is False and summary["adv_twer"] == summary["wer"]
    model, encoder = build_tiny(1.0, 0.3), TargetEncoder(TOKENS, bpe)
    direct = run_attack(
        "native", model, waves[:3], JOB_REFS, 0.3, EPS, STEP, 2, targeted=False, batch_size=2, encoder=encoder
    )
    for d, s in zip(load_state(paths["u.npz"])["deltas"], direct.deltas):
        np.testing.assert_array_equal(d, dequantize(*quantize(s)))
    with pytest.raises(AttackSetupError, match="needs a targets file"):
        attack_job(AttackJob(exported, data, JOB_IDS, None, 0.3, 1), SETTINGS, AttackOutputs(*list(paths.values())[3:]))
    # targets equal to the references: the targeted state and the untargeted one then hold the same utterances and
    # targets, and differ only in the direction of the attack, which alone must refuse the chain
    write_targets(tmp_path / "targets.txt", JOB_REFS)
    targeted_outputs = AttackOutputs(paths["t.csv"], paths["t.npz"], paths["t.json"])
    attack_job(
        AttackJob(exported, data, JOB_IDS, tmp_path / "targets.txt", 0.3, 1), SETTINGS, targeted_outputs, device="cpu"
    )
    assert load_state(paths["t.npz"])["targets"] == load_state(paths["u.npz"])["targets"] == JOB_REFS
    for prev, settings, targets in ((paths["t.npz"], untargeted, None), (paths["u.npz"], SETTINGS, "targets.txt")):
        with pytest.raises(AttackSetupError, match="different attack"):
            attack_job(
                AttackJob(exported, data, JOB_IDS, targets and tmp_path / targets, 0.3, 4, prev_state=prev),
                settings,
                AttackOutputs(tmp_path / "x.csv", tmp_path / "x.npz", tmp_path / "x.json"),
                device="cpu",
            )


@pytest.mark.slow
def test_attack_benchmark_prints_consistent_figures_and_a_summary_line(tmp_path):
    """The bench's command line on a tiny setting (random weights: no trained run at ``--trained``): every figure,
    every lever's ratio, sums that add up, and the last line ``step_ms_per_utt=<x> floor_ratio=<y>``."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hne_core.bench",
            "attack",
            "--utts",
            "2",
            "--steps",
            "1",
            "--repeat",
            "1",
            "--paper-device",
            "cpu",
            "--paper-utts",
            "1",
            "--paper-steps",
            "1",
            "--paper-seconds",
            "1.5",
            "--trained",
            str(tmp_path / "no-run"),
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    lines = out.stdout.strip().splitlines()
    final = dict(kv.split("=", 1) for kv in lines[-1].split())
    assert set(final) == {"step_ms_per_utt", "floor_ratio"}
    summary = next(line for line in lines if line.startswith("summary: "))
    f = dict(kv.split("=", 1) for kv in summary.split()[1:])
    num = {k: float(v) for k, v in f.items() if k not in ("device", "paper_device")}
    for key in (
        "art_b1_utt_steps_per_s",
        "native_b1_utt_steps_per_s",
        "native_batched_utt_steps_per_s",
        "native_step_over_fwd_bwd",
        "sweep_native_over_art",
        "sweep_native_over_art_config_milestones",
        "sweep_ceiling",
        "paper_utt_step_ms",
        "paper_grid_device_hours",
        "lever_trim",
        "lever_fast_stft",
        "lever_channels_last",
        "lever_bf16",
        "lever_all",
    ):
        assert num[key] > 0, key
    assert float(final["floor_ratio"]) == pytest.approx(num["native_step_over_fwd_bwd"], abs=0.011)
    assert float(final["step_ms_per_utt"]) == pytest.approx(1000 / num["native_batched_utt_steps_per_s"], rel=0.01)
    assert num["native_batched_over_art"] == pytest.approx(
        num["native_batched_utt_steps_per_s"] / num["art_b1_utt_steps_per_s"], abs=0.011
    )
    # the paper's sweep: 2000 chained steps against 5000, decoding the same four times in each
    # printed to two decimals: rounding adds up to 0.005 (which matters where the ratio is below 1, on a tiny setting)
    assert num["sweep_native_over_art"] == pytest.approx(
        num["sweep_art_s"] / num["sweep_chained_s"], rel=0.01, abs=0.006
    )
    assert num["sweep_independent_s"] > num["sweep_chained_s"]
    assert num["paper_grid_device_hours"] == pytest.approx(
        16 * 1000 * 2000 * num["paper_utt_step_ms"] / 1000 / 3600, rel=0.01
    )
    steps = yaml.safe_load((repo / "config.yaml").read_text())["attack"]["steps"]
    assert "paper sweep [500, 1000, 1500, 2000]" in out.stdout and f"config sweep {steps}" in out.stdout


# ------------------------------------------------------------------------------------------------ batching
def test_length_batches_fill_a_sample_budget():
    """Longest first; a batch takes the next utterance while rows x its longest row stays within the budget and
    the row cap; an utterance over the budget is a batch of its own; without a budget, ``batch_size`` at a time."""
    lengths = [100, 400, 250, 250, 90, 50, 1000]
    assert length_batches(lengths, 3) == [[6, 1, 2], [3, 0, 4], [5]]
    got = length_batches(lengths, 16, batch_samples=500)
    assert got == [[6], [1], [2, 3], [0, 4, 5]]  # 1000 > 500 alone; 2·400 > 500; 2·250; 3·100 (4·100 ≤ 500, none left)
    assert length_batches(lengths, 2, batch_samples=500) == [[6], [1], [2, 3], [0, 4], [5]]  # the cap binds
    for batch in got:
        assert len(batch) == 1 or len(batch) * lengths[batch[0]] <= 500
    assert sorted(i for b in got for i in b) == list(range(len(lengths)))
    with pytest.raises(AttackSetupError, match="batch_samples"):
        length_batches(lengths, 4, batch_samples=0)


def grads_in_groups(model, waves, targets, groups):
    """Input gradients with the utterances batched as ``groups`` (hooks on)."""
    out = [None] * len(waves)
    with batch_invariant(model):
        for idx in groups:
            _, g = grads(model, [waves[i] for i in idx], [targets[i] for i in idx])
            for r, i in enumerate(idx):
                out[i] = g[r, : len(waves[i])].numpy()
    return out


def test_sample_budget_batches_change_a_step_only_by_round_off(model, waves):
    """A budget of 15000 samples batches the three utterances (8000, 7000, 6000) as [8000] and [7000, 6000]; one
    step from a common state then equals the step in one batch of three within ``step_bound`` for the measured
    gradient difference of the two batchings (the same sums in another order)."""
    assert length_batches([len(w) for w in waves], 16, batch_samples=15000) == [[0], [2, 1]]
    delta = attack("native", model, waves, 2, batch_size=3).deltas
    budget = attack("native", model, waves, 1, delta0=delta, batch_size=16, batch_samples=15000).deltas
    fixed = attack("native", model, waves, 1, delta0=delta, batch_size=3).deltas
    x_adv = [w + d for w, d in zip(waves, delta)]
    g_budget = grads_in_groups(model, x_adv, TARGETS, [[0], [2, 1]])
    g_fixed = grads_in_groups(model, x_adv, TARGETS, [[0, 2, 1]])
    for i, x in enumerate(waves):
        diff = float(np.linalg.norm(g_budget[i].astype(np.float64) - g_fixed[i]))
        assert float(np.abs(budget[i] - fixed[i]).max()) <= step_bound(
            x, delta[i], fixed[i], g_fixed[i], grad_diff=diff
        )
    np.testing.assert_array_equal(
        budget[0], attack("native", model, waves[:1], 1, delta0=delta[:1], batch_size=1).deltas[0]
    )  # alone in its batch: batch 1


class HostReads(torch.utils._python_dispatch.TorchDispatchMode):
    """Counts ``aten::_local_scalar_dense`` (``.item()``, ``int(t)``, ``bool(t)``: a device-to-host read that
    waits for the device) and device-to-host copies (none on a CPU; what ``torch.ctc_loss`` does with lengths on
    a GPU)."""

    def __init__(self) -> None:
        super().__init__()
        self.n = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is torch.ops.aten._local_scalar_dense.default:
            self.n += 1
        elif func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
            src = args[1] if func is torch.ops.aten.copy_.default else args[0]
            dst = args[0].device if func is torch.ops.aten.copy_.default else kwargs.get("device", src.device)
            if torch.is_tensor(src) and src.device.type != "cpu" and torch.device(dst).type == "cpu":
                self.n += 1
        return func(*args, **kwargs)


@pytest.mark.parametrize("batch_size,lambda_c", [(3, 0.3), (1, 0.3), (3, 0.0), (3, 1.0)])
def test_native_step_loop_reads_nothing_back_after_the_first_step(waves, batch_size, lambda_c):
    """After a batch's first step nothing is read back from the device until the end (the masks, CTC's lengths
    and the STFT hooks' plans are replayed; NaN counts stay on the device). Before this, a step of a batch of
    three read back 12 scalars: 6 in ESPnet's make_pad_mask (encoder and decoder masks), 2 in ESPnetASRModel.encode
    (a slice to lengths.max(), an assertion), 3 in the STFT hooks, 1 in CTC's targets."""
    m = build_tiny(1.0, lambda_c)
    seen: list[int] = []
    with HostReads() as reads:
        run_attack(
            "native",
            m,
            waves,
            TARGETS,
            lambda_c,
            EPS,
            STEP,
            4,
            batch_size=batch_size,
            callback=lambda step: seen.append(reads.n),
        )
    per_step = [b - a for a, b in zip(seen, seen[1:])]
    assert seen[0] > 0 and per_step == [0, 0, 0]


def test_length_replay_fails_when_lengths_change():
    """The replay is exact or fails: lengths that differ from the recorded ones are found (on the device) by
    ``check``; another call signature at once."""
    from hne_core.batching import LengthReplay

    replay = LengthReplay()
    for lens, expect in ((torch.tensor([5, 3]), 1), (torch.tensor([5, 3]), 1), (torch.tensor([5, 4]), 1)):
        with replay.batch(0):
            assert replay.lookup(("f",), lens, lambda: expect) == 1
        if int(lens[1]) == 3:
            replay.check()
    with pytest.raises(RuntimeError, match="lengths changed"):
        replay.check()
    with replay.batch(0), pytest.raises(RuntimeError, match="changed between steps"):
        replay.lookup(("g",), torch.tensor([5, 3]), lambda: 0)


def test_nan_error_names_the_utterance_and_its_first_step(model, waves):
    """Non-finite gradients are counted on the device and read at the end: the error still names the utterance
    and the first step it happened (here the second), and a skip leaves that row's δ at its first step."""
    poisoned, calls = len(waves[1]), []

    def nan_from_step_2(module, args, out):
        calls.append(1)
        feats, lens = out
        factor = torch.where(args[1] == poisoned, float("nan") if len(calls) >= 2 else 1.0, 1.0)[:, None, None]
        return feats * factor, lens

    handle = model.frontend.register_forward_hook(nan_from_step_2)
    try:
        with pytest.raises(NaNGradientError, match=r"PGD step 2 for utterance\(s\) utt-b \(first at step 2\)"):
            attack("native", model, waves, 3, batch_size=3, names=["utt-a", "utt-b", "utt-c"])
        calls.clear()
        skipped = attack("native", model, waves, 3, batch_size=3, on_nan="skip")
    finally:
        handle.remove()
    assert skipped.nan_skips == [0, 2, 0]
    one = attack("native", model, waves, 1, batch_size=3)
    # steps 2 and 3 are empty for utt-b: a zero gradient keeps δ where it is, up to the projection's rounding
    np.testing.assert_allclose(skipped.deltas[1], one.deltas[1], rtol=0, atol=4 * FLOAT32_U * EPS)


# bf16 keeps 8 significant bits: unit round-off u16 = 2^-8. A forward pass of the tiny model chains about 30
# rounding stages (GRAD_RTOL's count) and its backward as many, each a relative error ≤ u16 of well-conditioned
# values, so ‖g_bf16 - g‖ ≤ r‖g‖ with r = 60·u16 ≈ 0.23; two vectors that close have cos ≥ √(1 - r²) ≈ 0.97.
# Measured on this model: 0.9926-0.99997 (relative difference 0.8-12 %).
BF16_GRAD_REL = 60 * 2.0**-8


def test_bf16_autocast_gradient_agrees_with_float32(waves):
    """At fixed points (the clean audio and a 3-step δ) the bf16-autocast input gradient points where the float32
    one does, within the bound above; and autocast did act (the gradients differ)."""
    from hne_core.attack.loss import batch_targets
    from hne_core.attack.pgd import autocast_context

    m = build_tiny(1.0, 0.3)
    three = attack("native", m, waves, 3, batch_size=3).deltas
    ys, ys_lens = pad_targets(TARGETS, "cpu")
    worst = 1.0
    for delta in ([np.zeros_like(w) for w in waves], three):
        x, lens = pad_waves([w + d for w, d in zip(waves, delta)], "cpu")
        out = {}
        for amp in (None, "bf16"):
            xx = x.clone().requires_grad_(True)
            with frozen(m), batch_invariant(m):
                with autocast_context(torch.device("cpu"), amp):
                    losses = adversarial_losses(m, xx, lens, ys, ys_lens, 0.3, batch_targets(m, ys, ys_lens))
                (out[amp],) = torch.autograd.grad(losses.sum(), xx)
            assert out[amp].dtype == torch.float32
        for i, n in enumerate(lens.tolist()):
            a, b = out[None][i, :n].double(), out["bf16"][i, :n].double()
            cos = float(a @ b / (a.norm() * b.norm()))
            assert float((a - b).norm() / a.norm()) > 0  # autocast changed the arithmetic
            worst = min(worst, cos)
    assert worst >= np.sqrt(1 - BF16_GRAD_REL**2)
    amp_run = attack("native", m, waves, 3, batch_size=3, autocast="bf16")
    for x, d, d32 in zip(waves, amp_run.deltas, three):
        assert d.dtype == np.float32 and not np.array_equal(d, d32)
        assert np.linalg.norm(d.astype(np.float64)) <= EPS * (1 + NORM_RTOL)  # the update stays float32
        assert np.abs(x.astype(np.float64) + d).max() <= 1.0 + CLIP_TOL
    with pytest.raises(AttackSetupError, match="native engine"):
        attack("art", m, waves, 1, autocast="bf16")
    with pytest.raises(AttackSetupError, match="autocast"):
        attack("native", m, waves, 1, autocast="fp8")


def test_autocast_auto_is_bf16_only_on_a_cpu_with_native_bf16(tmp_path):
    """``attack.autocast: auto`` reads the CPU's flags: bf16 where avx512_bf16 or amx_bf16 is listed, float32 on
    other CPUs, on GPUs and where the flags cannot be read; explicit settings are kept."""
    with_bf16 = tmp_path / "bf16"
    with_bf16.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    without = tmp_path / "plain"
    without.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert cpu_has_bf16(with_bf16) and not cpu_has_bf16(without) and not cpu_has_bf16(tmp_path / "missing")
    assert resolve_autocast("auto", "cpu") == ("bf16" if cpu_has_bf16() else None)
    assert resolve_autocast("auto", "cuda") is None
    assert resolve_autocast(None, "cpu") is None and resolve_autocast("fp16", "cpu") == "fp16"


@pytest.mark.slow
def test_paper_benchmark_adds_up():
    """``bench paper`` on a CPU with tiny settings: every stage timed, and the device-hours are the paper grid's
    counts times the timings it printed (each figure printed to 6 significant digits: rel 1e-5 per factor)."""
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "hne_core.bench",
            "paper",
            "--device",
            "cpu",
            "--train-hours",
            "2.5",
            "--steps",
            "1",
            "--utts",
            "1",
            "--seconds",
            "1.0",
            "--peak-tflops",
            "2",
        ],
        cwd=repo,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    f = dict(kv.split("=", 1) for kv in out.stdout.strip().splitlines()[-1].split())
    n = {k: float(v) for k, v in f.items() if k != "device"}
    paper = yaml.safe_load((repo / "configs" / "paper.yaml").read_text())
    assert (n["models"], n["epochs"]) == (len(paper["finetune"]["grid"]), paper["finetune"]["epochs"]) == (13, 30)
    assert (n["pairs"], n["attacked"], n["max_steps"], n["milestones"], n["evaluations"], n["test_utts"]) == (
        16,
        1000,
        2000,
        4,
        19,
        1000,
    )
    for key in ("train_step_s", "attack_step_s", "decode_utt_s", "train_tflop", "attack_tflop"):
        assert n[key] > 0, key
    rel = 6e-5
    assert n["num_workers"] == paper["finetune"]["num_workers"] and n["loader_audio_s_per_s"] > 0
    slower = min(n["train_audio_s_per_s"], n["loader_audio_s_per_s"])  # the loader runs beside the device
    assert n["finetune_gpu_hours"] == pytest.approx(13 * 30 * 2.5 / slower, rel=rel)
    assert n["attack_gpu_hours"] == pytest.approx(16 * 1000 * 2000 * n["attack_utt_step_s"] / 3600, rel=rel)
    assert n["decodes"] == 19 * 1000 + 16 * 4 * 1000
    assert n["decode_gpu_hours"] == pytest.approx(n["decodes"] * n["decode_utt_s"] / 3600, rel=rel)
    assert n["total_gpu_hours"] == pytest.approx(
        n["finetune_gpu_hours"] + n["attack_gpu_hours"] + n["decode_gpu_hours"], rel=rel
    )
    assert n["attack_tflops_achieved"] == pytest.approx(n["attack_tflop"] / n["attack_step_s"], rel=rel)
    assert n["train_peak_fraction"] == pytest.approx(n["train_tflops_achieved"] / 2, rel=rel)
    # forward+backward with weight gradients against forward+backward to the input only, same model, ~same audio
    assert n["train_tflop"] > n["attack_tflop"]


# ------------------------------------------------------------------------------------------------ adaptive attacker
LABELS = (0, 1, 0)  # the utterances' accents, as write_job_data's accent file has them


@pytest.fixture(scope="module")
def mtl_model():
    return build_tiny(0.7, 0.3)


def aux_grads(model, waves, mu: float) -> list[np.ndarray]:
    """Input gradient of Eq. 4 + μ·L_DIS, each utterance alone (the engines' own levers on)."""
    out = []
    for w, t, label in zip(waves, TARGETS, LABELS):
        x = torch.from_numpy(w)[None].clone().requires_grad_(True)
        ys, ys_lens = pad_targets([t], "cpu")
        term = HeadTerm(model.discriminator, mu, torch.tensor([label]))
        with frozen(model), fast_stft_gradient():
            loss = adversarial_losses(model, x, torch.tensor([len(w)]), ys, ys_lens, 0.3, head_term=term)
            (g,) = torch.autograd.grad(loss.sum(), x)
        out.append(g[0].numpy())
    return out


def test_discriminator_term_is_mu_times_the_heads_cross_entropy(mtl_model, waves):
    """μ·L_DIS is the model's own accent head (``accent_logits``, as it is trained) in a cross-entropy against each
    utterance's label, added to Eq. 4: the difference of two float32 sums of a few terms, so within a few units of
    round-off of the total."""
    for w, t, label in zip(waves, TARGETS, LABELS):
        x, lens = torch.from_numpy(w)[None], torch.tensor([len(w)])
        ys, ys_lens = pad_targets([t], "cpu")
        with torch.no_grad():
            plain = adversarial_losses(mtl_model, x, lens, ys, ys_lens, 0.3)
            term = HeadTerm(mtl_model.discriminator, -2.5, torch.tensor([label]))
            total = adversarial_losses(mtl_model, x, lens, ys, ys_lens, 0.3, head_term=term)
            enc, enc_lens = mtl_model.encode(x, lens)
            ce = torch.nn.functional.cross_entropy(mtl_model.accent_logits(enc, enc_lens), torch.tensor([label]))
        assert float(ce) > 0.01
        tol = 8 * FLOAT32_U * float(total.abs() + plain.abs() + 2.5 * ce)
        assert float(total - plain) == pytest.approx(-2.5 * float(ce), abs=tol, rel=0)


def test_both_engines_take_the_discriminator_term_and_it_moves_the_attack(mtl_model, waves):
    """One step from δ = 0 with μ·L_DIS: the native engine (batch 1 and batched) equals ART's step within the
    derived ``step_bound``, and the step differs from the paper's attacker (μ = 0) by far more than that bound."""
    aux = AuxHead(mtl_model.discriminator, 20.0, LABELS)
    art = attack("art", mtl_model, waves, 1, aux=aux).deltas
    plain = attack("native", mtl_model, waves, 1, batch_size=1).deltas
    g = aux_grads(mtl_model, waves, 20.0)
    zero = [np.zeros_like(w) for w in waves]
    for batch_size in (1, 3):
        native = attack("native", mtl_model, waves, 1, batch_size=batch_size, aux=aux).deltas
        for i, x in enumerate(waves):
            bound = step_bound(x, zero[i], art[i], g[i])
            assert float(np.abs(native[i] - art[i]).max()) <= bound
            assert float(np.abs(plain[i] - art[i]).max()) > 10 * bound


def test_adaptive_attacker_settings_check_the_head_and_labels(model, mtl_model, waves):
    with pytest.raises(AttackSetupError, match="needs a discriminator head"):
        attack("native", model, waves, 1, aux=AuxHead(None, 1.0, LABELS))
    with pytest.raises(AttackSetupError, match="discriminator labels"):
        attack("native", mtl_model, waves, 1, aux=AuxHead(mtl_model.discriminator, 1.0, LABELS[:2]))
    with pytest.raises(AttackSetupError, match="label 2 is not one of the head's 2 classes"):
        attack("native", mtl_model, waves, 1, aux=AuxHead(mtl_model.discriminator, 1.0, (0, 2, 0)))


@pytest.fixture(scope="module")
def exported_mtl(tmp_path_factory, bpe):
    """The tiny λA = 0.7 model (with its accent head) exported by the project's export step."""
    from hne_core.model.export import export_model

    d = tmp_path_factory.mktemp("export_mtl")
    (d / "train").mkdir()
    (d / "train" / "config.yaml").write_text(yaml.safe_dump({**tiny_config(0.7, 0.3), "bpemodel": str(bpe)}))
    torch.save(build_tiny(0.7, 0.3).state_dict(), d / "weights.pth")
    return export_model(d / "train", d / "weights.pth", d / "model")


def test_adaptive_job_defaults_are_the_papers_attack_bit_for_bit_and_never_chain_across(
    exported_mtl, exported, bpe, waves, tmp_path
):
    """The attacker's λC(a) = λC(i) with μ = 0 is the paper's attack: the same state file, δ and CSV, bit for bit.
    An adaptive attacker's state (λC(a) or μ other) never continues the paper's, nor the paper's it; μ on a model
    without a discriminator is a clear error."""
    data = write_job_data(tmp_path, waves)
    write_targets(tmp_path / "targets.txt", ["CAB", "ABE DEED", "EBB"])
    paths = {k: tmp_path / k for k in ("p.csv", "p.npz", "p.json", "a.csv", "a.npz", "a.json", "x.csv", "x.npz")}

    def run(settings, csv, state, summary, prev=None, model_dir=exported_mtl, steps=2):
        job = AttackJob(model_dir, data, JOB_IDS, tmp_path / "targets.txt", 0.3, steps, prev_state=prev)
        return attack_job(job, settings, AttackOutputs(csv, state, summary), device="cpu")

    run(SETTINGS, paths["p.csv"], paths["p.npz"], paths["p.json"])
    run(replace(SETTINGS, lambda_c_attack=0.3, mu=0.0), paths["a.csv"], paths["a.npz"], paths["a.json"])
    assert paths["a.npz"].read_bytes() == paths["p.npz"].read_bytes()
    assert paths["a.csv"].read_bytes() == paths["p.csv"].read_bytes()

    adaptive = replace(SETTINGS, lambda_c_attack=1.0, mu=-1.0)
    summary = run(adaptive, paths["a.csv"], paths["a.npz"], paths["a.json"])
    assert summary["lambda_c_attack"] == 1.0 and summary["mu"] == -1.0 and summary["lambda_c_infer"] == 0.3
    moved = [
        np.abs(a - p).max() for a, p in zip(load_state(paths["a.npz"])["deltas"], load_state(paths["p.npz"])["deltas"])
    ]
    assert min(moved) > 0
    for settings, prev in (
        (adaptive, paths["p.npz"]),
        (SETTINGS, paths["a.npz"]),
        (replace(SETTINGS, mu=1.0), paths["a.npz"]),
    ):
        with pytest.raises(AttackSetupError, match="different attack"):
            run(settings, paths["x.csv"], paths["x.npz"], tmp_path / "x.json", prev=prev, steps=4)
    with pytest.raises(AttackSetupError, match="needs the discriminator"):
        run(replace(SETTINGS, mu=1.0), paths["x.csv"], paths["x.npz"], tmp_path / "x.json", model_dir=exported)
