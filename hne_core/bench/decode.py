"""Exact Eq. 2 greedy decoding: padded batches against one utterance at a time, in one run.

On one model and one set of real utterances: seconds to decode them all one at a time and in padded batches
under ``batch_invariant`` (``Eq2GreedyDecoder.batch``, what evaluation and attack jobs do with
``decoding.batch_size``), each the best of ``--repeat`` interleaved repetitions (a shared machine only ever slows
a run down), with ``--threads`` torch threads for both; the fraction of utterances whose batched tokens equal
their one-at-a-time tokens; and, for scale, ESPnet's beam-1 decoding (mode ``espnet_beam1``) one at a time.

Batching changes float32 summation order only, so a batched hypothesis may leave its one-at-a-time twin only
where two candidates nearly tie. Every mismatch is therefore located (its first differing step) and its top-two
margin printed in both runs; a mismatch whose margin is not below ``NEAR_TIE`` (1e-4) is a bug, and the command
then exits 1. The last line is ``batched_over_single=<x> token_equal=<fraction>`` with x the batched throughput
over the one-at-a-time throughput (one-at-a-time seconds / batched seconds): above 1, batching is faster.

The model: a trained default base (``--trained``, the pre-trained layout of a finished run) with its test
split, if both exist; otherwise the config's ``model:`` (or the paper-size architecture, ``--model paper``) with
random weights on espeak-ng speech. Random weights rarely choose <eos>, so their hypotheses run to the length
limit (one token per encoder frame): a different workload from a trained model's, whose hypotheses end at <eos>
after a few tokens per second. The output says which it measured, and how many hypotheses <eos> ended.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import yaml

SENTENCES = [
    "the cat sat on the mat",
    "a quick brown fox jumps over the lazy dog",
    "open the door please",
    "we will meet at noon by the river",
    "she sells sea shells",
    "turn left at the next light",
    "how much is the blue one",
    "it is raining again today",
]
VARIANTS = ["m1", "f2", "m3", "f1", "m5", "f4"]


def espeak_utterances(n: int, directory: Path, trim=None) -> list[np.ndarray]:
    """``n`` real espeak-ng utterances (the data stage's own renderer), lengths varied by sentence and rate,
    silence trimmed with ``trim`` (``synthetic.Trim``; None: as espeak-ng speaks them)."""
    import soundfile as sf

    from hne_core.data.sources.synthetic import _render

    waves = []
    for k in range(n):
        job = (
            str(directory / f"u{k}.wav"),
            "en-us",
            VARIANTS[k % len(VARIANTS)],
            140 + 10 * (k % 6),
            50,
            1.0,
            SENTENCES[k % len(SENTENCES)],
            1,
            trim,
        )
        path, _ = _render(job)
        waves.append(sf.read(path, dtype="float32")[0])
    return waves


def trained_base(trained: str | Path, lambda_c: float, n: int) -> tuple[torch.nn.Module, list[np.ndarray], str] | None:
    """A finished run's trained base (its pre-trained layout at ``trained``) with the first ``n`` utterances of
    the run's test split, or None when the run lacks either."""
    trained = Path(trained)
    test_dir = trained.parent / "data" / "test"
    if not ((trained / "config.yaml").is_file() and (test_dir / "wav.scp").is_file()):
        return None
    from hne_core.model.evaluate import load_speech2text, read_audio, read_data_dir

    model = load_speech2text(trained, lambda_c, "cpu").asr_model
    waves = [read_audio(u.wav) for u in read_data_dir(test_dir)[:n]]
    return model, waves, f"trained base {trained} on {len(waves)} of its test utterances"


def _model_and_waves(args: argparse.Namespace, tmp: Path) -> tuple[torch.nn.Module, list[np.ndarray], str]:
    from hne_core.bench.train import PAPER_MODEL, PAPER_VOCAB, _build, _recipe

    found = trained_base(args.trained, args.lambda_c, args.utts) if args.model == "default" else None
    if found is not None:
        return found
    spec, vocab = (
        (PAPER_MODEL, PAPER_VOCAB)
        if args.model == "paper"
        else (yaml.safe_load(Path(args.config).read_text())["model"], 32)
    )
    model = _build(_recipe(spec, vocab))
    return model, espeak_utterances(args.utts, tmp), f"{args.model} architecture, random weights, espeak-ng speech"


@torch.no_grad()
def encode_all(exact, waves: list[np.ndarray], batch: int) -> None:
    """The encoder's part of ``exact.search(waves, batch)`` alone (one at a time, or grouped under the batch
    invariance hooks as the batched search encodes). Why it is timed apart: batching divides the search's per-step
    cost (a few small operations per token, dominated by dispatch) by about the batch, but leaves the encoder's
    arithmetic (convolutions and matrix products over every frame) nearly as it is, so how much the whole gains
    depends on the encoder's share: larger for a trained model, whose hypotheses end after a few tokens a second,
    than for random weights, whose hypotheses run to the length limit, and larger on a CPU whose arithmetic is slow
    against its per-operation overhead."""
    from hne_core.batching import batch_invariant

    dev = exact._device()
    if batch == 1:
        for w in waves:
            exact._encode(torch.from_numpy(w).reshape(1, -1).to(dev), torch.tensor([len(w)], device=dev))
        return
    flat = sorted(waves, key=len, reverse=True)
    with batch_invariant(exact.model):
        for start in range(0, len(flat), batch):
            exact._encode_grouped(flat[start : start + batch])


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run(args: argparse.Namespace) -> int:
    from hne_core.decoding import NEAR_TIE, Eq2GreedyDecoder, GreedyDecoder, mismatches

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    device = args.device or "cpu"
    with tempfile.TemporaryDirectory() as tmp:
        model, waves, what = _model_and_waves(args, Path(tmp))
    model = model.to(device).eval()
    params = sum(p.numel() for p in model.parameters()) / 1e6
    audio = sum(len(w) for w in waves) / 16000
    exact = Eq2GreedyDecoder(model, args.lambda_c)
    print(
        f"{what}: {params:.1f} M parameters on {device}, {len(waves)} utterances, {audio:.1f} s of audio, "
        f"λC(i) = {args.lambda_c}, batch {args.batch}, {torch.get_num_threads()} torch thread(s)",
        flush=True,
    )

    def timed(fn):
        _sync(device)
        start = time.perf_counter()
        out = fn()
        _sync(device)
        return time.perf_counter() - start, out

    exact(waves[0])  # warm-up
    exact.batch(waves[: args.batch], args.batch)
    single_s = batched_s = enc_single_s = enc_batched_s = float("inf")
    for _ in range(args.repeat):
        t, single = timed(lambda: [exact(w) for w in waves])
        single_s = min(single_s, t)
        t, batched = timed(lambda: exact.batch(waves, args.batch))
        batched_s = min(batched_s, t)
        enc_single_s = min(enc_single_s, timed(lambda: encode_all(exact, waves, 1))[0])
        enc_batched_s = min(enc_batched_s, timed(lambda: encode_all(exact, waves, args.batch))[0])
    beam1 = GreedyDecoder(model, args.lambda_c)
    beam1_s, beam1_tokens = timed(lambda: [beam1(w) for w in waves])
    equal = float(np.mean([a == b for a, b in zip(batched, single)]))
    tokens = sum(len(t) for t in single)
    differ = float(np.mean([a != b for a, b in zip(single, beam1_tokens)]))

    # the same decodings once more, recording every step's top-two margin, to place any mismatch
    single_h = exact.search(waves, 1, track=True)
    batched_h = exact.search(waves, args.batch, track=True)
    if [h.tokens for h in single_h] != single or [h.tokens for h in batched_h] != batched:
        raise RuntimeError("decoding with track=True chose other tokens than without it")
    found = mismatches(single_h, batched_h)
    ended = sum(bool(h.steps) and h.steps[-1] == model.eos for h in single_h)
    margins = [m for h in single_h for m in h.margins]
    bugs = [m for m in found if max(m.single_margin, m.batched_margin) >= NEAR_TIE]

    print(
        f"exact Eq. 2, one at a time: {single_s:8.3f} s ({audio / single_s:8.2f} audio-s/s, {tokens} tokens; "
        f"{ended}/{len(waves)} hypotheses ended by <eos>, the rest by the length limit)"
    )
    print(f"exact Eq. 2, batches of {args.batch:3d}: {batched_s:8.3f} s ({audio / batched_s:8.2f} audio-s/s)")
    print(
        f"encoder alone: one at a time {enc_single_s:8.3f} s ({enc_single_s / single_s:.0%} of that decoding), in "
        f"groups {enc_batched_s:8.3f} s ({enc_batched_s / batched_s:.0%} of the batched one); batching divides the "
        f"encoder's time by {enc_single_s / enc_batched_s:.2f} and the search's by "
        f"{(single_s - enc_single_s) / max(batched_s - enc_batched_s, 1e-9):.2f}"
    )
    print(
        f"espnet_beam1, one at a time: {beam1_s:8.3f} s ({audio / beam1_s:8.2f} audio-s/s; "
        f"hypotheses differing from exact: {differ:.2f})"
    )
    print(
        f"top-two margin over all {len(margins)} one-at-a-time steps: smallest {min(margins, default=float('nan')):.3g}"
    )
    print(
        f"batched hypotheses differing from one at a time: {len(found)}/{len(waves)}"
        + "".join(
            f"; utterance {m.index} at step {m.step}: top-two margin {m.single_margin:.3g} one at a time, "
            f"{m.batched_margin:.3g} batched ({'near-tie' if m not in bugs else 'NOT a near-tie: a bug'})"
            for m in found
        )
        + f" (near-tie: margin below {NEAR_TIE:g})"
    )
    print(f"batched_over_single={single_s / batched_s:.3f} token_equal={equal:.3f}")
    return 1 if bugs else 0
