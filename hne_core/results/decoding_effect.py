"""What the decoding mode changes on a finished run: ``python -m hne_core.results.decoding_effect RESULTS_DIR``.

The run decoded every evaluation and every attack milestone in one ``decoding.mode``; this decodes the same audio
(the evaluated test utterances, and x + δ with δ as each milestone stored it) in the other mode, and prints per
(model, λC(i)) how many hypotheses differ and the WER / AdvTWER in both modes. No new optimisation: δ does not
depend on the decoding mode. Only 0 < λC(i) < 1 can differ (at 0 and 1 both modes pick the same tokens:
``hne_core.decoding``), so only those pairs are decoded. The last line is ``name=value`` pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from hne_core.decoding import DECODING_MODES


def _other(mode: str) -> str:
    return next(m for m in DECODING_MODES if m != mode)


def _wer(refs: list[str], hyps: list[str]) -> float:
    from hne_core.model.evaluate import corpus_wer

    return 100.0 * corpus_wer(refs, hyps)


def evaluation_effect(eval_dir: Path, data_dir: Path, text_case: str) -> dict | None:
    """Benign hypotheses of one evaluation re-decoded in the other mode."""
    from hne_core.data.utterances import read_audio, read_data_dir
    from hne_core.model.evaluate import load_transcriber
    from hne_core.text import normalize_transcript

    summary = json.loads((eval_dir / "summary.json").read_text())
    lci = float(summary["lambda_c_infer"])
    model = eval_dir.parent.name
    if not 0.0 < lci < 1.0 or model == "pretrained":
        return None
    frame = pd.read_csv(eval_dir / "hypotheses.tsv", sep="\t", dtype=str, keep_default_na=False)
    utts = {u.utt_id: u for u in read_data_dir(data_dir)}
    mode = summary.get("decoding", "espnet_beam1")
    transcribe = load_transcriber(eval_dir.parents[2] / "models" / model, lci, _other(mode))
    waves = [read_audio(utts[u].wav) for u in frame.utt_id]
    other = [normalize_transcript(t, text_case) for t in transcribe.batch(waves)]
    refs = list(frame.reference)
    return {
        "kind": "benign",
        "model": model,
        "lci": lci,
        "steps": 0,
        "n": len(refs),
        "changed": int(sum(a != b for a, b in zip(frame.hypothesis, other))),
        f"wer_{mode}": _wer(refs, list(frame.hypothesis)),
        f"wer_{_other(mode)}": _wer(refs, other),
    }


def attack_effect(attack_dir: Path, data_dir: Path, text_case: str) -> dict | None:
    """One milestone's x + δ (δ as stored) re-decoded in the other mode: hypotheses changed, AdvTWER in both."""
    from hne_core.attack.job import load_state
    from hne_core.data.utterances import read_audio, read_data_dir
    from hne_core.model.evaluate import load_transcriber
    from hne_core.text import normalize_transcript

    summary = json.loads((attack_dir / "summary.json").read_text())
    lci = float(summary["lambda_c_infer"])
    if not 0.0 < lci < 1.0:
        return None
    model = attack_dir.parents[1].name
    frame = pd.read_csv(attack_dir / "utterances.csv", dtype=str, keep_default_na=False)
    state = load_state(attack_dir / "state.npz")
    utts = {u.utt_id: u for u in read_data_dir(data_dir)}
    mode = summary.get("decoding", "espnet_beam1")
    transcribe = load_transcriber(attack_dir.parents[3] / "models" / model, lci, _other(mode))
    advs = [(read_audio(utts[u].wav) + d).astype(np.float32) for u, d in zip(state["utt_ids"], state["deltas"])]
    other = [normalize_transcript(t, text_case) for t in transcribe.batch(advs)]
    targets = list(frame.target)
    return {
        "kind": "attack",
        "model": model,
        "lci": lci,
        "steps": int(summary["steps"]),
        "n": len(targets),
        "changed": int(sum(a != b for a, b in zip(frame.hypothesis, other))),
        f"adv_twer_{mode}": _wer(targets, list(frame.hypothesis)),
        f"adv_twer_{_other(mode)}": _wer(targets, other),
    }


def decoding_effect(results: str | Path, text_case: str = "upper") -> pd.DataFrame:
    results = Path(results)
    data_dir = results / "data" / "test"
    rows = [r for d in sorted(results.glob("eval/*/infer*")) if (r := evaluation_effect(d, data_dir, text_case))]
    milestones = [d for d in results.glob("attacks/*/infer*/pgd*") if d.is_dir()]
    for d in sorted(milestones, key=lambda d: (str(d.parent), int(d.name.removeprefix("pgd")))):  # 50 before 100
        if r := attack_effect(d, data_dir, text_case):
            rows.append(r)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hne_core.results.decoding_effect", description=__doc__)
    parser.add_argument("results", help="a finished run's results folder (results_dir)")
    parser.add_argument(
        "--workdir",
        default=None,
        help="the run's working directory (the models' configs name files relative to it; "
        "default: the results folder's parent)",
    )
    parser.add_argument("--text-case", default="upper")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    from hne_core.startup import skip_typeguard_instrumentation

    skip_typeguard_instrumentation()
    import torch

    torch.set_num_threads(args.threads)
    results = Path(args.results).resolve()
    os.chdir(args.workdir or results.parent)
    frame = decoding_effect(results, args.text_case)
    if frame.empty:
        print("nothing to compare: no evaluation or attack with 0 < λC(i) < 1")
        return 0
    with pd.option_context("display.width", 200, "display.max_columns", 20):
        print(frame.round(2).to_string(index=False))
    benign, attacked = frame[frame.kind == "benign"], frame[frame.kind == "attack"]
    print(
        f"benign_changed={int(benign.changed.sum())}/{int(benign.n.sum())} "
        f"attacked_changed={int(attacked.changed.sum())}/{int(attacked.n.sum())}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
