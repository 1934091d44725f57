"""One kept row of a source's table, the shape every table-reading source (Common Voice, a folder) hands to the
manifest. Standard library only: the folder source's module must import without pandas (``sources`` registry)."""

from __future__ import annotations

from dataclasses import dataclass

# The manifest's columns after ``corpus.MANIFEST_COLUMNS``: where each utterance came from, as the source read it.
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
