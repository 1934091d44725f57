"""Attack throughput: where a PGD step's time goes, what each speed lever buys, ART against the native engine, and
what the paper's grid would cost.

The model and utterances: a trained default base (``--trained``, the pre-trained layout of a finished run) on its
test split, if both exist; otherwise the config's ``model:`` with random weights on espeak-ng speech rendered as the
default corpus is (silence trimmed by ``synthetic.trim``). The attack's cost does not depend on the weights.

**Levers** (``_levers``), each timed against today's baseline in the same run, interleaved: the native engine with
none of them on untrimmed espeak-ng speech (float32, PyTorch's own STFT gradient, default convolution layout);
trimming espeak-ng's trailing silence (``synthetic.trim``: fewer samples and frames for the same sentences); the
STFT gradient through ``irfft`` (``fast_stft``); channels-last convolutions (``channels_last_convs``); bf16
autocast of the forward and backward (where the CPU has bf16 instructions, ``attack.autocast``); and all of them
together. ``--layout`` adds the thread layout: two single-thread processes, each attacking its own batch, against
one process with two threads attacking both batches, the same work.

The last line is ``step_ms_per_utt=<x> floor_ratio=<y>``: milliseconds per utterance-step of the native engine as
the default config runs it (every lever the config turns on), and that step over a bare forward+backward of
ESPnet's own loss on the same batch with the same levers (the floor an attack step cannot beat).

Then, on one model and one set of utterances, in one run: steps × utterances per second for ART (batch 1), the native
engine at batch 1 and batched, their ratios, the native step time over a bare forward+backward of ESPnet's own
loss on the same padded batch with frozen parameters (the floor an attack step cannot beat), and the cost of
a 4-milestone sweep run chained (each milestone continues the previous one: max(M) steps) against independent
runs (sum(M) steps), greedy decoding of every milestone included: for the paper's milestones 500-2000 and for the
config's own (the same in the default config; 50-200 in ``configs/quick.yaml``).

Then the paper's architecture (12-block conformer d=512, 8 heads, FF 2048, kernel 31; 6-block decoder; 5000
tokens; random weights) on whatever device is present: the native engine's cost per utterance-step, and the
full grid's device hours, 16 (model, λC(i)) pairs × 1000 utterances × 2000 chained steps, at the utterance
length given (Common Voice English clips average about 5 s). Random weights only matter for decoding (they
never emit <eos> early), which is left out of that estimate.
"""

from __future__ import annotations

import argparse
import contextlib
import queue
import tempfile
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
        targets.append(_targets_for(w, vocab, rng))
    return waves, targets


def _targets_for(wave: np.ndarray, vocab: int, rng: np.random.Generator) -> list[int]:
    """Random token ids, about 14 a second (a character transcript's rate)."""
    return rng.integers(3, vocab - 1, max(2, int(14 * len(wave) / 16000))).tolist()


def _trim(cfg_all: dict):
    from hne_core.data.sources.synthetic import Trim

    return Trim.from_config((cfg_all.get("synthetic") or {}).get("trim"))


def _default_model(args: argparse.Namespace, cfg_all: dict, tmp: Path) -> tuple[torch.nn.Module, list, str]:
    """A trained default base on its test split if a finished run holds both; else the config's ``model:`` with
    random weights on espeak-ng speech rendered as the default corpus is."""
    from hne_core.bench.decode import espeak_utterances, trained_base

    found = trained_base(args.trained, LAMBDA_C, args.utts)
    if found is not None:
        return found
    model = _build(_recipe(cfg_all["model"], 32))
    waves = espeak_utterances(args.utts, tmp, _trim(cfg_all))
    return model, waves, "config `model:` with random weights on espeak-ng speech (no trained run here)"


NO_LEVERS = {"fast_stft": False, "channels_last_convs": False, "autocast": None}


def config_levers(autocast: str | None) -> dict:
    """``pgd_native``'s speed settings as the workflow's attack job runs them (``autocast`` resolved)."""
    return {"fast_stft": True, "channels_last_convs": True, "autocast": autocast}


def _timed_attack(engine: str, model, waves, targets, steps: int, batch: int, device: str, **levers) -> float:
    """Seconds per step for all utterances (after one warm-up step); ``levers``: ``pgd_native``'s speed settings."""
    from hne_core.attack.pgd import make_spec, pgd_native
    from hne_core.attack.run import run_attack

    def go(n: int) -> None:
        if engine == "native":
            spec = make_spec(model, waves, targets, LAMBDA_C, 2.0, 0.05, n, True)
            pgd_native(model, spec, batch_size=batch, device=device, **levers)
        else:
            run_attack(engine, model, waves, targets, LAMBDA_C, 2.0, 0.05, n, batch_size=batch, device=device)

    go(1)
    _sync(device)
    start = time.perf_counter()
    go(steps)
    _sync(device)
    return (time.perf_counter() - start) / steps


def _bare_step(model, waves, targets, device: str, reps: int, **levers) -> float:
    """ESPnet's own batched loss, forward + backward to the input, parameters frozen (no hooks, no PGD), under the
    same speed levers as the attack it is the floor of."""
    from hne_core.attack.loss import pad_targets
    from hne_core.attack.pgd import autocast_context, channels_last, frozen
    from hne_core.attack.stft_grad import fast_stft_gradient
    from hne_core.heads import pad_waves

    x, lens = pad_waves(waves, device)
    ys, ys_lens = pad_targets(targets, device)
    amp = autocast_context(torch.device(device), levers.get("autocast"))
    stft = fast_stft_gradient() if levers.get("fast_stft", True) else contextlib.nullcontext()

    def step():
        xx = x.clone().requires_grad_(True)
        with amp:
            loss, _, _ = model(xx, lens, ys.clone(), ys_lens)
        torch.autograd.grad(loss, xx)

    with frozen(model), stft, channels_last(model, levers.get("channels_last_convs", True)):
        step()
        _sync(device)
        start = time.perf_counter()
        for _ in range(reps):
            step()
        _sync(device)
    return (time.perf_counter() - start) / reps


def _levers(model, cfg_all: dict, args: argparse.Namespace, tmp: Path, device: str, autocast: str | None) -> dict:
    """Each speed lever alone against today's baseline, and all together, on the same espeak-ng sentences, timed
    interleaved in one run (the best of ``--repeat``); per utterance-step, so trimmed and untrimmed audio (the same
    sentences) compare directly."""
    from hne_core.attack.pgd import cpu_has_bf16
    from hne_core.bench.decode import espeak_utterances

    n = max(args.utts, 2)
    raw = espeak_utterances(n, tmp / "raw", None)
    trim = _trim(cfg_all)
    trimmed = espeak_utterances(n, tmp / "trimmed", trim) if trim else raw
    rng = np.random.default_rng(3)
    targets = [_targets_for(w, len(model.token_list), rng) for w in raw]
    batch = args.batch or n
    on = config_levers(autocast)
    cases = {
        "today": (raw, NO_LEVERS),
        "trim": (trimmed, NO_LEVERS),
        "fast_stft": (raw, {**NO_LEVERS, "fast_stft": True}),
        "channels_last": (raw, {**NO_LEVERS, "channels_last_convs": True}),
        "bf16": (raw, {**NO_LEVERS, "autocast": "bf16"}),
        "all": (trimmed, on),
    }
    best = {k: float("inf") for k in cases}
    for _ in range(max(1, args.repeat)):
        for name, (waves, levers) in cases.items():
            t = _timed_attack("native", model, waves, targets, args.steps, batch, device, **levers)
            best[name] = min(best[name], t / n)
    seconds = {k: sum(len(w) for w in v) / 16000 for k, v in (("raw", raw), ("trimmed", trimmed))}
    print(
        f"levers, each against today's engine (float32, PyTorch's STFT gradient, default layout, untrimmed audio), "
        f"{n} espeak-ng utterances ({seconds['raw']:.1f} s untrimmed, {seconds['trimmed']:.1f} s trimmed), batch "
        f"{batch}, {torch.get_num_threads()} thread(s), best of {max(1, args.repeat)} interleaved; "
        f"bf16 {'native on this CPU' if cpu_has_bf16() else 'EMULATED on this CPU (no avx512_bf16/amx_bf16)'}; "
        f"'all' is the config's levers (autocast {autocast}):",
        flush=True,
    )
    for name, t in best.items():
        print(f"  {name:14s} {t * 1e3:8.2f} ms per utterance-step  {best['today'] / t:5.2f}x today", flush=True)
    ratios = {f"lever_{k}": best["today"] / t for k, t in best.items() if k != "today"}
    if args.layout:
        ratios["layout_two_jobs_over_one"] = _layout(cfg_all, trimmed, targets, args.steps, on)
    return ratios


def _layout_worker(model_cfg: dict, waves, targets, steps: int, threads: int, batch: int, levers: dict, barrier, out):
    """One attack job of the thread-layout measurement, in its own process (as Snakemake runs jobs)."""
    from hne_core.startup import skip_typeguard_instrumentation

    skip_typeguard_instrumentation()
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = _build(_recipe(model_cfg, 32)).eval()
    _timed_attack("native", model, waves, targets, 1, batch, "cpu", **levers)  # warm-up
    barrier.wait()
    out.put(_timed_attack("native", model, waves, targets, steps, batch, "cpu", **levers) * steps)


def _layout(cfg_all: dict, waves, targets, steps: int, levers: dict) -> float:
    """Two jobs of one thread each (each its half of the utterances) against one job of two threads on both
    halves, batched alike: utterance-steps per second of the pair over the single job's."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    half = len(waves) // 2
    halves = [(waves[:half], targets[:half]), (waves[half:], targets[half:])]

    def wall(jobs: list[tuple[list, list, int]]) -> float:
        barrier, out = ctx.Barrier(len(jobs)), ctx.Queue()
        procs = [
            ctx.Process(target=_layout_worker, args=(cfg_all["model"], w, t, steps, th, half, levers, barrier, out))
            for w, t, th in jobs
        ]
        for p in procs:
            p.start()
        times = []
        while len(times) < len(procs):
            try:
                times.append(out.get(timeout=5))
            except queue.Empty:
                if any(p.exitcode not in (None, 0) for p in procs):
                    for p in procs:
                        p.kill()
                    raise RuntimeError("a thread-layout worker failed (its traceback is above)") from None
        for p in procs:
            p.join()
        return max(times)

    two = wall([(w, t, 1) for w, t in halves])
    one = wall([(waves, targets, 2)])
    ratio = one / two
    print(
        f"  thread layout: two 1-thread jobs {two:.2f} s, one 2-thread job {one:.2f} s for the same "
        f"{len(waves)} utterances x {steps} steps: two jobs {ratio:.2f}x one",
        flush=True,
    )
    return ratio


def _decode_seconds(model, waves) -> float:
    from hne_core.decoding import GreedyDecoder

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
    from hne_core.attack.pgd import resolve_autocast

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg_all = yaml.safe_load(Path(args.config).read_text())
    milestones = list(cfg_all.get("attack", {}).get("steps") or PAPER_GRID["milestones"])
    n_attacked = int(cfg_all.get("attack", {}).get("n_utterances") or 16)
    device = args.device or "cpu"
    autocast = resolve_autocast(cfg_all.get("attack", {}).get("autocast"), device)
    with tempfile.TemporaryDirectory() as tmp:
        model, waves, what = _default_model(args, cfg_all, Path(tmp))
        model = model.to(device).eval()
        ratios = _levers(model, cfg_all, args, Path(tmp), device, autocast)
    vocab = len(model.token_list)
    rng = np.random.default_rng(1)
    targets = [_targets_for(w, vocab, rng) for w in waves]
    params = sum(p.numel() for p in model.parameters()) / 1e6
    audio = sum(len(w) for w in waves) / 16000
    n = len(waves)
    batch = args.batch or n
    levers = config_levers(autocast)
    print(
        f"{what}: {params:.2f} M parameters on {device}, {n} utterances ({audio:.1f} s), λC(i)={LAMBDA_C}, "
        f"{args.steps} timed steps, {args.threads} threads, best of {max(1, args.repeat)} interleaved repetitions "
        f"(batched native step and bare forward+backward: best of {PAIR_REPEAT * max(1, args.repeat)}); the "
        f"native engine with the config's levers (autocast {autocast}), ART float32",
        flush=True,
    )

    groups = [list(range(k, min(k + batch, n))) for k in range(0, n, batch)]
    timings: dict[str, list[float]] = {"art": [], "b1": [], "bb": [], "bare": []}
    for _ in range(max(1, args.repeat)):  # interleaved, so that a burst of load hits every engine alike
        timings["art"].append(_timed_attack("art", model, waves, targets, args.steps, 1, device))
        timings["b1"].append(_timed_attack("native", model, waves, targets, args.steps, 1, device, **levers))
        for _ in range(PAIR_REPEAT):  # the step ratio's two sides are cheap: more samples of each, alternating
            timings["bb"].append(_timed_attack("native", model, waves, targets, args.steps, batch, device, **levers))
            timings["bare"].append(
                sum(
                    _bare_step(model, [waves[i] for i in g], [targets[i] for i in g], device, args.steps, **levers)
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
    # The paper's sweep (500-2000 steps) and the config's own milestones (with 50-200, decoding, the same for both
    # engines, weighs ten times more).
    pm = PAPER_GRID["milestones"]
    sweeps = {
        name: _sweep(name, ms, n_attacked, per_utt_step, 1.0 / rate["art"], t_dec)
        for name, ms in (("paper", pm), ("config", milestones))
    }
    chained, independent, art_sweep = sweeps["paper"]
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
        f"sweep_native_over_art_config_milestones={sweeps['config'][2] / sweeps['config'][0]:.2f} "
        f"sweep_ceiling={ceiling:.2f} "
        f"paper_device={paper_device} paper_utts={p_utts} "
        f"paper_utt_seconds={s:.1f} paper_utt_step_ms={p_utt_step * 1e3:.2f} "
        f"paper_step_over_fwd_bwd={t_paper / p_bare:.2f} paper_grid_device_hours={hours:.1f} "
        + " ".join(f"{k}={v:.2f}" for k, v in ratios.items())
    )
    print(f"step_ms_per_utt={per_utt_step * 1e3:.2f} floor_ratio={t_bb / t_bare:.2f}")
    return 0
