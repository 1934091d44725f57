"""The one output format of the data stage: a tidy manifest, a drop log, ESPnet data directories, a report.

Every data source (``hne_core.data.sources``: synthetic, Common Voice, a folder) ends in the same two tables, so
everything downstream (ESPnet data directories, the report, training, attacks) is written once and cannot tell
the sources apart:

- manifest.tsv: one row per kept utterance (``MANIFEST_COLUMNS``, source-specific extras after them);
- dropped.tsv: one row per input row that was not kept, with the file, the row and the reason.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from hne_core.atomic import atomic_dir, atomic_path, write_text_atomic
from hne_core.data.errors import DataError  # re-exported: defined apart so that parse-time code can raise it
from hne_core.data.labels import MISSING_LABEL, render_task_labels, summarize_task_labels

SPLITS: tuple[str, ...] = ("train", "dev", "test")
MANIFEST_COLUMNS: tuple[str, ...] = (
    "utt_id",
    "split",
    "speaker",
    "accent",
    "accent_id",
    "text",
    "wav",
    "num_samples",
    "duration_s",
)
DROPPED_COLUMNS: tuple[str, ...] = ("split", "source_file", "row", "utt_id", "reason", "detail")
ESPNET_FILES: tuple[str, ...] = ("wav.scp", "text", "utt2spk", "spk2utt", "accent", "utt2dur", "utt2num_samples")


@dataclass
class DropLog:
    """Every row the data stage did not keep, with why: nothing is ever dropped silently."""

    rows: list[dict] = field(default_factory=list)

    def add(self, split: str, source_file: str, row: int | str, utt_id: str, reason: str, detail: str = "") -> None:
        self.rows.append(
            dict(split=split, source_file=str(source_file), row=row, utt_id=utt_id, reason=reason, detail=detail)
        )

    def extend(self, other: DropLog) -> None:
        self.rows.extend(other.rows)

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=list(DROPPED_COLUMNS))


ON_BAD_ROW: tuple[str, ...] = ("error", "skip")


class BadRows:
    """Bad input rows (``data.on_bad_row``): raise (``error``) naming file, row and clip, or drop and count
    (``skip``). One class for every source that reads rows from a file, so the message and the drop log read
    the same whichever source wrote them."""

    def __init__(self, on_bad_row: str, drops: DropLog):
        if on_bad_row not in ON_BAD_ROW:
            raise DataError(f"on_bad_row: {on_bad_row!r} is not one of {ON_BAD_ROW}")
        self.raise_ = on_bad_row == "error"
        self.drops = drops

    def __call__(self, split: str, tsv: str, row: int, clip: str, utt_id: str, reason: str, detail: str) -> None:
        if self.raise_:
            raise DataError(
                f"{tsv}: row {row} (data row, header excluded), clip {clip or '<none>'}: {reason}: "
                f"{detail} (with on_bad_row=skip such rows are dropped and counted in dropped.tsv)"
            )
        self.drops.add(split, tsv, row, utt_id, reason, detail)


def write_tsv(frame: pd.DataFrame, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, sep="\t", index=False)


def write_prepared(
    manifest: pd.DataFrame, drops: DropLog, source: str, manifest_path: str | Path, dropped_path: str | Path
) -> None:
    """A source's last step: check the manifest's invariants (``source`` names the input in the error), then
    publish the drop log and the manifest, each atomically, the manifest last (it is what later jobs read)."""
    validate_manifest(manifest, source)
    write_tsv(drops.frame(), dropped_path)
    write_tsv(manifest, manifest_path)


def read_manifest(path: str | Path) -> pd.DataFrame:
    frame = pd.read_csv(
        path, sep="\t", dtype={"utt_id": str, "speaker": str, "text": str, "accent": str}, keep_default_na=False
    )
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: manifest lacks columns {missing}")
    return frame


def validate_manifest(frame: pd.DataFrame, source: str) -> None:
    """The invariants every manifest holds, whichever source wrote it."""
    missing = [c for c in MANIFEST_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{source}: manifest lacks columns {missing}")
    dup = frame["utt_id"][frame["utt_id"].duplicated()]
    if len(dup):
        raise DataError(f"{source}: duplicate utt_id {dup.iloc[0]!r}")
    bad_split = frame.loc[~frame["split"].isin(SPLITS), "split"]
    if len(bad_split):
        raise DataError(f"{source}: unknown split {bad_split.iloc[0]!r}; expected one of {SPLITS}")
    empty = frame.loc[frame["text"].str.strip() == "", "utt_id"]
    if len(empty):
        raise DataError(f"{source}: utterance {empty.iloc[0]!r} has an empty transcript")
    # Kaldi convention that ESPnet's sorting relies on: an utterance id starts with its speaker id.
    bad = frame.loc[[not u.startswith(s) for u, s in zip(frame["utt_id"], frame["speaker"])], "utt_id"]
    if len(bad):
        raise DataError(f"{source}: utt_id {bad.iloc[0]!r} does not start with its speaker id")
    for col in ("utt_id", "speaker"):
        spaced = frame.loc[frame[col].str.contains(r"\s", regex=True), col]
        if len(spaced):
            raise DataError(f"{source}: {col} {spaced.iloc[0]!r} contains whitespace")


def _kaldi_lines(pairs: Iterable[tuple[str, object]]) -> str:
    return "".join(f"{k} {v}\n" for k, v in pairs)


def write_espnet_dir(manifest: pd.DataFrame, split: str, out_dir: str | Path) -> Path:
    """Write one split as an ESPnet/Kaldi data directory, atomically as a whole directory.

    ``accent`` holds the class index (loaded by ESPnet as ``text_int``); durations go to ``utt2dur`` (seconds)
    and ``utt2num_samples``.
    """
    rows = manifest[manifest["split"] == split].sort_values("utt_id")
    if rows.empty:
        raise DataError(f"split {split!r} has no utterances: check the data config and dropped.tsv")
    with atomic_dir(out_dir) as tmp:
        ids = rows["utt_id"].tolist()
        (tmp / "wav.scp").write_text(_kaldi_lines(zip(ids, rows["wav"])))
        (tmp / "text").write_text(_kaldi_lines(zip(ids, rows["text"])))
        (tmp / "utt2spk").write_text(_kaldi_lines(zip(ids, rows["speaker"])))
        (tmp / "accent").write_text(_kaldi_lines(zip(ids, rows["accent_id"].astype(int))))
        (tmp / "utt2dur").write_text(_kaldi_lines(zip(ids, (f"{d:.4f}" for d in rows["duration_s"]))))
        (tmp / "utt2num_samples").write_text(_kaldi_lines(zip(ids, rows["num_samples"].astype(int))))
        spk2utt = rows.groupby("speaker", sort=True)["utt_id"].apply(lambda s: " ".join(sorted(s)))
        (tmp / "spk2utt").write_text(_kaldi_lines(spk2utt.items()))
    return Path(out_dir)


def write_accent_classes(classes: Sequence[str], path: str | Path) -> None:
    """Class index -> name, the key to the integers in every split's ``accent`` file."""
    write_text_atomic(path, "".join(f"{i} {name}\n" for i, name in enumerate(classes)))


def summarize(manifest: pd.DataFrame, dropped: pd.DataFrame) -> dict:
    """Utterances and hours per split x accent, speakers per split, and drops counted by split and reason."""
    kept = (
        manifest.groupby(["split", "accent"])
        .agg(
            utterances=("utt_id", "size"),
            hours=("duration_s", lambda d: float(d.sum()) / 3600.0),
            speakers=("speaker", "nunique"),
        )
        .reset_index()
    )
    drops = (
        dropped.groupby(["split", "reason"]).size().rename("rows").reset_index()
        if len(dropped)
        else pd.DataFrame(columns=["split", "reason", "rows"])
    )
    return {
        "kept": kept.to_dict(orient="records"),
        "dropped": drops.to_dict(orient="records"),
        "total_utterances": int(len(manifest)),
        "total_hours": float(manifest["duration_s"].sum()) / 3600.0,
        "total_dropped": int(len(dropped)),
    }


def render_report(summary: dict, title: str) -> str:
    """A markdown data report: what was kept (utterances, hours) and what was dropped, by reason."""
    kept = pd.DataFrame(summary["kept"])
    lines = [
        f"# Data report: {title}",
        "",
        f"{summary['total_utterances']} utterances kept ({summary['total_hours']:.2f} h); "
        f"{summary['total_dropped']} rows dropped.",
        "",
        "## Kept, per split and accent",
        "",
        "| split | accent | utterances | hours | speakers |",
        "|---|---|---:|---:|---:|",
    ]
    for r in kept.itertuples():
        lines.append(f"| {r.split} | {r.accent} | {r.utterances} | {r.hours:.3f} | {r.speakers} |")
    lines += ["", "## Dropped, per split and reason (every row is listed in dropped.tsv)", ""]
    if summary["dropped"]:
        lines += ["| split | reason | rows |", "|---|---|---:|"]
        lines += [f"| {d['split']} | {d['reason']} | {d['rows']} |" for d in summary["dropped"]]
    else:
        lines.append("Nothing was dropped.")
    return "\n".join(lines) + "\n"


def write_report(
    manifest: pd.DataFrame,
    dropped: pd.DataFrame,
    title: str,
    md_path: str | Path,
    json_path: str | Path,
    tasks: Mapping[str, Mapping] | None = None,
) -> dict:
    """The data report; ``tasks`` (config ``tasks``) adds each task's labels per split and class (``tasks`` in
    the JSON, ``hne_core.data.labels.summarize_task_labels``) for the tasks whose column the manifest has."""

    summary = summarize(manifest, dropped)
    summary["tasks"] = summarize_task_labels(manifest, tasks or {}, SPLITS)
    write_text_atomic(json_path, json.dumps(summary, indent=2) + "\n")
    md = render_report(summary, title)
    task_lines = render_task_labels(summary["tasks"], tasks or {})
    write_text_atomic(md_path, md + "\n" + "\n".join(task_lines) if task_lines else md)
    return summary


def write_task_labels(
    manifest_path: str | Path, split: str, task: str, classes: Sequence[str], out_path: str | Path
) -> dict[str, int]:
    """``labels_<task>`` of one split (``hne_core.data.labels``: a task's column of class names, '' for no label),
    sorted by utt_id like the data directory's other tables; returns the count
    of each class and of missing labels (''). A manifest without the column, or a value that is neither a class
    nor '', is an error naming the manifest, the utterance and the value."""
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
    pairs = []
    for utt_id, value in zip(rows["utt_id"], rows[task].astype(str)):
        if value != "" and value not in index:
            raise DataError(
                f"{manifest_path}: utterance {utt_id!r} has {task} {value!r}, not one of the classes {list(classes)} "
                f"(config tasks.{task}.classes) nor '' (no label)"
            )
        counts[value] += 1
        pairs.append((utt_id, index.get(value, MISSING_LABEL)))
    write_text_atomic(out_path, _kaldi_lines(pairs))
    return counts


def read_kaldi_table(path: str | Path) -> dict[str, str]:
    """``utt_id value`` lines of a Kaldi/ESPnet table (wav.scp, text, accent, ...) as a dict."""
    rows = (line.split(maxsplit=1) for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip())
    return {row[0]: (row[1] if len(row) > 1 else "") for row in rows}


COMPOSITIONS = ("balanced", "natural")


class SampleSizeError(ValueError):
    """More utterances asked for than the split holds."""


def _accent_table(accents: str | Path | Mapping[str, str]) -> dict[str, str]:
    return dict(accents) if isinstance(accents, Mapping) else read_kaldi_table(accents)


def balanced_quotas(sizes: Mapping[str, int], n: int) -> dict[str, int]:
    """How many utterances each class gives to a sample of ``n``: as even as the classes allow.

    Water-filling: every class is offered ``n // k`` (the first ``n % k`` classes in sorted order one more); a
    class holding fewer gives all it has, and what it could not give is offered again, evenly, to the classes
    left. So the quotas add up to ``min(n, total)``, and when no class is short they are exactly the even split
    (``balanced_sample`` then draws what it always drew).
    """
    quotas: dict[str, int] = {}
    open_classes = sorted(sizes)
    remaining = n
    while open_classes:
        per_class, extra = divmod(remaining, len(open_classes))
        share = {c: per_class + (1 if i < extra else 0) for i, c in enumerate(open_classes)}
        short = [c for c in open_classes if sizes[c] < share[c]]
        if not short:
            quotas.update(share)
            break
        for c in short:
            quotas[c] = sizes[c]
            remaining -= sizes[c]
        open_classes = [c for c in open_classes if c not in short]
    return {c: quotas.get(c, 0) for c in sorted(sizes)}


def sample_utterances(
    accents: str | Path | Mapping[str, str],
    n: int,
    seed: int,
    composition: str = "balanced",
    what: str = "n_utterances",
    source: str | Path | None = None,
) -> list[str]:
    """A seeded choice of exactly ``n`` utterance ids of an ESPnet ``accent`` file (or of that file already read,
    utt_id -> class). Sorted ids.

    ``composition``:
    - ``natural``: a uniform sample of the split as it is, so the accent mix follows the split's own (in
      expectation); the paper attacks "~1K test utterances" of Common Voice's test split without saying more;
    - ``balanced``: as even over the classes as they allow (``balanced_quotas``): a class with too few
      utterances gives all it has and the others fill its shortfall.

    Asking for more than the split holds is an error naming both numbers, ``what`` (the config key) and the
    file (``source``, or ``accents`` when it is a path): a silently smaller sample would change what a table
    averages over.
    """
    import random

    if composition not in COMPOSITIONS:
        raise ValueError(f"{what}: composition must be one of {COMPOSITIONS}, got {composition!r}")
    table = _accent_table(accents)
    where = source if source is not None else (accents if not isinstance(accents, Mapping) else "the split")
    if n < 1:
        raise SampleSizeError(f"{where}: {what} asks for {n} utterances; at least 1 is needed")
    if n > len(table):
        raise SampleSizeError(f"{where}: {what} asks for {n} utterances, but the split holds only {len(table)}")
    rng = random.Random(seed)
    if composition == "natural":
        return sorted(rng.sample(sorted(table), n))
    by_class: dict[str, list[str]] = {}
    for utt, cls in sorted(table.items()):
        by_class.setdefault(cls, []).append(utt)
    quotas = balanced_quotas({c: len(u) for c, u in by_class.items()}, n)
    chosen: list[str] = []
    for cls in sorted(by_class):  # one rng.sample per class in sorted order: the draws of the even split
        chosen += rng.sample(by_class[cls], quotas[cls])
    return sorted(chosen)


def balanced_sample(accents: str | Path | Mapping[str, str], n: int, seed: int) -> list[str]:
    """A seeded, accent-balanced choice of ``min(n, total)`` utterance ids (sorted): ``sample_utterances`` with
    ``balanced`` composition, capped at the split's size. For bounds such as ``finetune.max_train_utterances``
    (at most this many); a sample that must have exactly ``n`` calls ``sample_utterances``."""
    table = _accent_table(accents)
    source = None if isinstance(accents, Mapping) else accents
    return sample_utterances(table, min(n, len(table)), seed, "balanced", source=source) if table else []


def manifest_frame(
    rows: Sequence, wavs: Sequence[str], samples: Sequence[int], tasks: Sequence[str] = ()
) -> pd.DataFrame:
    """The manifest of kept ``rows.SourceRow``s, each with its converted wav and its sample count:
    ``MANIFEST_COLUMNS``, ``rows.EXTRA_COLUMNS``, then one column per task of ``tasks`` (the rows' ``labels``, ''
    for no label); without tasks the columns are those of a source that has none."""
    from hne_core.data.audio import TARGET_RATE
    from hne_core.data.rows import EXTRA_COLUMNS

    frame = pd.DataFrame(
        [
            dict(
                utt_id=r.utt_id,
                split=r.split,
                speaker=r.speaker,
                accent=r.accent,
                accent_id=r.accent_id,
                text=r.text,
                wav=w,
                num_samples=n,
                duration_s=n / TARGET_RATE,
                raw_text=r.raw_text,
                raw_accent=r.raw_accent,
                source_tsv=r.source_tsv,
                source_row=r.source_row,
                clip=r.clip,
                **{task: r.labels.get(task, "") for task in tasks},
            )
            for r, w, n in zip(rows, wavs, samples, strict=True)
        ],
        columns=[*MANIFEST_COLUMNS, *EXTRA_COLUMNS, *tasks],
    )
    return frame.astype({"accent_id": int, "num_samples": int, "source_row": int, "duration_s": float})
