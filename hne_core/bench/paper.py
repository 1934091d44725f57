"""What the paper's whole experiment costs on the device present: ``python -m hne_core.bench paper``.

The paper-size architecture (``bench.train.PAPER_MODEL``: frontend n_fft 512, hop 256, 80 mels; 12-block
conformer d=512, 8 heads, FF 2048, kernel 31; 6-block transformer decoder; BPE 5000; random weights) is timed for
each stage of ``configs/paper.yaml`` (merged on ``config.yaml`` as the workflow merges them) with that config's
settings, and the stage times are scaled to the paper grid:

- finetune: one ESPnet training step (forward, backward, Adam) on a batch of ``finetune.batch_bins`` padded
  samples of ``--seconds``-long utterances (ESPnet's ``numel`` batches count padded input elements), under
  autocast when ``finetune.use_amp`` is set; and ESPnet's own data loader (``build_streaming_iterator`` with
  ``finetune.num_workers`` processes, reading 16-bit WAV files written for the purpose: the data stage's format)
  on as much audio. The loader's workers run beside the device, so a step costs the slower of the two:
  device-hours = models × epochs × train hours / min(audio seconds trained per second, loaded per second). The
  per-epoch validation is not timed.
- attack: native PGD steps (Eq. 4 at λC(i) = 0.3, both heads: the dearest loss) on one batch as
  ``attack.batch_size`` / ``attack.batch_samples`` fill it, under ``attack.autocast``; device-hours = pairs ×
  attacked utterances × the last milestone's steps (milestones are chained) × seconds per utterance-step.
- decode: exact Eq. 2 greedy decoding in padded batches (``hne_core.decoding.Eq2GreedyDecoder.batch``) at
  λC(i) = 0.3; device-hours = (evaluations × test utterances + pairs × milestones × attacked utterances) × seconds
  per utterance. Random weights never emit <eos> early, so every hypothesis runs to the frame limit: an upper
  bound on a trained model's decoding.

Also a FLOP count of one training step and one attack step (``torch.utils.flop_counter.FlopCounterMode``,
matrix products and convolutions) and the fraction of the device's peak they achieve (``--peak-tflops``, or a
table of dense bf16 peaks by device name; on a CPU only the achieved GFLOP/s unless a peak is given).

Last line: ``name=value`` pairs, among them ``total_gpu_hours`` and ``<stage>_gpu_hours`` for finetune, attack and
decode (device-hours of the device timed: CPU-hours on a CPU).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch
import yaml

from hne_core.bench.train import PAPER_MODEL, PAPER_VOCAB, _build, _recipe, _sync

LAMBDA_C = 0.3
# Dense bf16 tensor-core peaks (TFLOP/s, no sparsity), matched as substrings of torch.cuda.get_device_name().
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100": 989.0,
    "GH200": 989.0,
    "A100": 312.0,
    "L40S": 362.0,
    "L4": 121.0,
    "A10": 125.0,
    "RTX 4090": 165.0,
    "V100": 125.0,
}


def merged_config(base: str | Path, overlay: str | Path | None) -> dict:
    """``overlay`` merged on ``base`` as Snakemake merges ``--configfile``s: maps key by key, lists replaced."""

    def merge(a: dict, b: Mapping) -> dict:
        out = copy.deepcopy(a)
        for k, v in b.items():
            out[k] = merge(out[k], v) if isinstance(v, Mapping) and isinstance(out.get(k), dict) else copy.deepcopy(v)
        return out

    cfg = yaml.safe_load(Path(base).read_text())
    return merge(cfg, yaml.safe_load(Path(overlay).read_text())) if overlay else cfg


def train_hours_of(report: str | Path) -> float:
    """Hours of the training split kept by the data stage (``data/report.json``)."""
    rows = json.loads(Path(report).read_text())["kept"]
    return float(sum(r["hours"] for r in rows if r["split"] == "train"))


def peak_tflops(device: str, given: float | None) -> float | None:
    if given is not None:
        return given
    if not device.startswith("cuda"):
        return None
    name = torch.cuda.get_device_name(torch.device(device))
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def _waves(n: int, seconds: float, seed: int) -> tuple[list[np.ndarray], list[list[int]]]:
    """``n`` noise utterances of ``seconds`` (±10 %), peak 0.3, and random targets of ~3 tokens a second."""
    rng = np.random.default_rng(seed)
    waves, targets = [], []
    for _ in range(n):
        m = max(1024, int(seconds * rng.uniform(0.9, 1.1) * 16000))
        w = rng.standard_normal(m)
        waves.append((0.3 * w / np.abs(w).max()).astype(np.float32))
        targets.append(rng.integers(3, PAPER_VOCAB - 1, max(2, int(3 * m / 16000))).tolist())
    return waves, targets


def _timed(fn: Callable[[], object], device: str, steps: int) -> float:
    """Seconds per call of ``fn`` after one warm-up call."""
    fn()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    _sync(device)
    return (time.perf_counter() - start) / steps


def loader_rate(waves: list[np.ndarray], num_workers: int, batch: int) -> float:
    """Audio seconds per second that ESPnet's data loader delivers from WAV files: the second of two passes (the
    first warms the page cache), its worker processes' start-up included, as at every epoch."""
    import tempfile

    import soundfile as sf
    from espnet2.tasks.asr import ASRTask
    from espnet2.train.collate_fn import CommonCollateFn

    with tempfile.TemporaryDirectory() as tmp:
        scp = Path(tmp) / "wav.scp"
        lines = []
        for k, w in enumerate(waves):
            path = Path(tmp) / f"u{k:05d}.wav"
            sf.write(path, w, 16000, subtype="PCM_16")
            lines.append(f"u{k:05d} {path}\n")
        scp.write_text("".join(lines))

        def one_pass() -> None:
            loader = ASRTask.build_streaming_iterator(
                [(str(scp), "speech", "sound")],
                None,
                CommonCollateFn(float_pad_value=0.0, int_pad_value=-1),
                batch_size=batch,
                num_workers=num_workers,
                inference=True,
            )
            for _ in loader:
                pass

        one_pass()
        start = time.perf_counter()
        one_pass()
        return sum(len(w) for w in waves) / 16000 / (time.perf_counter() - start)


def _flops(fn: Callable[[], object]) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def implicit_syncs_after_first_step(attack_steps: Callable[..., None], steps: int) -> int:
    """Implicit host synchronisations CUDA sees during steps 2..steps+1 of a native attack (torch's sync debug mode
    warns on each: ``.item()``, ``nonzero``, a blocking copy to the host), after the first step's one-off work."""
    import warnings

    def debug(step: int) -> None:
        torch.cuda.set_sync_debug_mode(
            "warn" if step == 1 else 0 if step == steps + 1 else torch.cuda.get_sync_debug_mode()
        )

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            attack_steps(steps + 1, debug)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    return sum("synchroniz" in str(w.message) for w in caught)


def run(args: argparse.Namespace) -> int:
    from hne_core.attack.loss import pad_targets
    from hne_core.attack.pgd import AUTOCAST_DTYPES, length_batches
    from hne_core.attack.run import run_attack
    from hne_core.decoding import Eq2GreedyDecoder
    from hne_core.heads import pad_waves

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = merged_config(args.base_config, args.config)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    on_gpu = device.startswith("cuda")
    steps = args.steps or (5 if on_gpu else 1)
    if args.train_hours is not None:
        train_hours, hours_from = float(args.train_hours), "--train-hours"
    elif args.data_report and Path(args.data_report).is_file():
        train_hours, hours_from = train_hours_of(args.data_report), args.data_report
    else:
        raise SystemExit("give --train-hours, or --data-report with the data stage's report.json")
    ft, at = cfg["finetune"], cfg["attack"]
    n_models, epochs = len(ft["grid"]), int(ft["epochs"])
    milestones = [int(s) for s in at["steps"]]
    n_attacked, pairs = int(at["n_utterances"]), int(args.pairs)
    n_test = int(
        cfg["evaluation"].get("n_utterances")
        or (cfg.get("commonvoice", {}).get("subsample") or {}).get("test")
        or n_attacked
    )
    samples = int(args.seconds * 16000)

    # batches as the paper config fills them, unless --utts sets every stage's batch (a CPU run)
    train_rows = args.utts or max(1, int(ft["batch_bins"]) // samples)
    attack_rows = args.utts or len(
        length_batches([samples] * int(at["batch_size"]), int(at["batch_size"]), at.get("batch_samples"))[0]
    )
    decode_rows = args.utts or args.decode_batch
    model = _build(_recipe(PAPER_MODEL, PAPER_VOCAB)).to(device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    print(
        f"paper-size model: {params:.1f} M parameters, random weights, on {device}"
        f"{' (' + torch.cuda.get_device_name(torch.device(device)) + ')' if on_gpu else ''}; utterances of "
        f"{args.seconds:.1f} s (±10 %), {steps} timed step(s) per stage after a warm-up, {args.threads} CPU "
        f"thread(s); config {args.base_config} + {args.config}",
        flush=True,
    )

    # ---- fine-tuning step
    use_amp = bool(ft.get("use_amp", False))  # ESPnet's --use_amp is CUDA autocast: no effect on a CPU
    tw, tt = _waves(train_rows, args.seconds, seed=1)
    speech, lens = pad_waves(tw, device)
    text, text_lens = pad_targets(tt, device)
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(device.split(":")[0], enabled=use_amp and on_gpu)
    amp_dtype = torch.bfloat16 if not on_gpu or torch.cuda.is_bf16_supported() else torch.float16

    def train_forward_backward() -> None:
        with torch.autocast(device.split(":")[0], dtype=amp_dtype, enabled=use_amp and on_gpu):
            loss, _, _ = model(speech, lens, text, text_lens)
        scaler.scale(loss).backward()

    def train_step() -> None:
        train_forward_backward()
        scaler.step(optim)
        scaler.update()
        optim.zero_grad(set_to_none=True)

    model.train()
    t_train = _timed(train_step, device, steps)
    train_flops = _flops(train_forward_backward)
    optim.zero_grad(set_to_none=True)
    train_audio = sum(len(w) for w in tw) / 16000
    train_rate = train_audio / t_train
    workers = int(ft.get("num_workers", 0))
    load_rate = loader_rate(_waves(max(train_rows, 64), args.seconds, seed=4)[0], workers, max(1, min(train_rows, 16)))
    finetune_h = n_models * epochs * train_hours * 3600 / min(train_rate, load_rate) / 3600
    print(
        f"  finetune: {train_rows} utterances a batch ({train_audio:.1f} s of audio, batch_bins "
        f"{ft['batch_bins']}{'' if not args.utts else ', overridden by --utts'}), use_amp {use_amp}: "
        f"{t_train * 1e3:.0f} ms a step, {train_rate:.2f} audio-s/s; {n_models} models x {epochs} epochs x "
        f"{train_hours:.2f} h of training audio ({hours_from}); ESPnet's loader with {workers} worker(s): "
        f"{load_rate:.1f} audio-s/s ({'the bottleneck' if load_rate < train_rate else 'keeps up'}) -> "
        f"{finetune_h:.2f} device-hours (validation not timed)",
        flush=True,
    )
    optim = scaler = None  # free the optimiser's state before the attack is timed
    model.eval()

    # ---- attack step
    aw, at_targets = _waves(attack_rows, args.seconds, seed=2)
    autocast = at.get("autocast")
    batch_size = max(attack_rows, 1)

    marks: dict[int, float] = {}

    def mark(step: int) -> None:  # the clock after step 1 and after the last: set-up and the first step left out
        if step in (1, steps + 1):
            _sync(device)
            marks[step] = time.perf_counter()

    def attack_steps(n: int, callback: Callable[[int], None] | None = None) -> None:
        run_attack(
            "native",
            model,
            aw,
            at_targets,
            LAMBDA_C,
            float(at["epsilon"]),
            float(at["step_size"]),
            n,
            bool(at["clip"]),
            batch_size=batch_size,
            device=device,
            autocast=autocast,
            callback=callback,
        )

    attack_steps(1)  # warm-up
    attack_steps(steps + 1, mark)
    t_step = (marks[steps + 1] - marks[1]) / steps
    syncs = implicit_syncs_after_first_step(attack_steps, steps) if on_gpu else None

    def attack_forward_backward() -> None:
        from hne_core.attack.loss import adversarial_losses
        from hne_core.attack.pgd import frozen
        from hne_core.batching import batch_invariant

        x, xl = pad_waves(aw, device)
        ys, yl = pad_targets(at_targets, device)
        x.requires_grad_(True)
        amp = (
            torch.autocast(device.split(":")[0], dtype=AUTOCAST_DTYPES[autocast])
            if autocast
            else torch.autocast(device.split(":")[0], enabled=False)
        )
        with frozen(model), batch_invariant(model):
            with amp:
                losses = adversarial_losses(model, x, xl, ys, yl, LAMBDA_C)
            torch.autograd.grad(losses.sum(), x)

    attack_flops = _flops(attack_forward_backward)
    utt_step = t_step / attack_rows
    attack_h = pairs * n_attacked * max(milestones) * utt_step / 3600
    print(
        f"  attack: {attack_rows} utterances a batch (batch_size {at['batch_size']}, batch_samples "
        f"{at.get('batch_samples')}{'' if not args.utts else ', overridden by --utts'}), autocast {autocast}: "
        f"{t_step * 1e3:.0f} ms a step, {utt_step * 1e3:.2f} ms per utterance-step; {pairs} pairs x "
        f"{n_attacked} utterances x {max(milestones)} chained steps -> {attack_h:.2f} device-hours",
        flush=True,
    )
    if syncs is not None:
        print(
            f"  attack: {syncs} implicit host synchronisation(s) in steps 2-{steps + 1} (CUDA sync debug mode)",
            flush=True,
        )

    # ---- decoding
    dw, _ = _waves(decode_rows, args.seconds, seed=3)
    decoder = Eq2GreedyDecoder(model, LAMBDA_C)
    t_decode = _timed(lambda: decoder.batch(dw, batch_size=decode_rows), device, steps) / decode_rows
    n_decodes = args.evaluations * n_test + pairs * len(milestones) * n_attacked
    decode_h = n_decodes * t_decode / 3600
    print(
        f"  decode: exact Eq. 2, batches of {decode_rows}: {t_decode * 1e3:.0f} ms an utterance (random weights: "
        f"to the frame limit, an upper bound); {args.evaluations} evaluations x {n_test} + {pairs} pairs x "
        f"{len(milestones)} milestones x {n_attacked} = {n_decodes} decodes -> {decode_h:.2f} device-hours",
        flush=True,
    )

    # ---- FLOPs
    peak = peak_tflops(device, args.peak_tflops)
    achieved = {"train": train_flops / t_train / 1e12, "attack": attack_flops / t_step / 1e12}
    for name, flops, t in (("training", train_flops, t_train), ("attack", attack_flops, t_step)):
        rate = flops / t / 1e12
        frac = f", {100 * rate / peak:.1f} % of a {peak:g} TFLOP/s peak" if peak else ""
        print(
            f"  {name} step: {flops / 1e12:.3f} TFLOP (forward+backward), {rate * 1e3:.1f} GFLOP/s achieved{frac}",
            flush=True,
        )
    total = finetune_h + attack_h + decode_h
    unit = "GPU" if on_gpu else "CPU"
    print(
        f"paper grid on this {device}: {total:.2f} {unit}-hours (finetune {finetune_h:.2f}, attack {attack_h:.2f}, "
        f"decode {decode_h:.2f})",
        flush=True,
    )
    fields = {
        "device": device,
        "train_hours": f"{train_hours:.4f}",
        "train_rows": train_rows,
        "attack_rows": attack_rows,
        "decode_rows": decode_rows,
        **({"attack_syncs_after_first_step": syncs} if syncs is not None else {}),
        "train_step_s": f"{t_train:.6g}",
        "train_audio_s_per_s": f"{train_rate:.6g}",
        "loader_audio_s_per_s": f"{load_rate:.6g}",
        "num_workers": workers,
        "attack_step_s": f"{t_step:.6g}",
        "attack_utt_step_s": f"{utt_step:.6g}",
        "decode_utt_s": f"{t_decode:.6g}",
        "models": n_models,
        "epochs": epochs,
        "pairs": pairs,
        "attacked": n_attacked,
        "max_steps": max(milestones),
        "milestones": len(milestones),
        "evaluations": args.evaluations,
        "test_utts": n_test,
        "decodes": n_decodes,
        "train_tflop": f"{train_flops / 1e12:.6g}",
        "attack_tflop": f"{attack_flops / 1e12:.6g}",
        "train_tflops_achieved": f"{achieved['train']:.6g}",
        "attack_tflops_achieved": f"{achieved['attack']:.6g}",
        **(
            {
                "peak_tflops": f"{peak:g}",
                "train_peak_fraction": f"{achieved['train'] / peak:.6g}",
                "attack_peak_fraction": f"{achieved['attack'] / peak:.6g}",
            }
            if peak
            else {}
        ),
        "finetune_gpu_hours": f"{finetune_h:.6g}",
        "attack_gpu_hours": f"{attack_h:.6g}",
        "decode_gpu_hours": f"{decode_h:.6g}",
        "total_gpu_hours": f"{total:.6g}",
    }
    print(" ".join(f"{k}={v}" for k, v in fields.items()))
    return 0
