"""Attack throughput: ART's PGD against the native engine, and what the paper's grid would cost.

On one model and one set of utterances, in one run: steps × utterances per second for ART (batch 1), the native
engine at batch 1 and batched, their ratios, the native step time over a bare forward+backward of ESPnet's own
loss on the same padded batch with frozen parameters (the floor an attack step cannot beat), and the cost of
a 4-milestone sweep run chained (each milestone continues the previous one: max(M) steps) against independent
runs (sum(M) steps), greedy decoding of every milestone included: for the paper's milestones 500-2000 (the
sweep the goal is about) and for the config's own (50-200 in the default config).

Then the paper's architecture (12-block conformer d=512, 8 heads, FF 2048, kernel 31; 6-block decoder; 5000
tokens; random weights) on whatever device is present: the native engine's cost per utterance-step, and the
full grid's device hours, 16 (model, λC(i)) pairs × 1000 utterances × 2000 chained steps, at the utterance
length given (Common Voice English clips average about 5 s). Random weights only matter for decoding (they
never emit <eos> early), which is left out of that estimate.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
import yaml

from hne_core.bench.train import PAPER_MODEL, PAPER_VOCAB, _build, _recipe, _sync

PAPER_GRID = {"pairs": 16, "utterances": 1000, "milestones": [500, 1000, 1500, 2000]}
LAMBDA_C = 0.3  # both heads: the dearest loss
PAIR_REPEAT = 3  # batched native step and bare forward+backward, timed alternately this many times a repetition


def _utterances(n: int, seconds: tuple[float, float], vocab: int, seed: int) -> tuple[list, list]:
    """Random audio (band-limited noise with an envelope, peak < 1) and random targets, ~14 tokens a second."""
    rng = np.random.default_rng(seed)
    waves, targets = [], []
    for _ in range(n):
        m = int(rng.uniform(*seconds) * 16000)
        w = np.convolve(rng.standard_normal(m), np.ones(4) / 4, mode="same")
        w *= 0.5 + 0.5 * np.sin(np.linspace(0, 6 * np.pi, m))
        waves.append((0.3 * w / np.abs(w).max()).astype(np.float32))
        targets.append(rng.integers(3, vocab - 1, max(2, int(14 * m / 16000))).tolist())
    return waves, targets


def _timed_attack(engine: str, model, waves, targets, steps: int, batch: int, device: str) -> float:
    """Seconds per step for all utterances (after one warm-up step)."""
    from hne_core.attack.run import run_attack

    kw = dict(clip=True, batch_size=batch, device=device)
    run_attack(engine, model, waves, targets, LAMBDA_C, 2.0, 0.05, 1, **kw)
    _sync(device)
    start = time.perf_counter()
    run_attack(engine, model, waves, targets, LAMBDA_C, 2.0, 0.05, steps, **kw)
    _sync(device)
    return (time.perf_counter() - start) / steps


def _bare_step(model, waves, targets, device: str, reps: int) -> float:
    """ESPnet's own batched loss, forward + backward to the input, parameters frozen (no hooks, no PGD)."""
    from hne_core.attack.loss import pad_targets, pad_waves
    from hne_core.attack.pgd import frozen

    x, lens = pad_waves(waves, device)
    ys, ys_lens = pad_targets(targets, device)

    def step():
        xx = x.clone().requires_grad_(True)
        loss, _, _ = model(xx, lens, ys.clone(), ys_lens)
        torch.autograd.grad(loss, xx)

    with frozen(model):
        step()
        _sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            step()
        _sync(device)
    return (time.perf_counter() - start) / reps


def _decode_seconds(model, waves) -> float:
    from hne_core.attack.decode import GreedyDecoder

    dec = GreedyDecoder(model, LAMBDA_C)
    start = time.perf_counter()
    for w in waves:
        dec(w)
    return (time.perf_counter() - start) / len(waves)


def _sweep(
    name: str, milestones: list[int], n_attacked: int, native_utt_step: float, art_utt_step: float, t_dec: float
) -> tuple[float, float, float]:
    """Seconds per (model, λC(i)) pair for one 4-milestone sweep: native chained (max(M) steps), native
    independent (sum(M) steps), and ART as the paper ran it (independent, batch 1: ART's ``generate`` re-centres
    the ball on its input, so it cannot continue a milestone). Greedy decoding of every milestone included."""
    decode = len(milestones) * t_dec
    chained = (max(milestones) * native_utt_step + decode) * n_attacked
    independent = (sum(milestones) * native_utt_step + decode) * n_attacked
    art = (sum(milestones) * art_utt_step + decode) * n_attacked
    print(
        f"  {name} sweep {milestones} on {n_attacked} utterances per (model, λC(i)) pair: native chained "
        f"{chained:.1f} s vs independent {independent:.1f} s ({independent / chained:.2f}x); as the paper ran it "
        f"(ART, independent, batch 1) {art:.1f} s: native chained and batched {art / chained:.2f}x faster",
        flush=True,
    )
    return chained, independent, art


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg_all = yaml.safe_load(Path(args.config).read_text())
    milestones = list(cfg_all.get("attack", {}).get("steps") or PAPER_GRID["milestones"])
    n_attacked = int(cfg_all.get("attack", {}).get("n_utterances") or 16)
    device = args.device or "cpu"
    vocab = 32
    model = _build(_recipe(cfg_all["model"], vocab)).to(device).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    waves, targets = _utterances(args.utts, (2.0, 3.0), vocab, seed=1)
    audio = sum(len(w) for w in waves) / 16000
    batch = args.batch or args.utts
    n = args.utts
    print(
        f"default model ({args.config} `model:`, random weights): {params:.2f} M parameters on {device}, "
        f"{n} utterances of 2-3 s ({audio:.1f} s), λC(i)={LAMBDA_C}, {args.steps} timed steps, "
        f"{args.threads} threads, best of {max(1, args.repeat)} interleaved repetitions (batched native step and "
        f"bare forward+backward: best of {PAIR_REPEAT * max(1, args.repeat)})",
        flush=True,
    )

    groups = [list(range(k, min(k + batch, n))) for k in range(0, n, batch)]
    timings: dict[str, list[float]] = {"art": [], "b1": [], "bb": [], "bare": []}
    for _ in range(max(1, args.repeat)):  # interleaved, so that a burst of load hits every engine alike
        timings["art"].append(_timed_attack("art", model, waves, targets, args.steps, 1, device))
        timings["b1"].append(_timed_attack("native", model, waves, targets, args.steps, 1, device))
        for _ in range(PAIR_REPEAT):  # the step ratio's two sides are cheap: more samples of each, alternating
            timings["bb"].append(_timed_attack("native", model, waves, targets, args.steps, batch, device))
            timings["bare"].append(
                sum(
                    _bare_step(model, [waves[i] for i in g], [targets[i] for i in g], device, args.steps)
                    for g in groups
                )
            )
    t_art, t_b1, t_bb, t_bare = (min(timings[k]) for k in ("art", "b1", "bb", "bare"))
    rate = {k: n / t for k, t in (("art", t_art), ("b1", t_b1), ("bb", t_bb))}
    print(f"  ART PGD (batch 1, numpy):   {rate['art']:8.2f} utterance-steps/s", flush=True)
    print(f"  native (batch 1):           {rate['b1']:8.2f} utterance-steps/s  ({rate['b1'] / rate['art']:.2f}x ART)")
    print(
        f"  native (batch {batch:2d}):          {rate['bb']:8.2f} utterance-steps/s  "
        f"({rate['bb'] / rate['art']:.2f}x ART, {rate['bb'] / rate['b1']:.2f}x batch 1)",
        flush=True,
    )
    print(
        f"  native step {t_bb * 1e3:.1f} ms vs bare forward+backward {t_bare * 1e3:.1f} ms of the same batches "
        f"(frozen parameters): {t_bb / t_bare:.2f}x",
        flush=True,
    )
    t_dec = _decode_seconds(model, waves)
    per_utt_step = t_bb / n
    print(
        f"  greedy decoding {t_dec * 1e3:.0f} ms/utterance, paid at every milestone by both engines (random "
        f"weights never emit <eos>: every decode runs to the length limit, so this overstates it)",
        flush=True,
    )
    # The goal is the paper's sweep (500-2000 steps); the config's own milestones (50-200 by default, for a CPU
    # run) are shown too: decoding, the same for both engines, weighs ten times more there.
    pm = PAPER_GRID["milestones"]
    ratios = {
        name: _sweep(name, ms, n_attacked, per_utt_step, 1.0 / rate["art"], t_dec)
        for name, ms in (("paper", pm), ("config", milestones))
    }
    chained, independent, art_sweep = ratios["paper"]
    # The most any exact PGD can gain here: chaining, times ART's batch-1 step over a bare batched forward+backward
    # (no attack step costs less than computing its gradient), decoding free.
    ceiling = sum(pm) / max(pm) * (n / t_bare) / rate["art"]
    print(
        f"  ceiling of that ratio on this device (bare batched forward+backward, chaining, free decoding): "
        f"{ceiling:.2f}x",
        flush=True,
    )

    paper_device = args.paper_device or ("cuda" if torch.cuda.is_available() else "cpu")
    p_utts = args.paper_utts or (16 if paper_device != "cpu" else 2)
    p_steps = args.paper_steps or (5 if paper_device != "cpu" else 1)
    s = args.paper_seconds
    pmodel = _build(_recipe(PAPER_MODEL, PAPER_VOCAB)).to(paper_device).eval()
    p_params = sum(p.numel() for p in pmodel.parameters()) / 1e6
    pw, pt = _utterances(p_utts, (s - 1.0, s + 1.0), PAPER_VOCAB, seed=2)
    t_paper = _timed_attack("native", pmodel, pw, pt, p_steps, p_utts, paper_device)
    p_bare = _bare_step(pmodel, pw, pt, paper_device, p_steps)
    p_utt_step = t_paper / p_utts
    grid_steps = PAPER_GRID["pairs"] * PAPER_GRID["utterances"] * max(PAPER_GRID["milestones"])
    hours = grid_steps * p_utt_step / 3600
    print(
        f"paper model ({p_params:.1f} M parameters, random weights) on {paper_device}: native step "
        f"{t_paper * 1e3:.0f} ms for {p_utts} utterances of {s - 1:.0f}-{s + 1:.0f} s "
        f"({p_utt_step * 1e3:.1f} ms per utterance-step; bare forward+backward {p_bare * 1e3:.0f} ms, "
        f"{t_paper / p_bare:.2f}x)",
        flush=True,
    )
    print(
        f"  paper grid: {PAPER_GRID['pairs']} pairs x {PAPER_GRID['utterances']} utterances x "
        f"{max(PAPER_GRID['milestones'])} chained steps = {grid_steps:.3g} utterance-steps -> "
        f"{hours:.1f} {'GPU' if paper_device.startswith('cuda') else 'CPU'}-hours on this {paper_device} "
        f"(attack steps only)",
        flush=True,
    )
    print(
        f"summary: device={device} utts={n} batch={batch} art_b1_utt_steps_per_s={rate['art']:.2f} "
        f"native_b1_utt_steps_per_s={rate['b1']:.2f} native_batched_utt_steps_per_s={rate['bb']:.2f} "
        f"native_b1_over_art={rate['b1'] / rate['art']:.2f} native_batched_over_art={rate['bb'] / rate['art']:.2f} "
        f"native_step_over_fwd_bwd={t_bb / t_bare:.2f} decode_ms={t_dec * 1e3:.0f} sweep_chained_s={chained:.1f} "
        f"sweep_independent_s={independent:.1f} sweep_art_s={art_sweep:.1f} "
        f"sweep_native_over_art={art_sweep / chained:.2f} "
        f"sweep_native_over_art_config_milestones={ratios['config'][2] / ratios['config'][0]:.2f} "
        f"sweep_ceiling={ceiling:.2f} "
        f"paper_device={paper_device} paper_utts={p_utts} "
        f"paper_utt_seconds={s:.1f} paper_utt_step_ms={p_utt_step * 1e3:.2f} "
        f"paper_step_over_fwd_bwd={t_paper / p_bare:.2f} paper_grid_device_hours={hours:.1f}"
    )
    return 0
