"""A tiny Common Voice-shaped corpus made at test time: real MP3s (espeak-ng + ffmpeg), CV's folder layout
and TSV columns, in each of the three accent schemas. Common Voice's terms forbid re-hosting its audio, so
the tests never use real clips.

Every row exercises one path of ``prepare_commonvoice``; ``EXPECTED_*`` say what each schema must give. The
``gender`` and ``age`` columns hold each release's real values (``LABELS``), mapped by config.yaml's
``commonvoice.labels`` (``LABEL_MAPS``); none is bad unless a test asks for one (``make_corpus(bad_labels=...)``).
"""

from __future__ import annotations

import hashlib
import random
import shutil
import subprocess
from pathlib import Path

import pytest

RELEASE = "cv-corpus-99.0-2099-01-01"
US = "United States English"
INDIA = "India and South Asia (India, Pakistan, Sri Lanka)"
AFRICA = "Southern African (South Africa, Zimbabwe, Namibia)"
CLASSES = {"us": {"codes": ["us"], "labels": [US]}, "indian": {"codes": ["indian"], "labels": [INDIA]}}
MIN_SAMPLES = 4000  # 0.25 s at 16 kHz: the "tiny" clip falls below it, speech does not

# split, speaker, clip number, sentence, accent code (CV <= 7.0), free text (CV >= 8.0), audio kind
ROWS: list[tuple[str, str, int, str, str, str, str]] = [
    ("train", "alice", 1, "Hello world, this is a test.", "us", US, "speech"),
    ("train", "bala", 2, 'She said "yes"; didn\'t she?', "indian", INDIA, "speech"),
    ("train", "cora", 3, "The rain in Spain stays mainly in the plain.", "england", "England English", "speech"),
    ("train", "dan", 4, "Nobody knows where I come from.", "", "", "speech"),
    ("train", "erin", 5, "Two accents at once.", "african", f"{US},{INDIA}", "speech"),
    ("train", "femi", 6, "This clip went missing.", "us", US, "missing"),
    ("train", "gita", 7, "... !!! ?", "indian", INDIA, "speech"),
    ("train", "hugo", 8, "This clip is only noise.", "us", US, "garbage"),
    ("train", "isha", 9, "Labels can hold commas.", "martian", f"{INDIA},{AFRICA}", "speech"),
    ("dev", "kofi", 10, "Good morning, everyone!", "us", US, "speech"),
    ("dev", "lena", 11, "It's a fine day, isn't it?", "indian", INDIA, "speech"),
    ("test", "alice", 12, "See you again tomorrow.", "us", "  united STATES english ", "speech"),
    ("test", "mina", 13, "Thank you very much.", "indian", INDIA, "speech"),
    ("test", "noor", 14, "Hi.", "us", US, "tiny"),
]

_KEPT = {
    ("train", "us"): 1,
    ("train", "indian"): 1,
    ("dev", "us"): 1,
    ("dev", "indian"): 1,
    ("test", "us"): 1,
    ("test", "indian"): 1,
}
_AUDIO_DROPS = {
    ("train", "missing_clip"): 1,
    ("train", "empty_sentence"): 1,
    ("train", "unreadable_audio"): 1,
    ("test", "empty_audio"): 1,
}
# Expected with multi_accent=drop, on_bad_row=skip, min_samples=MIN_SAMPLES, no subsampling.
EXPECTED_KEPT = {"codes": _KEPT, "free_text": _KEPT, "repack": _KEPT}
EXPECTED_DROPS = {
    "codes": {("train", "other_accent"): 2, ("train", "no_accent"): 1, ("train", "unknown_accent"): 1, **_AUDIO_DROPS},
    "free_text": {
        ("train", "other_accent"): 1,
        ("train", "no_accent"): 1,
        ("train", "multi_accent"): 2,
        **_AUDIO_DROPS,
    },
}
EXPECTED_DROPS["repack"] = EXPECTED_DROPS["free_text"]
SCHEMAS = ("codes", "free_text", "repack")

# clip number -> (gender in CV <= 7.0, gender in CV >= 8.0 / its repacks, age). The newer releases' gender is a
# multi-choice profile field: a cell may hold several values, joined by commas as the accents are.
LABELS: dict[int, tuple[str, str, str]] = {
    1: ("female", "female_feminine", "twenties"),
    2: ("male", "male_masculine", "thirties"),
    3: ("male", "male_masculine", "fourties"),
    4: ("", "", ""),
    5: ("female", "intersex", "teens"),
    6: ("male", "male_masculine", "sixties"),
    7: ("female", "female_feminine", "eighties"),
    8: ("other", "transgender", "nineties"),
    9: ("male", "male_masculine", "seventies"),
    10: ("other", "do_not_wish_to_say", ""),  # unknown sex, no age
    11: ("", "female_feminine,non-binary", "fifties"),  # old: empty; new: one class and an unknown value
    12: ("female", "female_feminine,male_masculine", "twenties"),  # new: two classes, ambiguous
    13: ("female", "Female_Feminine ", "sixties"),  # case and spaces do not matter
    14: ("male", "male_masculine", "teens"),
}
# config.yaml's commonvoice.labels (tests/test_commonvoice.py checks that they are the same)
LABEL_MAPS: dict[str, dict] = {
    "sex": {
        "column": "gender",
        "values": {"female": ["female", "female_feminine"], "male": ["male", "male_masculine"]},
        "unknown": ["", "other", "intersex", "transgender", "non-binary", "do_not_wish_to_say"],
    },
    "age": {
        "column": "age",
        "values": {
            "young": ["teens", "twenties"],
            "middle": ["thirties", "fourties"],
            "older": ["fifties", "sixties", "seventies", "eighties", "nineties"],
        },
        "unknown": [""],
    },
}
# clip number -> (sex, age) of the kept rows, per gender schema ("codes": CV <= 7.0; the others: CV >= 8.0)
_OLD_KEPT_LABELS = {
    1: ("female", "young"),
    2: ("male", "middle"),
    10: ("", ""),
    11: ("", "older"),
    12: ("female", "young"),
    13: ("female", "older"),
}
_NEW_KEPT_LABELS = {**_OLD_KEPT_LABELS, 11: ("female", "older"), 12: ("", "young")}
EXPECTED_LABELS = {"codes": _OLD_KEPT_LABELS, "free_text": _NEW_KEPT_LABELS, "repack": _NEW_KEPT_LABELS}
# why the kept rows have no sex label, per schema (ages: one empty cell in each), in the order the log says them
EXPECTED_NO_SEX = {
    "codes": {"empty": 1, "unknown": 1},
    "free_text": {"unknown": 1, "ambiguous": 1},
    "repack": {"unknown": 1, "ambiguous": 1},
}


def client_id(name: str) -> str:
    """A CV-like client id: 128 hex characters."""
    return hashlib.sha512(name.encode()).hexdigest()


def clip_name(number: int) -> str:
    return f"common_voice_en_{number:08d}.mp3"


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def _mp3(wav: Path, mp3: Path) -> None:
    _run(
        [
            "ffmpeg",
            "-nostdin",
            "-y",
            "-loglevel",
            "error",
            "-i",
            str(wav),
            "-codec:a",
            "libmp3lame",
            "-ar",
            "48000",
            str(mp3),
        ]
    )


def speech_mp3(sentence: str, out: Path, voice: str | None = None) -> Path:
    """``sentence`` spoken by espeak-ng (``voice``, e.g. ``en-us+m3``; its default English voice if None), as a
    48 kHz MP3 like Common Voice's clips."""
    wav = out.with_suffix(".wav")
    _run(["espeak-ng", *(["-v", voice] if voice else []), "-w", str(wav), sentence])
    _mp3(wav, out)
    wav.unlink()
    return out


def make_clips(folder: Path) -> Path:
    """Every clip any schema needs, once: speech from espeak-ng, a 50 ms tone, seeded random bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    for _, _, number, sentence, _, _, kind in ROWS:
        out = folder / clip_name(number)
        if kind == "speech":
            speech_mp3(sentence if sentence.strip(".!? ") else "silence please", out)
        elif kind == "tiny":
            _run(
                [
                    "ffmpeg",
                    "-nostdin",
                    "-y",
                    "-loglevel",
                    "error",
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:duration=0.05",
                    "-codec:a",
                    "libmp3lame",
                    "-ar",
                    "48000",
                    str(out),
                ]
            )
        elif kind == "garbage":
            out.write_bytes(random.Random(number).randbytes(4096))
    return folder


def accent_column(schema: str) -> tuple[str, int]:
    """(column name, index into a ROWS tuple of its value) for a schema."""
    return {"codes": ("accent", 4), "free_text": ("accents", 5), "repack": ("accent", 5)}[schema]


def row_labels(schema: str) -> dict[int, tuple[str, str]]:
    """clip number -> (gender, age) cells of ``ROWS`` as a release of ``schema`` writes them."""
    return {n: (old if schema == "codes" else new, age) for n, (old, new, age) in LABELS.items()}


def write_tsv(path: Path, rows: list[tuple], schema: str, labels: dict[int, tuple[str, str]] | None = None) -> None:
    """A TSV with CV's columns (>= 8.0 adds ``variant``, ``locale``, ``segment``); no quoting, as CV writes.
    ``labels``: clip number -> (gender, age) cells (empty where not given)."""
    column, idx = accent_column(schema)
    labels = labels or {}
    header = ["client_id", "path", "sentence", "up_votes", "down_votes", "age", "gender", column, "locale", "segment"]
    lines = ["\t".join(header)]
    for row in rows:
        gender, age = labels.get(row[2], ("", ""))
        lines.append(
            "\t".join([client_id(row[1]), clip_name(row[2]), row[3], "2", "0", age, gender, row[idx], "en", ""])
        )
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def make_corpus(
    root: Path,
    schema: str,
    clips: Path,
    drop_rows: dict[str, set[int]] | None = None,
    bad_gender: dict[int, str] | None = None,
) -> Path:
    """``root/cv-corpus-99.0-2099-01-01/en`` in ``schema``; ``drop_rows`` leaves out train rows by clip number;
    ``bad_gender`` replaces the gender cell of clips by number (a value no map knows, for the bad-row tests).
    Returns the language folder."""
    lang = root / RELEASE / "en"
    (lang / "clips").mkdir(parents=True)
    drop_rows = drop_rows or {}
    labels = row_labels(schema)
    for number, gender in (bad_gender or {}).items():
        labels[number] = (gender, labels[number][1])
    for split in ("train", "dev", "test"):
        rows = [r for r in ROWS if r[0] == split and r[2] not in drop_rows.get(split, set())]
        write_tsv(lang / f"{split}.tsv", rows, schema, labels)
    for row in ROWS:
        src = clips / clip_name(row[2])
        if row[6] != "missing":
            shutil.copy(src, lang / "clips" / src.name)
    return lang


@pytest.fixture(scope="session")
def cv_clips(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clips(tmp_path_factory.mktemp("cv_clips"))


@pytest.fixture(scope="session", params=SCHEMAS)
def cv_corpus(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, cv_clips: Path
) -> tuple[str, Path]:
    """(schema, language folder) for each accent schema."""
    schema = request.param
    return schema, make_corpus(tmp_path_factory.mktemp(f"cv_{schema}"), schema, cv_clips)


# ----------------------------------------------------------------------------------------------------------
# An unbalanced release in the CV >= 8.0 schema (``accents``, free text): what the paper config meets on real
# Common Voice, where US English speakers far outnumber Indian English ones. Each split's kept rows are about
# 70 % US / 30 % Indian; multi-accent rows (dropped by multi_accent: drop), other accents and empty accents are
# mixed in. Speakers are split-disjoint, each with one espeak-ng voice (en-us for US, en-029 standing in for
# Indian English, which espeak-ng lacks), several clips each.
# ----------------------------------------------------------------------------------------------------------

SCOTTISH = "Scottish English"
ENGLAND = "England English"
# speaker -> (accents column, espeak-ng voice); split by SPEAKER_SPLITS
SPEAKERS: dict[str, tuple[str, str]] = {
    "amy": (US, "en-us+f1"),
    "ben": (US, "en-us+m1"),
    "cal": (US, "en-us+m3"),
    "ravi": (INDIA, "en-029+m2"),
    "sita": (INDIA, "en-029+f2"),
    "mix1": (f"{US},{INDIA}", "en-us+m4"),
    "mix2": (f"{INDIA},{AFRICA}", "en-029+m5"),
    "ian": (SCOTTISH, "en-gb-scotland"),
    "quiet": ("", "en-us+m6"),
    "dee": (US, "en-us+f3"),
    "eve": (US, "en-us+f4"),
    "asha": (INDIA, "en-029+f4"),
    "mix3": (f"{US},{ENGLAND}", "en-us+m2"),
    "fay": (US, "en-us+f2"),
    "gus": (US, "en-us+m7"),
    "hal": (US, "en-us+m5"),
    "kiran": (INDIA, "en-029+m3"),
    "mix4": (f"{US},{INDIA}", "en-us+f5"),
    "tom": (ENGLAND, "en-gb"),
}
# split -> [(speaker, number of clips)]
SPEAKER_SPLITS: dict[str, list[tuple[str, int]]] = {
    "train": [
        ("amy", 4),
        ("ben", 4),
        ("cal", 3),
        ("ravi", 3),
        ("sita", 2),
        ("mix1", 1),
        ("mix2", 1),
        ("ian", 1),
        ("quiet", 1),
    ],  # kept 11 US / 5 Indian
    "dev": [("dee", 2), ("eve", 1), ("asha", 2), ("mix3", 1)],  # kept 3 US / 2 Indian
    "test": [("fay", 4), ("gus", 3), ("hal", 3), ("kiran", 4), ("mix4", 1), ("tom", 1)],  # kept 10 US / 4 Indian
}
# Short sentences (one clip each, in row order); pangrams among them so that every letter is spoken.
SENTENCES: tuple[str, ...] = (
    "The quick brown fox jumps over the lazy dog.",
    "Pack my box with five dozen liquor jugs.",
    "How vexingly quick daft zebras jump!",
    "Sphinx of black quartz, judge my vow.",
    "The train leaves at noon.",
    "She sells sea shells by the shore.",
    "We watched the river rise.",
    "My brother plays the violin.",
    "Turn left at the old mill.",
    "The soup is far too hot.",
    "Bring your umbrella today.",
    "A cold wind blew all night.",
    "They painted the fence green.",
    "He forgot his keys again.",
    "The market opens early.",
    "Please close the kitchen window.",
    "Our team won the final match.",
    "The baby laughed at the puppy.",
    "I like reading old maps.",
    "Water boils at one hundred degrees.",
    "The library is very quiet.",
    "Jack fixed the broken chair.",
    "The moon was bright and full.",
    "Quiet minds solve hard puzzles.",
    "Send me the report by Friday.",
    "The garden needs more water.",
    "Zebras graze on the open plain.",
    "Mix the flour with the eggs.",
    "Every child deserves a good school.",
    "The bus was late this morning.",
    "Keep the change, please.",
    "Birds sing before the sunrise.",
    "The doctor will see you now.",
    "Fresh bread smells wonderful.",
    "Count the coins on the table.",
    "Lights went out across the city.",
    "The ship sailed into the fog.",
    "Yellow leaves fall in autumn.",
    "Never judge a book by its cover.",
    "The exam starts in an hour.",
    "Thank you for the lovely gift.",
    "Snow covered the quiet village.",
    "Wash your hands before dinner.",
    "Ask the guide about the castle.",
    "The lamp on my desk is broken.",
)


def unbalanced_rows() -> list[tuple[str, str, int, str, str, str, str]]:
    """The release's rows in ``ROWS``' form (split, speaker, clip number, sentence, code, accents, kind)."""
    rows, number = [], 100
    for split, speakers in SPEAKER_SPLITS.items():
        for speaker, clips in speakers:
            for _ in range(clips):
                rows.append((split, speaker, number, SENTENCES[number - 100], "", SPEAKERS[speaker][0], "speech"))
                number += 1
    return rows


AGES: tuple[str, ...] = ("twenties", "thirties", "fifties", "", "teens", "sixties")


def unbalanced_labels(rows: list[tuple]) -> dict[int, tuple[str, str]]:
    """clip number -> (gender, age) in the CV >= 8.0 schema: the sex of the speaker's espeak-ng voice (``+f..``:
    female_feminine, ``+m..``: male_masculine, no variant: empty), ``AGES`` in turn (one in six empty)."""
    genders = {"f": "female_feminine", "m": "male_masculine"}
    return {
        row[2]: (genders.get(SPEAKERS[row[1]][1].partition("+")[2][:1], ""), AGES[i % len(AGES)])
        for i, row in enumerate(rows)
    }


def make_unbalanced_release(root: Path) -> Path:
    """``root/cv-corpus-99.0-2099-01-01`` with ``en/{train,dev,test}.tsv`` in the CV >= 8.0 schema and an MP3
    per row. Returns the release folder (what ``commonvoice.archive`` may point to)."""
    lang = root / RELEASE / "en"
    (lang / "clips").mkdir(parents=True)
    rows = unbalanced_rows()
    labels = unbalanced_labels(rows)
    for split in ("train", "dev", "test"):
        write_tsv(lang / f"{split}.tsv", [r for r in rows if r[0] == split], "free_text", labels)
    for row in rows:
        speech_mp3(row[3], lang / "clips" / clip_name(row[2]), voice=SPEAKERS[row[1]][1])
    return root / RELEASE


def expected_kept(split: str) -> dict[str, int]:
    """Kept rows of a split of the unbalanced release per class (multi_accent: drop), before subsampling."""
    counts = {"us": 0, "indian": 0}
    for speaker, clips in SPEAKER_SPLITS[split]:
        label = SPEAKERS[speaker][0]
        for name, spec in CLASSES.items():
            if label in spec["labels"]:
                counts[name] += clips
    return counts
