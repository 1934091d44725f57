"""Auxiliary tasks' labels: the manifest's task columns (a class name, or '' for no label) as ESPnet label files.

Every source fills a column named after the task (the self-made corpus: ``sex`` from the espeak-ng variant); this
module turns one split of it into ``labels_<task>``: ``<utt_id> <class index>`` lines, -1 where the utterance has
no label, so that the model's masked loss leaves it out of that task only (it still trains ASR and the other heads).
Pandas is imported inside the functions: the workflow imports the data package while it parses.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hne_core.atomic import write_text_atomic
from hne_core.data.errors import DataError

MISSING_LABEL = -1  # "no label" in a label file; the model's masked cross-entropy skips it


def write_task_labels(
    manifest_path: str | Path, split: str, task: str, classes: Sequence[str], out_path: str | Path
) -> dict[str, int]:
    """``labels_<task>`` of one split, sorted by utt_id like the data directory's other tables; returns the count
    of each class and of missing labels (''). A manifest without the column, or a value that is neither a class
    nor '', is an error naming the manifest, the utterance and the value."""
    from hne_core.data.corpus import read_manifest

    manifest = read_manifest(manifest_path)
    if task not in manifest.columns:
        raise DataError(
            f"{manifest_path}: no {task!r} column, so no {task!r} labels (the data source does not provide this task)"
        )
    rows = manifest[manifest["split"] == split].sort_values("utt_id")
    if rows.empty:
        raise DataError(f"{manifest_path}: split {split!r} has no utterances")
    index = {name: i for i, name in enumerate(classes)}
    counts = dict.fromkeys([*classes, ""], 0)
    lines = []
    for utt_id, value in zip(rows["utt_id"], rows[task].astype(str)):
        if value != "" and value not in index:
            raise DataError(
                f"{manifest_path}: utterance {utt_id!r} has {task} {value!r}, not one of the classes {list(classes)} "
                f"(config tasks.{task}.classes) nor '' (no label)"
            )
        counts[value] += 1
        lines.append(f"{utt_id} {index.get(value, MISSING_LABEL)}\n")
    write_text_atomic(out_path, "".join(lines))
    return counts
