"""Auxiliary tasks' labels: a source's own column mapped to a task's classes, the manifest's task columns (a class
name, or '' for no label) and their ESPnet label files.

A source maps a column of its TSVs (Common Voice's ``gender`` and ``age``, a folder's columns) through a
``LabelMap`` (config ``<source>.labels.<task>``) into a manifest column named after the task; the self-made corpus
fills ``sex`` from the espeak-ng variant itself. ``corpus.write_task_labels`` turns one split of such a column into
``labels_<task>``: ``<utt_id> <class index>`` lines, -1 where the utterance has no label, so that the model's
masked loss leaves it out of that task only (it still trains ASR and the other heads).

Imports at module level are the standard library's only: the workflow imports the data package (and the sources
check their ``labels`` with ``label_maps``) while it parses; pandas is imported inside the functions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from hne_core.data.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

MISSING_LABEL = -1  # "no label" in a label file; the model's masked cross-entropy skips it
BAD_LABEL = "bad_label"  # the drop reason of a row whose value is neither mapped nor unknown (data.on_bad_row)
# Why a kept row has no label: an empty cell, a value listed as unknown, or a multi-valued cell whose values map
# to more than one class (a self-described mix is no evidence of either, as for accents).
NO_LABEL_REASONS: tuple[str, ...] = ("empty", "unknown", "ambiguous")
_SPACES = re.compile(r"\s+")


def _key(text: str) -> str:
    """Comparison key of a raw value: case-folded, trimmed, inner whitespace collapsed (as accent values are), so
    that ``Female`` and ``female `` are one value."""
    return _SPACES.sub(" ", text).strip().casefold()


@dataclass(frozen=True)
class LabelOutcome:
    """One cell's verdict: ``label`` is a class name, '' (no label; ``reason`` says why) or None (a bad value;
    ``detail`` says what for the error or the drop log)."""

    label: str | None
    reason: str = ""
    detail: str = ""


@dataclass(frozen=True)
class LabelMap:
    """How one column of a source's table gives one task's labels: ``values`` {class: [raw values]}, ``unknown``
    [raw values that carry no label]. Raw values match case-insensitively with whitespace collapsed. ``key`` is
    the config key, named in errors."""

    task: str
    column: str
    values: Mapping[str, tuple[str, ...]]
    unknown: tuple[str, ...] = ("",)
    key: str = ""
    _lookup: dict[str, str] = field(default_factory=dict, init=False, repr=False, compare=False)
    _seen: dict[str, LabelOutcome] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        """Build the value -> class table ('' for unknown values), refusing a value claimed twice: it would give
        a row a label that depends on the order of the config."""
        where = self.key or f"labels.{self.task}"
        for name, raws in [*self.values.items(), ("", self.unknown)]:
            for raw in raws:
                k = _key(raw)
                claimed = self._lookup.setdefault(k, name)
                if claimed != name:
                    owners = " and ".join(f"class {c!r}" if c else "unknown" for c in (claimed, name))
                    raise ConfigError(f"{where}.values", f"value {raw!r} is claimed by {owners}; give it one place")

    @classmethod
    def from_config(cls, task: str, spec: Mapping, key: str | None = None) -> LabelMap:
        """A task's ``{column, values: {class: [raw]}, unknown: [raw]}`` (``unknown`` defaults to ['']); a shape the
        schema would refuse is a ConfigError naming ``key`` (default ``labels.<task>``), for callers that run
        without the schema (tests, a source's ``check``)."""
        key = key or f"labels.{task}"
        if not isinstance(spec, Mapping) or set(spec) - {"column", "values", "unknown"}:
            raise ConfigError(key, f"expected {{column, values, unknown}}, got {spec!r}")
        column, values, unknown = spec.get("column"), spec.get("values"), spec.get("unknown", [""])
        if not isinstance(column, str) or not column.strip():
            raise ConfigError(f"{key}.column", f"expected the name of a column, got {column!r}")
        if not isinstance(values, Mapping) or not values or not all(_strings(v, 1) for v in values.values()):
            raise ConfigError(f"{key}.values", f"expected {{class: [column values]}}, got {values!r}")
        if not _strings(unknown, 0):
            raise ConfigError(f"{key}.unknown", f"expected a list of column values, got {unknown!r}")
        return cls(str(task), column.strip(), {str(c): tuple(v) for c, v in values.items()}, tuple(unknown), key=key)

    def classify(self, raw: str) -> LabelOutcome:
        """The verdict on one cell, memoised per distinct cell (a release has millions of rows, few values)."""
        if raw not in self._seen:
            self._seen[raw] = self._classify(raw)
        return self._seen[raw]

    def label_of(self, raw: str) -> str | None:
        """The class name; '' for an empty cell, an unknown value or an ambiguous multi-valued cell (the row is
        kept: it still trains ASR and the other tasks); None for a bad value (a typo or a release's new value,
        which must not silently become "no label")."""
        return self.classify(raw).label

    def _classify(self, raw: str) -> LabelOutcome:
        if not raw.strip():
            return LabelOutcome("", "empty")
        name = self._lookup.get(_key(raw))
        if name is not None:
            return LabelOutcome(name, "" if name else "unknown")
        pieces = _split_values(raw, self._raw_values())
        unmapped = [p for p in pieces if _key(p) not in self._lookup]
        if not pieces or unmapped:
            return LabelOutcome(None, BAD_LABEL, self._bad_detail(raw, unmapped))
        classes = list(dict.fromkeys(c for c in (self._lookup[_key(p)] for p in pieces) if c))
        if len(classes) > 1:
            return LabelOutcome("", "ambiguous", f"{self.column} {raw!r}: classes {classes}")
        return LabelOutcome(classes[0], "") if classes else LabelOutcome("", "unknown")

    def _raw_values(self) -> tuple[str, ...]:
        return tuple(r for raws in [*self.values.values(), self.unknown] for r in raws if r.strip())

    def _bad_detail(self, raw: str, unmapped: list[str]) -> str:
        part = f" ({unmapped[0]!r} in it)" if unmapped and [_key(u) for u in unmapped] != [_key(raw)] else ""
        return (
            f"{self.column} {raw!r}{part} is neither a value of a {self.task} class ({list(self.values)}) nor an "
            f"unknown value (config {self.key or f'labels.{self.task}'})"
        )


def _strings(value: object, at_least: int) -> bool:
    return isinstance(value, list | tuple) and len(value) >= at_least and all(isinstance(x, str) for x in value)


def _split_values(raw: str, known: tuple[str, ...]) -> list[str]:
    """A multi-valued cell's values, split as accent cells are (``hne_core.data.accents.split_accent_labels``:
    known values whole first, else on commas outside parentheses), so a value that holds a comma stays one."""
    from hne_core.data.accents import split_accent_labels

    return split_accent_labels(raw, known)


def label_maps(labels: Mapping | None, key: str) -> tuple[LabelMap, ...]:
    """A source's ``labels`` section (``key``: its config key, e.g. ``commonvoice.labels``), one map per task in
    config order."""
    if labels is None:
        return ()
    if not isinstance(labels, Mapping):
        raise ConfigError(key, f"expected {{task: {{column, values, unknown}}}}, got {labels!r}")
    return tuple(LabelMap.from_config(str(task), spec, f"{key}.{task}") for task, spec in labels.items())


def label_columns(maps: Iterable[LabelMap]) -> list[str]:
    """The source columns the maps read, once each in order: a TSV must have them all."""
    return list(dict.fromkeys(m.column for m in maps))


def label_row(maps: Sequence[LabelMap], record: Mapping[str, str]) -> tuple[dict[str, str], LabelMap | None]:
    """task -> label ('' for none) of one row (``record``: column -> raw cell), and the first map whose value is
    bad (None when every value is good): the caller reports it through its bad-row handling."""
    labels: dict[str, str] = {}
    for m in maps:
        label = m.label_of(record.get(m.column, ""))
        if label is None:
            return labels, m
        labels[m.task] = label
    return labels, None


def tally_labels(maps: Sequence[LabelMap], raw_rows: Iterable[Mapping[str, str]]) -> dict[str, Counter]:
    """task -> how many rows (column -> raw cell) got each (class, '') and each ('', reason for no label). The
    data report counts labels from the manifest; this says why some are missing, for the prepare job's log."""
    counts: dict[str, Counter] = {m.task: Counter() for m in maps}
    for record in raw_rows:
        for m in maps:
            outcome = m.classify(record.get(m.column, ""))
            counts[m.task][(outcome.label or "", outcome.reason)] += 1
    return counts


def describe_tally(counts: Mapping[str, Counter]) -> str:
    """One log line: ``sex: female 3, male 2, no label 4 (empty 1, unknown 2, ambiguous 1); age: ...``."""
    parts = []
    for task, c in counts.items():
        classes = [f"{label} {n}" for (label, _), n in sorted(c.items()) if label]
        why = [f"{reason} {c['', reason]}" for reason in NO_LABEL_REASONS if c["", reason]]
        missing = sum(n for (label, _), n in c.items() if not label)
        text = ", ".join([*classes, f"no label {missing}"])
        parts.append(f"{task}: {text} ({', '.join(why)})" if why else f"{task}: {text}")
    return "; ".join(parts)


# ----------------------------------------------------------------------------------------------------------
# The manifest's task columns: label files and the data report
# ----------------------------------------------------------------------------------------------------------


def summarize_task_labels(manifest: pd.DataFrame, tasks: Mapping[str, Mapping], splits: Sequence[str]) -> dict:
    """For the data report: task -> {classes, splits: {split: {classes: {class: n}, missing: n}}} for every
    configured task (``tasks``: config ``tasks``) whose column the manifest has; a class no utterance has counts 0
    (a task without one class in a split cannot be learnt or tested there). A value that is no class is counted
    under its own name, so the report shows it before ``task_labels`` refuses it. ``splits``: in report order."""
    out: dict[str, dict] = {}
    for task, spec in tasks.items():
        if task not in manifest.columns:
            continue
        classes = list(spec["classes"])
        values = manifest[task].astype(str)
        extra = sorted(set(values) - {"", *classes})
        per_split = {}
        for split in [s for s in splits if (manifest["split"] == s).any()]:
            counts = values[manifest["split"] == split].value_counts()
            per_split[split] = {
                "classes": {c: int(counts.get(c, 0)) for c in [*classes, *extra]},
                "missing": int(counts.get("", 0)),
            }
        out[task] = {"classes": classes, "splits": per_split}
    return out


def render_task_labels(summary: Mapping[str, Mapping], tasks: Iterable[str] = ()) -> list[str]:
    """The report's markdown section: one table per task (split x class, then missing labels); a configured task
    whose column the manifest lacks is named (its models cannot train on this source)."""
    absent = [t for t in tasks if t not in summary]
    if not summary and not absent:
        return []
    lines = ["## Task labels, per split and class (no label: left out of that task's loss only)", ""]
    for task, info in summary.items():
        names = list(next(iter(info["splits"].values()))["classes"]) if info["splits"] else info["classes"]
        lines += [
            f"### {task}",
            "",
            f"| split | {' | '.join(names)} | no label |",
            "|---|" + "---:|" * (len(names) + 1),
        ]
        for split, c in info["splits"].items():
            cells = " | ".join(str(c["classes"].get(n, 0)) for n in names)
            lines.append(f"| {split} | {cells} | {c['missing']} |")
        lines.append("")
    if absent:
        lines += [f"Not in this source's manifest (no labels): {', '.join(absent)}.", ""]
    return lines
