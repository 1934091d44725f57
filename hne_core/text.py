"""Transcript normalisation shared by the data stage and by scoring.

One function, used both to write the ``text`` files the models train on and to normalise hypotheses and
references before WER, so that a scoring difference can never come from two spellings of one rule.
"""

from __future__ import annotations

import re
import unicodedata

# Typographic apostrophes and quotes that Common Voice sentences carry in many forms.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
_HYPHENS = re.compile(r"[\u2010-\u2015\-]+")
_NOT_KEPT = re.compile(r"[^A-Za-z' ]+")
_SPACES = re.compile(r"\s+")
_EDGE_APOSTROPHES = re.compile(r"(?:(?<=\s)|^)'+|'+(?=\s|$)")


def normalize_transcript(text: str, case: str = "upper") -> str:
    """Map free text onto the token set of an English ASR model: letters, apostrophes, single spaces.

    Accents are folded to ASCII (``café`` -> ``CAFE``), hyphens become spaces, other punctuation and digits are
    removed, quotes that only wrap words are dropped while in-word apostrophes (``DON'T``) stay, and the case
    follows ``case`` (``upper`` as in LibriSpeech, ``lower``, or ``keep``).
    """
    if case not in {"upper", "lower", "keep"}:
        raise ValueError(f"normalize_transcript: case must be upper, lower or keep, got {case!r}")
    text = unicodedata.normalize("NFKD", text).translate(_APOSTROPHES)
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = _HYPHENS.sub(" ", text)
    text = _NOT_KEPT.sub(" ", text)
    text = _SPACES.sub(" ", text).strip()
    text = _EDGE_APOSTROPHES.sub("", text)
    text = _SPACES.sub(" ", text).strip()
    if case == "upper":
        return text.upper()
    if case == "lower":
        return text.lower()
    return text
