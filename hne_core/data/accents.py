"""Common Voice accent metadata -> the configured accent classes, or a named reason for not keeping a row.

Common Voice has stored a speaker's accent in three ways, and one corpus must come out the same whichever
release the user holds:

- CV <= 7.0: column ``accent``, one short code per row (``us``, ``indian``, ``england``, ...; see
  ``CV_ACCENT_CODES``; ``southatlandtic`` is CV's own spelling);
- CV >= 8.0: column ``accents``, free text the speaker chose or typed, several labels joined by commas, e.g.
  ``United States English,India and South Asia (India, Pakistan, Sri Lanka)``;
- Hugging Face repacks of CV >= 8.0: column ``accent`` holding that same free text.

``detect_accent_schema`` tells them apart from the columns and values. Free text is never split on a bare
comma, because CV's own labels contain commas: known labels (CV's official ones and the configured ones) are
matched first, longest first, case-insensitively, whitespace-trimmed; anything else is split only on commas
outside parentheses. Repeated labels in one row count once.

Classes come from the config (section ``commonvoice:``), ordered: the class index is the position::

    classes:
      us:     {codes: [us],     labels: ["United States English"]}
      indian: {codes: [indian], labels: ["India and South Asia (India, Pakistan, Sri Lanka)"]}
    multi_accent: drop   # drop | unique_class | first

Multi-accent policy (a row whose free text holds more than one label):

- ``drop``: the row is dropped (reason ``multi_accent``), whatever its labels map to: the paper's classes
  are speakers of one accent, and a self-described mix is not clean evidence of either;
- ``unique_class``: kept when its labels map to exactly one configured class (labels that map to no class
  are ignored); dropped as ``multi_accent_conflict`` when they map to two or more;
- ``first``: only the first label counts, as if the row held that label alone.

Outcomes that are not a class: ``no_accent`` (empty), ``other_accent`` (labels or a code that map to no
configured class), ``multi_accent``, ``multi_accent_conflict``: these are selection, counted in the drop
log. ``unknown_accent`` (a code-schema value that is no Common Voice code) is bad input instead: the caller
raises or skips it by its ``on_bad_row`` setting.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from hne_core.data.errors import DataError

# CV <= 7.0 accent codes and the labels CV's web app showed for them (the labels CV >= 8.0 stores).
CV_CODE_LABELS: dict[str, str | None] = {
    "us": "United States English",
    "australia": "Australian English",
    "england": "England English",
    "canada": "Canadian English",
    "philippines": "Filipino",
    "hongkong": "Hong Kong English",
    "indian": "India and South Asia (India, Pakistan, Sri Lanka)",
    "ireland": "Irish English",
    "malaysia": "Malaysian English",
    "newzealand": "New Zealand English",
    "scotland": "Scottish English",
    "singapore": "Singaporean English",
    "southatlandtic": "South Atlantic (Falkland Islands, Saint Helena)",
    "african": "Southern African (South Africa, Zimbabwe, Namibia)",
    "wales": "Welsh English",
    "bermuda": "West Indies and Bermuda (Bahamas, Bermuda, Jamaica, Trinidad)",
    "other": None,
}
CV_ACCENT_CODES: frozenset[str] = frozenset(CV_CODE_LABELS)
CV_OFFICIAL_LABELS: tuple[str, ...] = tuple(v for v in CV_CODE_LABELS.values() if v)

MULTI_ACCENT_POLICIES: tuple[str, ...] = ("drop", "unique_class", "first")
DROP_REASONS: tuple[str, ...] = ("no_accent", "other_accent", "unknown_accent", "multi_accent", "multi_accent_conflict")
BAD_INPUT_REASONS: frozenset[str] = frozenset({"unknown_accent"})

_SPACES = re.compile(r"\s+")


def _key(text: str) -> str:
    """Comparison key of a label or code: case-folded, trimmed, inner whitespace collapsed."""
    return _SPACES.sub(" ", text).strip().casefold()


@dataclass(frozen=True)
class AccentSchema:
    """Where a TSV keeps the accent and how: ``codes`` (CV <= 7.0) or ``free_text`` (CV >= 8.0, HF repacks)."""

    column: str
    kind: Literal["codes", "free_text"]


def detect_accent_schema(columns: Iterable[str], values: Iterable[str], source: str = "TSV") -> AccentSchema:
    """Pick the accent column and its kind.

    ``accents`` is always free text (CV >= 8.0). ``accent`` holds codes in CV <= 7.0 but free text in Hugging
    Face repacks, so its values decide: codes when at least half of its non-empty values are CV codes (the
    rest then count as ``unknown_accent``, bad input), free text otherwise. ``source`` names the file in
    the error raised when there is no accent column at all.
    """
    cols = list(columns)
    if "accents" in cols:
        return AccentSchema("accents", "free_text")
    if "accent" not in cols:
        raise DataError(
            f"{source}: no accent column ('accents' for Common Voice >= 8.0, 'accent' for <= 7.0 "
            f"and Hugging Face repacks); columns are {cols}"
        )
    filled = [_key(v) for v in values if v and v.strip()]
    known = sum(v in CV_ACCENT_CODES for v in filled)
    kind: Literal["codes", "free_text"] = "codes" if 2 * known >= len(filled) else "free_text"
    return AccentSchema("accent", kind)


def split_accent_labels(text: str, known_labels: Iterable[str] = CV_OFFICIAL_LABELS) -> list[str]:
    """Split a free-text accent cell into its labels, never on a comma that belongs to a label.

    At each position the longest known label that ends the cell or is followed by a comma is taken whole;
    otherwise the label runs to the next comma at parenthesis depth 0 (an unclosed parenthesis keeps the
    rest of the cell as one label). Labels are trimmed; empty pieces and repeats (case-insensitive) go.
    """
    known = _compile_known(tuple(known_labels))
    labels: list[str] = []
    i, n = 0, len(text)
    while i < n:
        while i < n and (text[i].isspace() or text[i] == ","):
            i += 1
        if i >= n:
            break
        end = _match_known(text, i, known)
        if end is None:
            end = _next_top_level_comma(text, i)
        piece = _SPACES.sub(" ", text[i:end]).strip()
        if piece and _key(piece) not in {_key(x) for x in labels}:  # a repeated label counts once
            labels.append(piece)
        i = end + 1
    return labels


@functools.lru_cache(maxsize=64)
def _compile_known(known_labels: tuple[str, ...]) -> tuple[re.Pattern[str], ...]:
    """One anchored pattern per known label, longest first; a label must end at a comma or the cell end."""
    keys = sorted({_key(k) for k in known_labels if k and k.strip()}, key=lambda k: (-len(k), k))
    return tuple(
        re.compile(r"\s+".join(re.escape(w) for w in k.split(" ")) + r"(?=\s*(?:,|$))", re.IGNORECASE) for k in keys
    )


def _match_known(text: str, start: int, known: Sequence[re.Pattern[str]]) -> int | None:
    """End index (exclusive) of the longest known label at ``start``, or None."""
    for pattern in known:  # longest first
        m = pattern.match(text, start)
        if m:
            return m.end()
    return None


def _next_top_level_comma(text: str, start: int) -> int:
    depth = 0
    for j in range(start, len(text)):
        ch = text[j]
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth = max(0, depth - 1)
        elif ch == "," and depth == 0:
            return j
    return len(text)


@dataclass(frozen=True)
class AccentOutcome:
    """One row's verdict: a class (``accent``, ``accent_id``) or a drop ``reason``, with the labels seen."""

    accent: str | None
    accent_id: int | None
    reason: str | None
    labels: tuple[str, ...]
    detail: str = ""

    @property
    def kept(self) -> bool:
        return self.accent is not None


@dataclass(frozen=True)
class AccentClasses:
    """The configured classes and multi-accent policy, with lookup tables from codes and labels."""

    names: tuple[str, ...]
    code_to_class: Mapping[str, str]
    label_to_class: Mapping[str, str]
    labels: tuple[str, ...]
    multi_accent: str

    @classmethod
    def from_config(
        cls, classes: Mapping[str, Mapping], multi_accent: str = "drop", key: str = "commonvoice"
    ) -> AccentClasses:
        """Validate ``classes`` / ``multi_accent`` (config section ``key``); errors name the offending key."""
        if multi_accent not in MULTI_ACCENT_POLICIES:
            raise DataError(f"{key}.multi_accent: {multi_accent!r} is not one of {MULTI_ACCENT_POLICIES}")
        if not isinstance(classes, Mapping) or not classes:
            raise DataError(f"{key}.classes: expected a non-empty mapping of class name -> {{codes, labels}}")
        code_to_class: dict[str, str] = {}
        label_to_class: dict[str, str] = {}
        labels: list[str] = []
        for name, spec in classes.items():
            where = f"{key}.classes.{name}"
            if not isinstance(spec, Mapping) or set(spec) - {"codes", "labels"}:
                raise DataError(f"{where}: expected a mapping with keys 'codes' and/or 'labels', got {spec!r}")
            codes, names = list(spec.get("codes") or []), list(spec.get("labels") or [])
            if not codes and not names:
                raise DataError(f"{where}: give at least one Common Voice code or label")
            for code in codes:
                k = _key(str(code))
                if k not in CV_ACCENT_CODES:
                    raise DataError(
                        f"{where}.codes: {code!r} is not a Common Voice accent code ({sorted(CV_ACCENT_CODES)})"
                    )
                _claim(code_to_class, k, name, f"{where}.codes")
            for label in names:
                _claim(label_to_class, _key(str(label)), name, f"{where}.labels")
                labels.append(str(label))
        return cls(tuple(str(n) for n in classes), code_to_class, label_to_class, tuple(labels), multi_accent)

    def known_labels(self) -> tuple[str, ...]:
        return tuple(self.labels) + CV_OFFICIAL_LABELS

    def classify(self, value: str, schema: AccentSchema) -> AccentOutcome:
        """The outcome of one accent cell under ``schema``."""
        if not value or not value.strip():
            return self._drop("no_accent", ())
        if schema.kind == "codes":
            return self._classify_code(value)
        return self._classify_labels(split_accent_labels(value, self.known_labels()))

    def _classify_code(self, value: str) -> AccentOutcome:
        code = _key(value)
        if code not in CV_ACCENT_CODES:
            return self._drop(
                "unknown_accent", (value.strip(),), f"{value.strip()!r} is not a Common Voice accent code"
            )
        name = self.code_to_class.get(code)
        return self._keep(name, (code,)) if name else self._drop("other_accent", (code,))

    def _classify_labels(self, labels: list[str]) -> AccentOutcome:
        if not labels:
            return self._drop("no_accent", ())
        if self.multi_accent == "first":
            labels = labels[:1]
        if len(labels) > 1 and self.multi_accent == "drop":
            return self._drop("multi_accent", tuple(labels), f"{len(labels)} labels")
        hits = list(dict.fromkeys(c for c in (self.label_to_class.get(_key(x)) for x in labels) if c))
        if not hits:
            return self._drop("other_accent", tuple(labels))
        if len(hits) > 1:
            return self._drop("multi_accent_conflict", tuple(labels), f"classes {hits}")
        return self._keep(hits[0], tuple(labels))

    def _keep(self, name: str, labels: tuple[str, ...]) -> AccentOutcome:
        return AccentOutcome(name, self.names.index(name), None, labels)

    @staticmethod
    def _drop(reason: str, labels: tuple[str, ...], detail: str = "") -> AccentOutcome:
        return AccentOutcome(None, None, reason, labels, detail or " | ".join(labels))


def _claim(table: dict[str, str], k: str, name: str, where: str) -> None:
    """Record that code/label ``k`` means class ``name``; two classes claiming one key is a config error."""
    if k in table and table[k] != name:
        raise DataError(
            f"{where}: {k!r} is already claimed by class {table[k]!r}; a code or label may map to one class only"
        )
    table[k] = name
