"""The data sources, one registry keyed by ``data.source``.

A source turns its own input (a plan it makes, a Common Voice release, a folder of recordings) into what the rest
of the data stage reads: ``manifest.tsv`` and ``dropped.tsv`` (``hne_core.data.corpus``) and 16 kHz mono WAVs.
Everything after that (ESPnet data directories, the report, training, attacks) is written once for every source.

Adding a source is one module here, one line in ``SOURCES``, and its section in the config schema
(``rules/schemas/config.schema.yaml``; the section is named as the source). A source that needs jobs before its
prepare job (a plan, a download) also declares them in ``rules/sources/<name>.smk``.

The workflow imports a source module while it parses, so a source module imports only the standard library (and
``hne_core.data.errors``) at module level; ``prepare`` imports the heavy work (pandas, audio) when the job runs.
A source module defines:

- ``RULE``: the name of its prepare job (its log is ``logs/data/<RULE>.log``);
- ``DATA_KEYS``: the ``data:``-wide settings its ``prepare`` reads, out of ``DATA_SETTINGS`` (given only those,
  so that changing another, say ``on_bad_row`` for a source without input rows, reruns nothing);
- ``class_names(section) -> list[str]``: accent class names in index order (``<source>.classes``: every source
  has the same shape, ``{class_name: {source-specific keys}}``, and the class index is the position);
- ``check(section)``: raise ``ConfigError`` (naming the key) for what the schema cannot say;
- ``settings(section) -> dict``: the section's values its prepare job reads (the job's ``params``: a change
  reruns it);
- ``inputs(section, paths) -> dict``: the prepare job's input files by name (upstream jobs' outputs or the
  user's files; ``paths`` says where the workflow keeps its folders);
- ``test_split_bound(section) -> (count or None, where)``: what is known, before any job runs, about how many
  test utterances there can be at most (``None``: nothing; the jobs check then);
- ``prepare(settings, inputs, outputs, *, threads, **data)``: write ``outputs`` (data: the ``DATA_KEYS``
  values); returns a line for the job's log.

Classes stay in each source's own section (not under ``data:``): Snakemake merges the maps of config files key by
key, so one shared class map would mix the classes of ``config.yaml``'s source with those of an overlay's.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from dataclasses import dataclass
from types import ModuleType

from hne_core.data.errors import ConfigError

# data.source -> the module that implements it
SOURCES: dict[str, str] = {
    "synthetic": "hne_core.data.sources.synthetic",
    "commonvoice": "hne_core.data.sources.commonvoice",
    "folder": "hne_core.data.sources.folder",
}
# the data-wide settings a source may read (config ``seed`` and ``data.*``), as its prepare receives them
DATA_SETTINGS: tuple[str, ...] = ("seed", "text_case", "min_samples", "on_bad_row")


@dataclass(frozen=True)
class Paths:
    """Where the workflow keeps things, for a source's ``inputs``: ``data_dir`` (``<results>/data``) and
    ``resources_dir`` (downloads and caches)."""

    data_dir: str
    resources_dir: str


@dataclass(frozen=True)
class Outputs:
    """What a prepare job writes: the manifest, the drop log and the folder of 16 kHz WAVs."""

    manifest: str
    dropped: str
    wavs: str


def get(name: str) -> ModuleType:
    """The module of source ``name`` (imported now, not before: only the configured source is ever loaded)."""
    if name not in SOURCES:
        raise ConfigError("data.source", f"unknown data source {name!r}; the sources are {sorted(SOURCES)}")
    return importlib.import_module(SOURCES[name])


def data_settings(source: ModuleType, cfg: Mapping) -> dict:
    """The data-wide values that ``source``'s prepare reads (``DATA_KEYS``), from a whole config."""
    unknown = set(source.DATA_KEYS) - set(DATA_SETTINGS)
    if unknown:
        raise ConfigError(
            "data.source",
            f"{source.__name__}.DATA_KEYS names {sorted(unknown)}, not data settings ({list(DATA_SETTINGS)})",
        )
    return {k: (cfg["seed"] if k == "seed" else cfg["data"][k]) for k in source.DATA_KEYS}


def class_names(section: Mapping, key: str) -> list[str]:
    """The class names of a source section in index order; the shared part of every source's ``class_names``.
    ``key`` names the section in errors."""
    classes = section.get("classes")
    if not isinstance(classes, Mapping):
        raise ConfigError(f"{key}.classes", f"expected a mapping of class name -> settings, got {classes!r}")
    bad = [name for name, spec in classes.items() if not isinstance(spec, Mapping)]
    if bad:
        raise ConfigError(
            f"{key}.classes.{bad[0]}", f"expected a mapping of the source's class keys, got {classes[bad[0]]!r}"
        )
    if len(classes) < 2:
        raise ConfigError(f"{key}.classes", f"at least two accent classes are needed, got {list(classes)}")
    return [str(name) for name in classes]
