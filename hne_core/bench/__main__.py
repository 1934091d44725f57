"""``python -m hne_core.bench {train,attack,plan,decode,paper} [options]``."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hne_core.bench", description=__doc__)
    sub = parser.add_subparsers(dest="which", required=True)
    train = sub.add_parser("train", help="training and decoding throughput of the default and paper-size models")
    train.add_argument("--config", default="config.yaml", help="workflow config whose `model:` is the default")
    train.add_argument("--device", default=None, help="device for the paper-size model (default: cuda if any)")
    train.add_argument("--steps", type=int, default=5, help="timed training steps per model")
    train.add_argument("--paper-steps", type=int, default=None, help="timed steps for the paper-size model")
    train.add_argument("--threads", type=int, default=2)
    train.add_argument(
        "--trained",
        default="results/pretrained",
        help="a trained default base (pre-trained layout) to decode with, if it exists: random "
        "weights never stop early, so they only bound decoding from below",
    )
    attack = sub.add_parser("attack", help="PGD throughput: ART vs the native engine, and the paper grid's cost")
    attack.add_argument(
        "--config",
        default="config.yaml",
        help="workflow config: its `model:` (random weights without a trained run), `attack:` and `synthetic.trim`",
    )
    attack.add_argument("--device", default=None, help="device for the default model (default: cpu)")
    attack.add_argument("--utts", type=int, default=16, help="utterances (the test split's first, or espeak-ng speech)")
    attack.add_argument(
        "--trained",
        default="results/pretrained",
        help="a trained default base (pre-trained layout) with its run's data/test, used if both exist",
    )
    attack.add_argument(
        "--layout",
        action="store_true",
        help="also time two 1-thread jobs against one 2-thread job (spawns two processes)",
    )
    attack.add_argument("--batch", type=int, default=None, help="native batch size (default: all utterances)")
    attack.add_argument("--steps", type=int, default=3, help="timed PGD steps per engine")
    attack.add_argument(
        "--repeat",
        type=int,
        default=3,
        help="interleaved repetitions of every timing; the fastest counts (a shared machine "
        "only ever slows a run down)",
    )
    attack.add_argument(
        "--threads", type=int, default=1, help="CPU threads (1: on a busy 2-core machine 2 threads ran 100x slower)"
    )
    attack.add_argument("--paper-device", default=None, help="device for the paper-size model (default: cuda if any)")
    attack.add_argument("--paper-utts", type=int, default=None, help="paper-size batch (default 16 on GPU, 2 on CPU)")
    attack.add_argument("--paper-steps", type=int, default=None, help="timed steps (default 5 on GPU, 1 on CPU)")
    attack.add_argument(
        "--paper-seconds",
        type=float,
        default=5.0,
        help="mean utterance length for the paper estimate (Common Voice: about 5 s)",
    )
    plan = sub.add_parser("plan", help="seconds for `snakemake -n` to plan the paper grid, and its job count")
    plan.add_argument("--config", default="configs/paper.yaml", help="config to plan, relative to the repository")
    plan.add_argument("--repeat", type=int, default=3, help="timed dry runs")
    plan.add_argument("--goal", type=float, default=5.0, help="seconds the plan should take at most")
    plan.add_argument("--strict", action="store_true", help="exit 1 when the best time misses the goal")
    decode = sub.add_parser("decode", help="exact Eq. 2 greedy decoding: padded batches vs one at a time")
    decode.add_argument("--config", default="config.yaml", help="workflow config whose `model:` is the default")
    decode.add_argument(
        "--model",
        choices=["default", "paper"],
        default="default",
        help="the config's model (a trained base if --trained has one) or the paper-size one",
    )
    decode.add_argument(
        "--trained",
        default="results/pretrained",
        help="a trained default base (pre-trained layout) and, beside it, data/test to decode",
    )
    decode.add_argument("--device", default=None, help="device (default: cpu)")
    decode.add_argument("--utts", type=int, default=16, help="utterances")
    decode.add_argument("--batch", type=int, default=16, help="utterances per padded batch")
    decode.add_argument("--lambda-c", type=float, default=0.3, help="λC(i): both heads by default")
    decode.add_argument("--repeat", type=int, default=3, help="interleaved repetitions; the fastest counts")
    decode.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch CPU threads for both timings (1: on this busy 2-core machine a 2-thread "
        "decode benchmark ran for minutes instead of seconds)",
    )
    paper = sub.add_parser(
        "paper",
        help="device-hours of the paper's whole grid: every stage of configs/paper.yaml "
        "timed on the paper-size model (random weights), FLOPs, peak fraction",
    )
    paper.add_argument("--config", default="configs/paper.yaml", help="the paper config (merged on --base-config)")
    paper.add_argument("--base-config", default="config.yaml")
    paper.add_argument("--device", default=None, help="default: cuda if any, else cpu")
    paper.add_argument("--train-hours", type=float, default=None, help="hours of training audio")
    paper.add_argument(
        "--data-report",
        default="results/paper/data/report.json",
        help="the data stage's report.json, read for the training hours when --train-hours is unset",
    )
    paper.add_argument("--steps", type=int, default=None, help="timed steps per stage (default 5 on GPU, 1 on CPU)")
    paper.add_argument(
        "--utts",
        type=int,
        default=None,
        help="utterances per batch in every stage (default: as the config fills batches)",
    )
    paper.add_argument("--decode-batch", type=int, default=16, help="utterances per decoding batch")
    paper.add_argument("--seconds", type=float, default=5.0, help="utterance length (Common Voice: about 5 s)")
    paper.add_argument("--pairs", type=int, default=16, help="attacked (model, λC(i)) pairs of the paper's tables")
    paper.add_argument("--evaluations", type=int, default=19, help="benign evaluations (`bench plan` counts 19)")
    paper.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="the device's peak (default: dense bf16 peak of a known GPU; none on a CPU)",
    )
    paper.add_argument("--threads", type=int, default=1, help="CPU threads")
    args = parser.parse_args(argv)
    from hne_core.startup import skip_typeguard_instrumentation

    skip_typeguard_instrumentation()  # before the benchmarks import ESPnet
    if args.which == "train":
        from hne_core.bench.train import run

        return run(args)
    if args.which == "attack":
        from hne_core.bench.attack import run as run_attack_bench

        return run_attack_bench(args)
    if args.which == "decode":
        from hne_core.bench.decode import run as run_decode_bench

        return run_decode_bench(args)
    if args.which == "paper":
        from hne_core.bench.paper import run as run_paper_bench

        return run_paper_bench(args)
    if args.which == "plan":
        from hne_core.bench.plan import run as run_plan_bench

        return run_plan_bench(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
