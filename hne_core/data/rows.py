"""One kept row of a source's table, the shape every table-reading source (Common Voice, a folder) hands to the
manifest. Standard library only: the folder source's module must import without pandas (``sources`` registry)."""

from __future__ import annotations

from dataclasses import dataclass, field

# The manifest's columns after ``corpus.MANIFEST_COLUMNS``: where each utterance came from, as the source read it.
# A source with task labels (``hne_core.data.labels``) adds one column per task after these.
EXTRA_COLUMNS: tuple[str, ...] = ("raw_text", "raw_accent", "source_tsv", "source_row", "clip")


@dataclass
class SourceRow:
    """A row that passed the accent and text checks: where it came from and what it becomes."""

    split: str
    source_tsv: str
    source_row: int
    clip: str
    speaker: str
    utt_id: str
    accent: str
    accent_id: int
    text: str
    raw_text: str
    raw_accent: str
    audio: str = ""  # the recording's path, where the source resolves it itself (a folder: against its TSV)
    labels: dict[str, str] = field(default_factory=dict)  # task -> class name, '' for no label
    raw_labels: dict[str, str] = field(default_factory=dict)  # source column -> cell, to count why labels are missing
