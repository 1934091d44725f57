"""Source ``commonvoice``: Mozilla Common Voice English (the paper's corpus) -> the data stage's manifest and drop log.

Steps, each a function so the workflow can run and test them apart:

1. get the corpus: ``commonvoice.archive`` is a ``cv-corpus-*-en.tar.gz`` or its extracted folder, or
   ``commonvoice.mdc_dataset_id`` names a Mozilla Data Collective download (``download_mdc``; the only source: the
   public links and the Hugging Face copies are gone). A folder is read in place (its split TSVs are the prepare
   job's inputs); anything else goes through ``fetch_commonvoice`` (``rules/sources/commonvoice.smk``), whose
   ``extract_archive`` unpacks it safely and atomically under ``<resources>/commonvoice/corpus``;
   ``find_language_dir`` finds ``cv-corpus-*/en`` in either;
2. ``prepare_commonvoice``: read CV's own train/dev/test TSVs, map accents to the configured classes
   (``commonvoice.classes: {name: {codes: [...], labels: [...]}}``, ``hne_core.data.accents``), normalise
   transcripts, map each task's column (``commonvoice.labels``: ``gender``, ``age``; ``hne_core.data.labels``) to
   a manifest column named after the task, subsample each split with a seed, convert the kept MP3 clips to 16 kHz
   mono WAV in parallel.

Every row read is either in the manifest or in the drop log with its file, row and reason. Rows that are bad input
(``on_bad_row``: ``error`` raises naming TSV, row and clip; ``skip`` drops and counts them): ``malformed_row``,
``unknown_accent``, ``empty_sentence``, ``duplicate_clip``, ``missing_clip``, ``unreadable_audio``,
``empty_audio``, ``bad_label``. Rows that are selection, always dropped and counted: ``no_accent``, ``other_accent``,
``multi_accent``, ``multi_accent_conflict``, ``subsampled``, ``blank_line`` (an empty line in a TSV). Row numbers
are 1-based data rows, the header excluded (so file line = row + 1). CV's splits are kept as CV defines them; a
speaker may appear in more than one of them (``speakers_in_several_splits`` counts that).

Task labels: CV's ``gender`` column changed between releases (older: male/female/other; newer: male_masculine,
female_feminine, intersex, transgender, non-binary, do_not_wish_to_say), so the config maps both schemas' values;
a value the config lists as unknown, an empty cell, or a multi-valued cell whose values map to several classes
keeps its row with no label for that task (it still trains ASR and the other tasks; the job's log counts each
reason). A value the config does not know is ``bad_label`` (a new release's value must not silently vanish).

The workflow imports this module while it parses, so pandas, audio and the accent map are imported where used.
"""

from __future__ import annotations

import csv
import logging
import os
import random
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from hne_core.atomic import atomic_dir
from hne_core.data.errors import ConfigError, DataError
from hne_core.data.labels import BAD_LABEL, LabelMap, describe_tally, label_maps, label_row, tally_labels
from hne_core.data.rows import SourceRow
from hne_core.data.sources import Outputs, Paths
from hne_core.data.sources import class_names as _class_names
from hne_core.text import normalize_transcript

if TYPE_CHECKING:
    import pandas as pd

    from hne_core.data.accents import AccentClasses, AccentOutcome, AccentSchema
    from hne_core.data.corpus import BadRows, DropLog

RULE = "prepare_commonvoice"
DATA_KEYS: tuple[str, ...] = ("seed", "on_bad_row", "text_case", "min_samples")
SPLIT_FILES: dict[str, str] = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
SPLITS: tuple[str, ...] = tuple(SPLIT_FILES)  # the data stage's splits (hne_core.data.corpus.SPLITS)
CORPUS_DIR = "commonvoice/corpus"  # under the resources folder: where fetch_commonvoice extracts the release
REQUIRED_COLUMNS: tuple[str, ...] = ("client_id", "path", "sentence")
SPEAKER_CHARS = 16
MDC_KEY_ENV = "MDC_API_KEY"
LABELS_KEY = "commonvoice.labels"
log = logging.getLogger(__name__)


# ----------------------------------------------------------------------------------------------------------
# The workflow's interface (hne_core.data.sources)
# ----------------------------------------------------------------------------------------------------------


def _is_language_dir(path: Path) -> bool:
    return path.is_dir() and (path / "clips").is_dir() and all((path / f).is_file() for f in SPLIT_FILES.values())


def find_language_dir(root: str | Path) -> Path:
    """The folder holding train.tsv, dev.tsv, test.tsv and clips/: ``root`` itself, ``root/en`` or
    ``root/cv-corpus-*/en``. Several releases under one root are refused rather than guessed between."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"{root}: Common Voice folder not found")
    if _is_language_dir(root):
        return root
    found = sorted(p for p in [root / "en", *root.glob("cv-corpus-*/en")] if _is_language_dir(p))
    if len(found) > 1:
        raise DataError(
            f"{root}: several Common Voice releases found ({[str(p) for p in found]}); point to one of them"
        )
    if not found:
        raise DataError(
            f"{root}: no Common Voice English folder found (expected cv-corpus-*/en or a folder "
            f"holding {', '.join(SPLIT_FILES.values())} and clips/)"
        )
    return found[0]


def class_names(section: Mapping) -> list[str]:
    return _class_names(section, "commonvoice")


def check(section: Mapping) -> None:
    class_names(section)
    label_maps(section.get("labels", {}), LABELS_KEY)
    if not section["archive"] and not section["mdc_dataset_id"]:
        raise ConfigError(
            "commonvoice.archive",
            "data.source is commonvoice, so set commonvoice.archive (a "
            "cv-corpus-*-en.tar.gz or folder) or commonvoice.mdc_dataset_id",
        )


def is_folder(section: Mapping) -> bool:
    """Whether ``commonvoice.archive`` is an extracted release, read in place (no fetch job)."""
    archive = section["archive"]
    return bool(archive) and os.path.isdir(archive)


def settings(section: Mapping) -> dict:
    # the archive itself is no setting: a folder's TSVs, or the fetched corpus, are the job's inputs
    return {**{k: section[k] for k in ("classes", "multi_accent", "subsample")}, "labels": section.get("labels", {})}


def inputs(section: Mapping, paths: Paths) -> dict[str, str | list[str]]:
    """A folder's three split TSVs (read in place), or the folder that fetch_commonvoice makes."""
    if is_folder(section):
        lang = find_language_dir(section["archive"])
        return {"tsvs": [os.path.join(lang, SPLIT_FILES[s]) for s in SPLIT_FILES]}
    return {"corpus": os.path.join(paths.resources_dir, CORPUS_DIR)}


def test_split_bound(section: Mapping) -> tuple[int | None, str]:
    bound = section["subsample"]["test"]  # drops can only lower it
    return (int(bound), "config key 'commonvoice.subsample.test'") if bound else (None, "")


def prepare(
    settings: Mapping,
    inputs: Mapping,
    outputs: Outputs,
    *,
    threads: int,
    seed: int,
    on_bad_row: str,
    text_case: str,
    min_samples: int,
) -> str:
    from hne_core.data.corpus import write_prepared

    root = inputs["corpus"] if "corpus" in inputs else os.path.dirname(inputs["tsvs"][0])
    lang_dir = find_language_dir(root)
    manifest, drops = prepare_commonvoice(
        lang_dir,
        outputs.wavs,
        classes=settings["classes"],
        multi_accent=settings["multi_accent"],
        splits_subsample=settings["subsample"],
        seed=seed,
        on_bad_row=on_bad_row,
        text_case=text_case,
        processes=threads,
        min_samples=min_samples,
        labels=settings.get("labels", {}),
    )
    write_prepared(manifest, drops, str(lang_dir), outputs.manifest, outputs.dropped)
    return f"kept {len(manifest)} utterances, dropped {len(drops.rows)} rows"


# ----------------------------------------------------------------------------------------------------------
# Getting the corpus
# ----------------------------------------------------------------------------------------------------------


def extract_archive(archive: str | Path, dest: str | Path) -> Path:
    """Unpack a ``cv-corpus-*-en.tar.gz`` into ``dest``; returns ``dest``.

    Extraction goes to a temporary sibling that is renamed onto ``dest`` only once complete, so an
    interrupted run never leaves a half corpus that looks whole. ``filter="data"`` refuses members that
    would escape ``dest`` (absolute paths, ``..``, links outside), device files and the like.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise DataError(
            f"{archive}: Common Voice archive not found (download it with the MDC API key "
            f"{MDC_KEY_ENV}, or place a cv-corpus-*-en.tar.gz there)"
        )
    try:
        with atomic_dir(dest) as tmp, tarfile.open(archive, mode="r:*") as tar:
            tar.extractall(tmp, filter="data")
    except (tarfile.TarError, EOFError, OSError) as exc:  # FilterError is a TarError; BadGzipFile an OSError
        raise DataError(f"{archive}: cannot extract ({type(exc).__name__}: {exc})") from exc
    return dest


def download_mdc(dataset_id: str, dest: str | Path, show_progress: bool = True) -> Path:
    """Download a Common Voice release from Mozilla Data Collective into ``dest``; returns the archive path.

    Uses the ``datacollective`` SDK (``download_dataset``), which resumes interrupted downloads and skips an
    archive already complete. The key is read from the environment variable ``MDC_API_KEY``; the dataset's
    terms must have been accepted on the MDC site with the account that owns the key.
    """
    if not os.environ.get(MDC_KEY_ENV, "").strip():
        raise DataError(
            f"{MDC_KEY_ENV} is not set: create an API key on https://mozilladatacollective.com, "
            f"accept the terms of dataset {dataset_id!r} there, and export {MDC_KEY_ENV}=<key>"
        )
    try:
        import datacollective
        import requests
        from datacollective.errors import AuthenticationError
    except ImportError as exc:
        raise DataError("the 'datacollective' package is missing: pip install -r requirements.txt") from exc
    Path(dest).mkdir(parents=True, exist_ok=True)
    try:
        path = datacollective.download_dataset(dataset_id, download_directory=str(dest), show_progress=show_progress)
    except AuthenticationError as exc:  # HTTP 401
        raise DataError(_rejected(dataset_id, exc)) from exc
    except PermissionError as exc:
        if exc.errno is not None:  # a local file-system error, not the API's 403
            raise DataError(f"{dest}: cannot write the download ({exc})") from exc
        raise DataError(_rejected(dataset_id, exc)) from exc
    except FileNotFoundError as exc:  # HTTP 404 / 410
        raise DataError(f"Mozilla Data Collective has no dataset {dataset_id!r} ({exc})") from exc
    except requests.RequestException as exc:
        raise DataError(
            f"cannot download dataset {dataset_id!r} from Mozilla Data Collective ({exc}); a rerun resumes the download"
        ) from exc
    return Path(path)


def _rejected(dataset_id: str, exc: Exception) -> str:
    return (
        f"Mozilla Data Collective rejected the key in {MDC_KEY_ENV} for dataset {dataset_id!r}: check the "
        f"key, and accept the dataset's terms on its page at https://mozilladatacollective.com with the "
        f"account that owns the key ({exc})"
    )


# ----------------------------------------------------------------------------------------------------------
# Reading the TSVs
# ----------------------------------------------------------------------------------------------------------


def read_split_tsv(path: str | Path) -> pd.DataFrame:
    """One CV TSV, every field a string (a short line's missing fields are empty). QUOTE_NONE because
    sentences hold quotes; blank lines are kept as rows (logged ``blank_line``) so row numbers stay the file's."""
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: Common Voice split file not found")
    try:
        frame = pd.read_csv(
            path,
            sep="\t",
            quoting=csv.QUOTE_NONE,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding="utf-8",
        )
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        # A line with the wrong field count: row numbers after it cannot be trusted, so no skipping.
        raise DataError(f"{path}: malformed TSV ({exc})") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path}: missing columns {missing}; columns are {list(frame.columns)}")
    return frame


def read_splits(lang_dir: str | Path) -> tuple[dict[str, pd.DataFrame], AccentSchema]:
    """CV's own train/dev/test TSVs and their one accent schema (detected over all three files at once, so
    a small dev file cannot be misread)."""
    import pandas as pd

    from hne_core.data.accents import detect_accent_schema

    lang_dir = Path(lang_dir)
    tables = {split: read_split_tsv(lang_dir / name) for split, name in SPLIT_FILES.items()}
    schemas = {}
    for split, frame in tables.items():
        schemas[split] = detect_accent_schema(frame.columns, [], source=str(lang_dir / SPLIT_FILES[split])).column
    if len(set(schemas.values())) > 1:
        raise DataError(
            f"{lang_dir}: the split files disagree on the accent column ({schemas}); they must come from one release"
        )
    column = next(iter(schemas.values()))
    values = pd.concat([t[column] for t in tables.values()]).unique()
    columns = next(iter(tables.values())).columns
    return tables, detect_accent_schema(columns, values, source=str(lang_dir))


# ----------------------------------------------------------------------------------------------------------
# Rows -> candidates
# ----------------------------------------------------------------------------------------------------------


def _speaker(client_id: str) -> str:
    return client_id.strip()[:SPEAKER_CHARS]


def _utt_id(speaker: str, clip: str) -> str:
    return f"{speaker}-{Path(clip).stem}"


def _candidates(
    split: str,
    tsv: str,
    frame: pd.DataFrame,
    schema: AccentSchema,
    classes: AccentClasses,
    text_case: str,
    bad: BadRows,
    drops: DropLog,
    seen: dict[str, tuple[str, int]],
    owners: dict[str, str],
    maps: tuple[LabelMap, ...] = (),
) -> list[SourceRow]:
    """The rows of one TSV that map to a class, have a transcript and good task values (``maps``); every other
    row goes to ``drops``."""
    verdicts: dict[str, AccentOutcome] = {}
    out: list[SourceRow] = []
    for idx, rec in enumerate(frame.to_dict(orient="records")):
        row = idx + 1
        if not any(str(v).strip() for v in rec.values()):  # a blank line: nothing to keep, nothing wrong
            drops.add(split, tsv, row, "", "blank_line", "")
            continue
        client_id, clip = rec["client_id"].strip(), rec["path"].strip()
        raw_accent, raw_text = rec[schema.column], rec["sentence"]
        speaker = _speaker(client_id)
        utt_id = _utt_id(speaker, clip) if client_id and clip else ""
        if not client_id or not clip or any(c.isspace() for c in client_id + clip):
            bad(split, tsv, row, clip, utt_id, "malformed_row", f"client_id {client_id!r}, path {clip!r}")
            continue
        if owners.setdefault(speaker, client_id) != client_id:
            raise DataError(
                f"{tsv}: row {row}: client ids {owners[speaker]!r} and {client_id!r} share the first "
                f"{SPEAKER_CHARS} characters, so speaker ids would collide"
            )
        if raw_accent not in verdicts:
            verdicts[raw_accent] = classes.classify(raw_accent, schema)
        verdict = verdicts[raw_accent]
        if verdict.reason == "unknown_accent":
            bad(split, tsv, row, clip, utt_id, verdict.reason, verdict.detail)
            continue
        if verdict.reason is not None:
            drops.add(split, tsv, row, utt_id, verdict.reason, verdict.detail)
            continue
        text = normalize_transcript(raw_text, text_case)
        if not text:
            bad(split, tsv, row, clip, utt_id, "empty_sentence", f"sentence {raw_text!r} is empty once normalised")
            continue
        task_labels, bad_map = label_row(maps, rec)
        if bad_map is not None:
            bad(split, tsv, row, clip, utt_id, BAD_LABEL, bad_map.classify(rec[bad_map.column]).detail)
            continue
        if clip in seen:
            first_tsv, first_row = seen[clip]
            bad(split, tsv, row, clip, utt_id, "duplicate_clip", f"clip already used by {first_tsv} row {first_row}")
            continue
        seen[clip] = (tsv, row)
        accent, accent_id = verdict.accent, verdict.accent_id
        raw_labels = {m.column: rec[m.column] for m in maps}
        out.append(
            SourceRow(
                *(split, tsv, row, clip, speaker, utt_id, accent, accent_id, text, raw_text, raw_accent),
                labels=task_labels,
                raw_labels=raw_labels,
            )
        )
    return out


def subsample(rows: list[SourceRow], n: int | None, seed: int, split: str, drops: DropLog) -> list[SourceRow]:
    """A seeded random ``n`` of ``rows`` (all when ``n`` is None or not smaller), in file order; the rest are
    logged as ``subsampled``. Drawn in the main process from the seed and split name only, so it does not
    depend on the number of worker processes."""
    if n is None or n >= len(rows):
        return rows
    rng = random.Random(f"commonvoice-subsample:{seed}:{split}")
    chosen = set(rng.sample(range(len(rows)), n))
    for i, r in enumerate(rows):
        if i not in chosen:
            drops.add(r.split, r.source_tsv, r.source_row, r.utt_id, "subsampled", f"{n} of {len(rows)} drawn")
    return [r for i, r in enumerate(rows) if i in chosen]


# ----------------------------------------------------------------------------------------------------------
# Audio
# ----------------------------------------------------------------------------------------------------------


def _convert(job: tuple[str, str, int]) -> tuple[int | None, str, str]:
    """MP3 -> 16 kHz WAV in a worker. Returns (samples, "", "") or (None, reason, detail).

    An existing WAV is reused: it was written atomically from the same immutable CV clip.
    """
    from hne_core.data.audio import AudioError, convert_to_wav16, wav_info

    src, dst, min_samples = job
    if not os.path.isfile(src) and os.path.isfile(src + ".mp3"):  # some early releases omit the extension
        src += ".mp3"
    if not os.path.isfile(src):
        return None, "missing_clip", f"{src}: clip not found"
    if os.path.exists(dst):
        try:
            samples = wav_info(dst)[0]
        except AudioError:
            samples = -1  # not expected (writes are atomic), but then convert again
        if samples >= min_samples:
            return samples, "", ""
    try:
        return convert_to_wav16(src, dst, min_samples=min_samples), "", ""
    except AudioError as exc:
        return None, exc.reason, str(exc)


def _convert_all(jobs: list[tuple[str, str, int]], processes: int, on_result) -> None:
    """Run ``_convert`` over ``jobs`` in order (results come back in job order whatever ``processes`` is)."""
    from hne_core.parallel import parallel_map

    for i, result in enumerate(parallel_map(_convert, jobs, processes)):
        on_result(i, result)


def _remove_stale_wavs(wav_dir: Path, keep: set[str]) -> None:
    """The WAV folder holds exactly the corpus the manifest describes (reruns with other settings)."""
    for path in wav_dir.glob("*.wav"):
        if str(path) not in keep:
            path.unlink()


# ----------------------------------------------------------------------------------------------------------
# The whole preparation
# ----------------------------------------------------------------------------------------------------------


def _check_subsample(splits_subsample: Mapping[str, int | None]) -> dict[str, int | None]:
    unknown = set(splits_subsample) - set(SPLITS)
    if unknown:
        raise DataError(f"subsample: unknown splits {sorted(unknown)}; expected {SPLITS}")
    out: dict[str, int | None] = {}
    for split in SPLITS:
        n = splits_subsample.get(split)
        if n is not None and (isinstance(n, bool) or not isinstance(n, int) or n < 1):
            raise DataError(f"subsample.{split}: expected a positive integer or null (all), got {n!r}")
        out[split] = n
    return out


def prepare_commonvoice(
    lang_dir: str | Path,
    wav_dir: str | Path,
    classes: Mapping[str, Mapping],
    multi_accent: str = "drop",
    splits_subsample: Mapping[str, int | None] | None = None,
    seed: int = 0,
    on_bad_row: str = "error",
    text_case: str = "upper",
    processes: int = 1,
    min_samples: int = 1,
    labels: Mapping[str, Mapping] | None = None,
) -> tuple[pd.DataFrame, DropLog]:
    """Common Voice's train/dev/test -> (manifest, drops), WAVs written to ``wav_dir``.

    ``classes``/``multi_accent``: see ``hne_core.data.accents``. ``splits_subsample``: per split a number of
    rows to draw (after accent and text filtering, before audio conversion) or None for all. ``min_samples``:
    a decoded clip shorter than this is ``empty_audio``. ``labels``: ``commonvoice.labels`` (task -> a column's
    ``LabelMap``). The manifest has ``MANIFEST_COLUMNS`` (accent = class name, accent_id = class index),
    ``EXTRA_COLUMNS``, then one column per task of ``labels`` (class name, '' for no label), in split then file
    order.

    ``wav_dir`` belongs to this function: WAVs of earlier runs that the manifest no longer names are removed,
    and WAVs already there for a kept clip are reused. Raised whatever ``on_bad_row`` says: a missing or
    malformed TSV, no accent column, a task's column missing from a TSV, a bad config, two client ids whose
    16-character speaker ids collide.
    """
    from hne_core.data.accents import AccentClasses
    from hne_core.data.audio import require_tool
    from hne_core.data.corpus import BadRows, DropLog, manifest_frame

    require_tool("ffmpeg")
    accent_classes = AccentClasses.from_config(classes, multi_accent)
    maps = label_maps(labels or {}, LABELS_KEY)
    sizes = _check_subsample(splits_subsample or {})
    lang_dir, wav_dir = Path(lang_dir), Path(wav_dir)
    drops = DropLog()
    bad = BadRows(on_bad_row, drops)
    tables, schema = read_splits(lang_dir)
    for split, frame in tables.items():
        _check_label_columns(str(lang_dir / SPLIT_FILES[split]), list(frame.columns), maps)
    seen: dict[str, tuple[str, int]] = {}
    owners: dict[str, str] = {}
    rows: list[SourceRow] = []
    for split in SPLITS:
        tsv = str(lang_dir / SPLIT_FILES[split])
        found = _candidates(
            split, tsv, tables[split], schema, accent_classes, text_case, bad, drops, seen, owners, maps
        )
        rows += subsample(found, sizes[split], seed, split, drops)

    wav_dir.mkdir(parents=True, exist_ok=True)
    jobs = [(str(lang_dir / "clips" / r.clip), str(wav_dir / f"{r.utt_id}.wav"), int(min_samples)) for r in rows]
    samples: dict[int, int] = {}

    def on_result(i: int, result: tuple[int | None, str, str]) -> None:
        n, reason, detail = result
        if n is None:
            r = rows[i]
            bad(r.split, r.source_tsv, r.source_row, r.clip, r.utt_id, reason, detail)
        else:
            samples[i] = n

    _convert_all(jobs, max(1, int(processes)), on_result)
    kept = [i for i in range(len(rows)) if i in samples]
    _remove_stale_wavs(wav_dir, {jobs[i][1] for i in kept})
    if maps:
        log.info(
            "task labels of the kept rows: %s", describe_tally(tally_labels(maps, (rows[i].raw_labels for i in kept)))
        )
    tasks = [m.task for m in maps]
    frame = manifest_frame([rows[i] for i in kept], [jobs[i][1] for i in kept], [samples[i] for i in kept], tasks)
    return frame, drops


def _check_label_columns(tsv: str, columns: list[str], maps: tuple[LabelMap, ...]) -> None:
    """Every task's column is in the TSV: without it no row has a label, which is a config or release mistake,
    not a row's."""
    for m in maps:
        if m.column not in columns:
            raise DataError(
                f"{tsv}: no column {m.column!r}, which {m.key}.column names for task {m.task!r}; columns are {columns}"
            )


def speakers_in_several_splits(manifest: pd.DataFrame) -> dict:
    """Speakers that CV placed in more than one of its splits (kept as CV defines them): a count per split
    pair and the speaker ids, for the data report."""
    per_speaker = manifest.groupby("speaker")["split"].agg(lambda s: tuple(x for x in SPLITS if x in set(s)))
    shared = per_speaker[per_speaker.map(len) > 1]
    pairs: dict[str, int] = {}
    for splits in shared:
        for a_i, a in enumerate(splits):
            for b in splits[a_i + 1 :]:
                pairs[f"{a}+{b}"] = pairs.get(f"{a}+{b}", 0) + 1
    return {
        "speakers": int(len(per_speaker)),
        "in_several_splits": int(len(shared)),
        "pairs": pairs,
        "speaker_ids": sorted(shared.index),
    }
