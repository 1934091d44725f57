import pytest

from hne_core.text import normalize_transcript


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Hello, world!", "HELLO WORLD"),
        ("  don't   stop ", "DON'T STOP"),
        ("It\u2019s a \u201cquoted\u201d word", "IT'S A QUOTED WORD"),
        ("'Tis the 'season'", "TIS THE SEASON"),
        ("Caf\u00e9 na\u00efve r\u00e9sum\u00e9", "CAFE NAIVE RESUME"),
        ("well-known long\u2014dash", "WELL KNOWN LONG DASH"),
        ("Room 101; door #4.", "ROOM DOOR"),
        ("...", ""),
    ],
)
def test_normalize_upper(raw, expected):
    assert normalize_transcript(raw) == expected


def test_case_options_and_bad_case():
    assert normalize_transcript("Mixed Case", "lower") == "mixed case"
    assert normalize_transcript("Mixed Case", "keep") == "Mixed Case"
    with pytest.raises(ValueError, match="case"):
        normalize_transcript("x", "title")


def test_idempotent():
    once = normalize_transcript("We'll meet at St. John's -- at 5 o'clock!")
    assert normalize_transcript(once) == once
