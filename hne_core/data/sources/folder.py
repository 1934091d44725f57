"""Source ``folder``: a folder of recordings of your own, described by a TSV (or one TSV per split).

``folder.tsv`` is either one TSV whose ``split`` column says train, dev or test for each row, or a map
``{train: a.tsv, dev: b.tsv, test: c.tsv}`` of one TSV per split (a ``split`` column is then not read). TSV paths
are relative to the working directory; each TSV is tab-separated with a header and no quoting, and has

- ``path``: the recording, relative to the TSV's own folder (or absolute); any format ffmpeg reads (WAV at any
  rate, FLAC, MP3, ...), converted to 16 kHz mono 16-bit WAV (resampled and down-mixed by ffmpeg when needed);
- ``sentence``: what is said (normalised as every source's transcripts, ``hne_core.text``);
- ``accent``: a value that ``folder.classes`` maps to a class;
- ``speaker`` (optional): the speaker; without it every recording counts as its own speaker;
- any column that ``folder.labels`` names (optional): a task's raw values, e.g. ``gender`` or ``age_group``.

Classes: ``folder.classes: {name: {labels: [values of the accent column]}}``, matched case-insensitively with
whitespace collapsed; the class index is the position. A row whose accent is empty (``no_accent``) or in no
class's labels (``other_accent``) is dropped and counted, as Common Voice's are: a folder may hold more accents
than an experiment uses. A class that keeps no utterance at all is an error (a label misspelt in the config).

Task labels (``folder.labels: {task: {column, values: {class: [values]}, unknown: [values]}}``,
``hne_core.data.labels``): each kept row's value of the column becomes the manifest's column named after the task
(the class, or '' for an empty cell, an unknown value or a multi-valued cell whose values map to several classes:
the row is kept without that label; the job's log counts each reason). A value that is neither mapped nor unknown
is ``bad_label``; a TSV without a configured column is an error naming it.

Bad rows follow ``data.on_bad_row`` (``error``: stop naming the TSV, the row and the recording; ``skip``: drop and
count in dropped.tsv): ``malformed_row`` (a field count other than the header's, or no path), ``unknown_split``,
``empty_sentence``, ``bad_label``, ``duplicate_clip`` (a recording named twice), ``duplicate_utt_id`` (two paths
that spell one id), ``missing_clip``, ``unreadable_audio``, ``empty_audio`` (shorter than ``data.min_samples``).
Blank lines are ``blank_line`` drops. Rows are numbered from 1, the header excluded (file line = row + 1), as for
Common Voice.

Ids: ``<speaker>-<path>`` with the path's extension dropped and every character other than letters, digits,
``_``, ``.`` and ``-`` replaced by ``_`` (``<path>`` alone without a speaker column), so an id says where its
recording came from. The manifest's extra columns are those of Common Voice: ``raw_text``, ``raw_accent``,
``source_tsv``, ``source_row``, ``clip`` (the path as the TSV writes it).

The TSVs are the prepare job's inputs: editing one reruns the data stage; replacing a recording without touching
its TSV is not seen (touch the TSV, or rerun with ``-R prepare_folder``).

Imports at module level are the standard library's only: the workflow imports this module while it parses.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hne_core.data.errors import ConfigError, DataError
from hne_core.data.labels import BAD_LABEL, LabelMap, describe_tally, label_columns, label_maps, label_row, tally_labels
from hne_core.data.rows import SourceRow
from hne_core.data.sources import Outputs, Paths
from hne_core.data.sources import class_names as _class_names

if TYPE_CHECKING:
    import pandas as pd

    from hne_core.data.corpus import BadRows, DropLog

RULE = "prepare_folder"
DATA_KEYS: tuple[str, ...] = ("on_bad_row", "text_case", "min_samples")
SPLITS: tuple[str, ...] = ("train", "dev", "test")
REQUIRED_COLUMNS: tuple[str, ...] = ("path", "sentence", "accent")
_SPACES = re.compile(r"\s+")
_NOT_ID = re.compile(r"[^A-Za-z0-9_.-]+")
LABELS_KEY = "folder.labels"
log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------
# The workflow's interface (hne_core.data.sources)
# ----------------------------------------------------------------------------------------------------------


def class_names(section: Mapping) -> list[str]:
    return _class_names(section, "folder")


def check(section: Mapping) -> None:
    tsv_files(section)
    label_table(section["classes"])
    label_maps(section.get("labels", {}), LABELS_KEY)


def settings(section: Mapping) -> dict:
    return {"tsv": section["tsv"], "classes": section["classes"], "labels": section.get("labels", {})}


def inputs(section: Mapping, paths: Paths) -> dict[str, list[str]]:
    return {"tsvs": list(dict.fromkeys(path for path, _ in tsv_files(section)))}


def test_split_bound(section: Mapping) -> tuple[int | None, str]:
    return None, ""  # known once the TSVs are read: the jobs check then


def prepare(
    settings: Mapping,
    inputs: Mapping,
    outputs: Outputs,
    *,
    threads: int,
    on_bad_row: str,
    text_case: str,
    min_samples: int,
) -> str:
    from hne_core.data.corpus import write_prepared

    manifest, drops = prepare_folder(
        settings, outputs.wavs, on_bad_row=on_bad_row, text_case=text_case, min_samples=min_samples, processes=threads
    )
    sources = ", ".join(dict.fromkeys(path for path, _ in tsv_files(settings)))
    write_prepared(manifest, drops, sources, outputs.manifest, outputs.dropped)
    return f"kept {len(manifest)} utterances, dropped {len(drops.rows)} rows"


# ----------------------------------------------------------------------------------------------------------
# Config
# ----------------------------------------------------------------------------------------------------------


def tsv_files(section: Mapping) -> list[tuple[str, str | None]]:
    """(TSV path, its split or None when a ``split`` column says) for ``folder.tsv``, in split order."""
    tsv = section.get("tsv")
    if isinstance(tsv, str) and tsv:
        return [(tsv, None)]
    if isinstance(tsv, Mapping):
        if set(tsv) != set(SPLITS) or not all(isinstance(tsv[s], str) and tsv[s] for s in SPLITS):
            raise ConfigError(
                "folder.tsv", f"one TSV per split needs exactly {list(SPLITS)}, each a path; got {dict(tsv)!r}"
            )
        return [(tsv[s], s) for s in SPLITS]
    raise ConfigError(
        "folder.tsv",
        "data.source is folder, so set folder.tsv: a TSV with columns path, sentence, "
        "accent, split, or {train: ..., dev: ..., test: ...} (one TSV per split)",
    )


def _key(text: str) -> str:
    """Comparison key of an accent value: case-folded, trimmed, inner whitespace collapsed."""
    return _SPACES.sub(" ", text).strip().casefold()


def label_table(classes: Mapping) -> dict[str, str]:
    """Accent value key -> class name; a class without labels or a value claimed twice is an error naming the
    key."""
    _class_names({"classes": classes}, "folder")
    table: dict[str, str] = {}
    for name, spec in classes.items():
        where = f"folder.classes.{name}"
        labels = spec.get("labels") if set(spec) == {"labels"} else None
        if not isinstance(labels, list) or not labels or not all(isinstance(x, str) and x.strip() for x in labels):
            raise ConfigError(where, f"expected {{labels: [values of the TSV's accent column]}}, got {dict(spec)!r}")
        for label in labels:
            k = _key(label)
            if table.setdefault(k, str(name)) != name:
                raise ConfigError(
                    f"{where}.labels",
                    f"{label!r} is already a label of class {table[k]!r}; a value may map to one class only",
                )
    return table


# ----------------------------------------------------------------------------------------------------------
# Reading the TSVs
# ----------------------------------------------------------------------------------------------------------


def _id(text: str) -> str:
    return _NOT_ID.sub("_", text).strip("_")


def _read_tsv(
    path: str, want_split: bool, maps: tuple[LabelMap, ...] = ()
) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (row number, fields) of a TSV; a missing file, a header without a required column (or without a
    column a task's labels are read from, ``maps``), or text that is not UTF-8 is an error naming the file (no
    row of it can be trusted then)."""
    if not os.path.isfile(path):
        raise DataError(f"{path}: folder TSV not found")
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            lines = list(csv.reader(fh, delimiter="\t", quoting=csv.QUOTE_NONE))
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from exc
    if not lines:
        raise DataError(f"{path}: empty file (expected a header with columns {list(REQUIRED_COLUMNS)})")
    header = [c.strip() for c in lines[0]]
    needed = [*REQUIRED_COLUMNS, *(["split"] if want_split else [])]
    missing = [c for c in needed if c not in header]
    if missing:
        why = " (one TSV for every split: a split column says which)" if want_split and missing == ["split"] else ""
        raise DataError(f"{path}: missing columns {missing}{why}; columns are {header}")
    unlabelled = [m for m in maps if m.column not in header]
    if unlabelled:
        m = unlabelled[0]
        raise DataError(
            f"{path}: no column {m.column!r}, which {m.key}.column names for task {m.task!r}; columns are {header}"
        )
    return header, list(enumerate(lines[1:], start=1))


def _candidates(
    tsv: str,
    split: str | None,
    labels: Mapping[str, str],
    names: list[str],
    text_case: str,
    bad: BadRows,
    drops: DropLog,
    seen: dict[str, tuple[str, int]],
    ids: dict[str, tuple[str, int]],
    maps: tuple[LabelMap, ...] = (),
) -> list[SourceRow]:
    """The rows of one TSV that map to a class, have a transcript and good task values (``maps``); every other
    row goes to ``drops``."""
    from hne_core.text import normalize_transcript

    header, rows = _read_tsv(tsv, want_split=split is None, maps=maps)
    col = {c: header.index(c) for c in header}
    base = Path(tsv).parent
    out: list[SourceRow] = []
    for row, fields in rows:
        if not any(f.strip() for f in fields):  # a blank line: nothing to keep, nothing wrong
            drops.add(split or "", tsv, row, "", "blank_line", "")
            continue
        rec = {c: fields[i].strip() if i < len(fields) else "" for c, i in col.items()}
        clip = rec["path"]
        row_split = split or rec["split"]
        clip_id = _id(os.path.splitext(clip)[0])
        if len(fields) != len(header) or not clip_id or ("speaker" in rec and not _id(rec["speaker"])):
            bad(
                row_split,
                tsv,
                row,
                clip,
                "",
                "malformed_row",
                f"{len(fields)} fields for {len(header)} columns, path {clip!r}, speaker {rec.get('speaker')!r}",
            )
            continue
        if row_split not in SPLITS:
            bad(row_split, tsv, row, clip, "", "unknown_split", f"split {row_split!r} is not one of {list(SPLITS)}")
            continue
        speaker = _id(rec["speaker"]) if "speaker" in rec else clip_id
        utt_id = f"{speaker}-{clip_id}" if "speaker" in rec else clip_id
        raw_accent, raw_text = fields[col["accent"]], fields[col["sentence"]]
        if not raw_accent.strip():
            drops.add(row_split, tsv, row, utt_id, "no_accent", "")
            continue
        accent = labels.get(_key(raw_accent))
        if accent is None:
            drops.add(row_split, tsv, row, utt_id, "other_accent", raw_accent.strip())
            continue
        text = normalize_transcript(raw_text, text_case)
        if not text:
            bad(row_split, tsv, row, clip, utt_id, "empty_sentence", f"sentence {raw_text!r} is empty once normalised")
            continue
        raw_labels = {c: fields[col[c]] for c in label_columns(maps)}
        task_labels, bad_map = label_row(maps, raw_labels)
        if bad_map is not None:
            detail = bad_map.classify(raw_labels[bad_map.column]).detail
            bad(row_split, tsv, row, clip, utt_id, BAD_LABEL, detail)
            continue
        audio = os.path.normpath(os.path.join(base, clip))
        if audio in seen:
            first_tsv, first_row = seen[audio]
            bad(
                row_split,
                tsv,
                row,
                clip,
                utt_id,
                "duplicate_clip",
                f"recording already used by {first_tsv} row {first_row}",
            )
            continue
        if utt_id in ids:
            first = f"; {ids[utt_id][0]} row {ids[utt_id][1]} has it"
            bad(
                row_split,
                tsv,
                row,
                clip,
                utt_id,
                "duplicate_utt_id",
                f"path and speaker spell the id {utt_id!r}{first}",
            )
            continue
        seen[audio] = ids[utt_id] = (tsv, row)
        out.append(
            SourceRow(
                row_split,
                tsv,
                row,
                clip,
                speaker,
                utt_id,
                accent,
                names.index(accent),
                text,
                raw_text,
                raw_accent,
                audio=audio,
                labels=task_labels,
                raw_labels=raw_labels,
            )
        )
    return out


# ----------------------------------------------------------------------------------------------------------
# Audio and the whole preparation
# ----------------------------------------------------------------------------------------------------------


def _convert(job: tuple[str, str, int]) -> tuple[int | None, str, str]:
    """Any recording -> 16 kHz mono 16-bit WAV in a worker. Returns (samples, "", "") or (None, reason, detail).
    Always converted, never reused: a user's recording may have changed since an earlier run."""
    from hne_core.data.audio import AudioError, convert_to_wav16

    src, dst, min_samples = job
    try:
        return convert_to_wav16(src, dst, min_samples=min_samples), "", ""
    except AudioError as exc:
        return None, exc.reason, str(exc)


def prepare_folder(
    section: Mapping,
    wav_dir: str | Path,
    *,
    on_bad_row: str = "error",
    text_case: str = "upper",
    min_samples: int = 1,
    processes: int = 1,
) -> tuple[pd.DataFrame, DropLog]:
    """``folder.tsv``, ``folder.classes`` and ``folder.labels`` (``section``) -> (manifest, drops), WAVs written to
    ``wav_dir``.

    The manifest has ``MANIFEST_COLUMNS``, ``EXTRA_COLUMNS``, then one column per task of ``folder.labels`` (class
    name, '' for no label), in split then file order. ``wav_dir`` belongs to
    this function: WAVs that the manifest does not name are removed. Raised whatever ``on_bad_row`` says: a
    missing, non-UTF-8 or column-less TSV (a task's column included), a bad config, a class that keeps no
    utterance.
    """

    from hne_core.data.audio import require_tool
    from hne_core.data.corpus import BadRows, DropLog, manifest_frame
    from hne_core.parallel import parallel_map

    require_tool("ffmpeg")
    files = tsv_files(section)
    labels = label_table(section["classes"])
    names = class_names(section)
    maps = label_maps(section.get("labels", {}), LABELS_KEY)
    drops = DropLog()
    bad = BadRows(on_bad_row, drops)
    seen: dict[str, tuple[str, int]] = {}
    ids: dict[str, tuple[str, int]] = {}
    rows: list[SourceRow] = []
    for tsv, split in files:
        rows += _candidates(tsv, split, labels, names, text_case, bad, drops, seen, ids, maps)
    rows.sort(key=lambda r: SPLITS.index(r.split))  # stable: file order within a split

    wav_dir = Path(wav_dir)
    wav_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(r.audio, str(wav_dir / f"{r.utt_id}.wav"), int(min_samples)) for r in rows]
    kept: list[tuple[SourceRow, str, int]] = []
    for r, job, (n, reason, detail) in zip(rows, jobs, parallel_map(_convert, jobs, max(1, int(processes)))):
        if n is None:
            bad(r.split, r.source_tsv, r.source_row, r.clip, r.utt_id, reason, detail)
        else:
            kept.append((r, job[1], n))
    for path in wav_dir.glob("*.wav"):  # the folder holds exactly the corpus the manifest describes
        if str(path) not in {w for _, w, _ in kept}:
            path.unlink()
    empty = [c for c in names if not any(r.accent == c for r, _, _ in kept)]
    if empty:
        seen_values = sorted({d["detail"] for d in drops.rows if d["reason"] == "other_accent"})
        raise DataError(
            f"folder.classes.{empty[0]}: no utterance of {[t for t, _ in files]} was kept for this "
            f"class (its labels {section['classes'][empty[0]]['labels']}); accent values that no "
            f"class took: {seen_values[:20]}"
        )
    if maps:
        log.info(
            "task labels of the kept rows: %s", describe_tally(tally_labels(maps, (r.raw_labels for r, _, _ in kept)))
        )
    rows, wavs, samples = zip(*kept) if kept else ((), (), ())
    return manifest_frame(rows, wavs, samples, [m.task for m in maps]), drops
