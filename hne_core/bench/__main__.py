"""``python -m hne_core.bench {train} [options]``."""

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
    train.add_argument("--trained", default="results/pretrained",
                       help="a trained default base (pre-trained layout) to decode with, if it exists: random "
                            "weights never stop early, so they only bound decoding from below")
    args = parser.parse_args(argv)
    if args.which == "train":
        from hne_core.bench.train import run

        return run(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
