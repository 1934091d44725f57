"""The results of a finished run that two runs of one config must share, whatever ran them (local or SLURM,
interrupted or not): every aggregate the run wrote, compared byte for byte after dropping what measures time.

Included: the data manifest; the attack targets; per (model, λC(i), milestone) the attack CSV, the δ state and the
summary; per evaluation the hypotheses and summary; every fine-tuned model's weights; and every file under
results/tables/ and results/figures/ (the aggregates, whatever they are). Excluded: logs, benchmarks, ESPnet's
training folders (they hold timings), and PDFs (they carry a creation date).
"""

from __future__ import annotations

import json
from pathlib import Path

PATTERNS = (
    "results/data/manifest.tsv",
    "results/attacks/*.txt",
    "results/attacks/*/infer*/pgd*/utterances.csv",
    "results/attacks/*/infer*/pgd*/summary.json",
    "results/attacks/*/infer*/pgd*/state.npz",
    "results/eval/*/infer*/hypotheses.tsv",
    "results/eval/*/infer*/summary.json",
    "results/pretrained/model.pth",
    "results/models/*/model.pth",
    "results/models/*/mtl_model.pth",
    "results/models/*/train_curve.csv",
    "results/tables/**/*",
    "results/figures/**/*",
)
# Attack summaries time themselves and say whether the job resumed from its in-job checkpoint.
VOLATILE_KEYS = {"attack_seconds", "total_seconds", "utt_steps_per_second", "resumed_from_checkpoint"}
# Training curves carry wall-clock columns, if any.
VOLATILE_COLUMNS = ("time", "seconds", "elapsed")


def result_files(workdir: Path) -> list[str]:
    files = set()
    for pattern in PATTERNS:
        files |= {
            p.relative_to(workdir).as_posix() for p in workdir.glob(pattern) if p.is_file() and p.suffix != ".pdf"
        }
    return sorted(files)


def comparable(path: Path):
    if path.name == "summary.json":
        return {k: v for k, v in json.loads(path.read_text()).items() if k not in VOLATILE_KEYS}
    if path.name == "train_curve.csv":
        import pandas as pd

        frame = pd.read_csv(path)
        return frame.drop(columns=[c for c in frame.columns if any(v in c for v in VOLATILE_COLUMNS)]).to_csv()
    return path.read_bytes()


def assert_same_results(run: Path, reference: Path, must_include: tuple[str, ...] = ()) -> list[str]:
    """Both runs wrote the same result files with equal contents; returns the compared paths."""
    files, ref_files = result_files(run), result_files(reference)
    assert files == ref_files, (
        f"different result files: only in run {sorted(set(files) - set(ref_files))}, "
        f"only in reference {sorted(set(ref_files) - set(files))}"
    )
    for pattern in must_include:
        assert any(Path(f).match(pattern) for f in files), f"no result file matches {pattern}"
    differ = [f for f in files if comparable(run / f) != comparable(reference / f)]
    assert not differ, f"{len(differ)} of {len(files)} result files differ from the reference run: {differ}"
    return files
