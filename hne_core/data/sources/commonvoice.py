"""Source ``commonvoice``: Mozilla Common Voice English (the paper's corpus; ``hne_core.data.commonvoice``).

``commonvoice.archive`` is a ``cv-corpus-*-en.tar.gz`` or its extracted folder, or ``commonvoice.mdc_dataset_id``
names a Mozilla Data Collective download. A folder is read in place (its three split TSVs are the prepare job's
inputs); anything else goes through ``fetch_commonvoice`` (``rules/sources/commonvoice.smk``), which extracts
it under ``<resources>/commonvoice/corpus``.

Classes: ``commonvoice.classes: {name: {codes: [...], labels: [...]}}`` (``hne_core.data.accents``).

The folder layout is here rather than in ``hne_core.data.commonvoice`` because the workflow reads it while it
parses (to name the TSVs of a folder read in place), and this module imports nothing heavy.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from hne_core.data.errors import ConfigError, DataError
from hne_core.data.sources import Outputs, Paths
from hne_core.data.sources import class_names as _class_names

RULE = "prepare_commonvoice"
DATA_KEYS: tuple[str, ...] = ("seed", "on_bad_row", "text_case", "min_samples")
SPLIT_FILES: dict[str, str] = {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"}
CORPUS_DIR = "commonvoice/corpus"  # under the resources folder: where fetch_commonvoice extracts the release


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
    return {k: section[k] for k in ("classes", "multi_accent", "subsample")}


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
    from hne_core.data.commonvoice import prepare_commonvoice
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
    )
    write_prepared(manifest, drops, str(lang_dir), outputs.manifest, outputs.dropped)
    return f"kept {len(manifest)} utterances, dropped {len(drops.rows)} rows"
