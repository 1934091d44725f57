"""The Common Voice accent normaliser: schemas, label splitting, and the three multi-accent policies."""

from __future__ import annotations

import pytest

from hne_core.data.accents import (
    CV_ACCENT_CODES,
    AccentClasses,
    AccentSchema,
    detect_accent_schema,
    split_accent_labels,
)
from hne_core.data.corpus import DataError

US = "United States English"
INDIA = "India and South Asia (India, Pakistan, Sri Lanka)"
AFRICA = "Southern African (South Africa, Zimbabwe, Namibia)"
WEST_INDIES = "West Indies and Bermuda (Bahamas, Bermuda, Jamaica, Trinidad)"
CLASSES = {"us": {"codes": ["us"], "labels": [US]}, "indian": {"codes": ["indian"], "labels": [INDIA]}}
CODES = AccentSchema("accent", "codes")
FREE = AccentSchema("accents", "free_text")
REPACK = AccentSchema("accent", "free_text")


@pytest.mark.parametrize(
    "columns, values, expected",
    [
        (["client_id", "accent"], ["us", "indian", "", "england"], CODES),  # CV <= 7.0
        (["client_id", "accent"], ["us", "us", "martian"], CODES),  # unknown code: still codes
        (["client_id", "accent"], ["", ""], CODES),  # nothing to tell: codes
        (["client_id", "accents"], [US, f"{US},{INDIA}"], FREE),  # CV >= 8.0
        (["client_id", "accents"], [], FREE),
        (["client_id", "accent"], [US, INDIA, "", "us"], REPACK),  # Hugging Face repack
        (["client_id", "accent", "accents"], ["us"], FREE),  # accents wins
    ],
)
def test_detect_accent_schema(columns, values, expected):
    assert detect_accent_schema(columns, values) == expected


def test_detect_accent_schema_without_column_names_the_file():
    with pytest.raises(DataError, match=r"/data/train\.tsv: no accent column"):
        detect_accent_schema(["client_id", "path", "sentence"], [], source="/data/train.tsv")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("", []),
        (US, [US]),
        (f"{US},{INDIA}", [US, INDIA]),
        (INDIA, [INDIA]),
        (f"{INDIA},{AFRICA}", [INDIA, AFRICA]),
        (f"{WEST_INDIES}, {US}", [WEST_INDIES, US]),
        (f"  {US} ,, {US.lower()} ", [US]),  # trimmed, repeats counted once
        ("india and south asia (india,  pakistan, sri lanka)", ["india and south asia (india, pakistan, sri lanka)"]),
        ("German English,Non native speaker", ["German English", "Non native speaker"]),
        ("Foo (a, b), bar", ["Foo (a, b)"] + ["bar"]),  # unknown label: depth-0 split
        ("Slight accent (Hindi, Tamil", ["Slight accent (Hindi, Tamil"]),  # unclosed: rest is one label
        ("England English accent, Welsh English", ["England English accent", "Welsh English"]),
    ],
)
def test_split_accent_labels(text, expected):
    assert split_accent_labels(text) == expected


def test_split_protects_configured_labels_with_bare_commas():
    assert split_accent_labels("Kenyan, coastal,Filipino", ["Kenyan, coastal"]) == ["Kenyan, coastal", "Filipino"]
    assert split_accent_labels("Kenyan, coastal,Filipino") == ["Kenyan", "coastal", "Filipino"]


# (schema, value, policy) -> (class or None, reason or None)
CASES = [
    # CV <= 7.0 codes
    (CODES, "us", "drop", "us", None),
    (CODES, "indian", "drop", "indian", None),
    (CODES, " US ", "drop", "us", None),
    (CODES, "england", "drop", None, "other_accent"),
    (CODES, "southatlandtic", "drop", None, "other_accent"),
    (CODES, "other", "drop", None, "other_accent"),
    (CODES, "", "drop", None, "no_accent"),
    (CODES, "martian", "drop", None, "unknown_accent"),
    (CODES, "United States English", "drop", None, "unknown_accent"),
    # CV >= 8.0 free text (column accents) and HF repacks (column accent): same behaviour
    *[
        (schema, value, policy, cls, reason)
        for schema in (FREE, REPACK)
        for value, policy, cls, reason in [
            (US, "drop", "us", None),
            (INDIA, "drop", "indian", None),
            ("  united states ENGLISH ", "drop", "us", None),
            ("England English", "drop", None, "other_accent"),
            (AFRICA, "drop", None, "other_accent"),
            ("", "drop", None, "no_accent"),
            ("   ", "drop", None, "no_accent"),
            ("us", "drop", None, "other_accent"),  # a code is not a free-text label
            # several labels, policy drop
            (f"{US},{INDIA}", "drop", None, "multi_accent"),
            (f"{US},England English", "drop", None, "multi_accent"),
            (f"{US},{US}", "drop", "us", None),  # a repeat is one label
            # unique_class
            (f"{US},{INDIA}", "unique_class", None, "multi_accent_conflict"),
            (f"{INDIA},{AFRICA}", "unique_class", "indian", None),
            (f"England English,{US}", "unique_class", "us", None),
            (f"England English,{AFRICA}", "unique_class", None, "other_accent"),
            (INDIA, "unique_class", "indian", None),
            # first
            (f"{US},{INDIA}", "first", "us", None),
            (f"{INDIA},{US}", "first", "indian", None),
            (f"{AFRICA},{US}", "first", None, "other_accent"),
            (f"{INDIA},{AFRICA}", "first", "indian", None),
        ]
    ],
]


@pytest.mark.parametrize("schema, value, policy, cls, reason", CASES)
def test_classify(schema, value, policy, cls, reason):
    out = AccentClasses.from_config(CLASSES, policy).classify(value, schema)
    assert (out.accent, out.reason) == (cls, reason)
    assert out.accent_id == (None if cls is None else list(CLASSES).index(cls))
    assert out.kept == (cls is not None)


def test_class_index_follows_config_order():
    classes = AccentClasses.from_config({"indian": CLASSES["indian"], "us": CLASSES["us"]})
    assert classes.names == ("indian", "us")
    assert classes.classify(US, FREE).accent_id == 1
    assert classes.classify("indian", CODES).accent_id == 0


def test_classes_may_merge_several_codes_and_labels():
    british = {"codes": ["england", "scotland", "wales"], "labels": ["England English", "Scottish English"]}
    classes = AccentClasses.from_config({"us": CLASSES["us"], "british": british}, "unique_class")
    assert classes.classify("wales", CODES).accent == "british"
    assert classes.classify("England English,Scottish English", FREE).accent == "british"


@pytest.mark.parametrize(
    "classes, policy, message",
    [
        (CLASSES, "sometimes", r"commonvoice\.multi_accent: 'sometimes'"),
        ({}, "drop", r"commonvoice\.classes: expected a non-empty mapping"),
        ({"us": {"codes": ["usa"]}}, "drop", r"commonvoice\.classes\.us\.codes: 'usa' is not a Common Voice"),
        ({"us": {}}, "drop", r"commonvoice\.classes\.us: give at least one"),
        ({"us": {"code": ["us"]}}, "drop", r"commonvoice\.classes\.us: expected a mapping with keys"),
        (
            {"a": {"labels": [US]}, "b": {"labels": [US.upper()]}},
            "drop",
            r"commonvoice\.classes\.b\.labels: .* class 'a'",
        ),
    ],
)
def test_bad_config_names_the_key(classes, policy, message):
    with pytest.raises(DataError, match=message):
        AccentClasses.from_config(classes, policy)


def test_code_table_is_common_voices():
    assert "southatlandtic" in CV_ACCENT_CODES and "other" in CV_ACCENT_CODES
    assert len(CV_ACCENT_CODES) == 17
