"""The ``folder`` data source (hne_core/data/sources/folder.py) and the source registry, on a folder of real
espeak-ng recordings made at test time: in WAV at espeak-ng's 22.05 kHz, as 44.1 kHz stereo, as 16 kHz mono
(already the models' format) and as FLAC, with a TSV whose rows exercise every path of the source."""

from __future__ import annotations

import json
import logging
import random
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from conftest import REPO, SMOKE, planned_jobs, run_snakemake

from hne_core.data import sources
from hne_core.data.corpus import MANIFEST_COLUMNS, DataError, validate_manifest
from hne_core.data.errors import ConfigError
from hne_core.data.rows import EXTRA_COLUMNS
from hne_core.data.sources.folder import prepare_folder

CLASSES = {"us": {"labels": ["US", "United States"]}, "indian": {"labels": ["Indian"]}}
MIN_SAMPLES = 4000  # 0.25 s at 16 kHz: the 50 ms tone falls below it, speech does not

# path, sentence, accent, split, speaker, audio kind (how the recording is made; None: no file)
ROWS: list[tuple[str, str, str, str, str, str | None]] = [
    ("us/a1.wav", "Hello world, this is a test.", "US", "train", "amy", "espeak"),  # 1
    ("in/r1.wav", 'She said "yes"; didn\'t she?', "Indian", "train", "ravi", "stereo44k"),  # 2
    ("us/a2.wav", "The rain in Spain stays mainly.", "  united   STATES ", "train", "amy", "mono16k"),  # 3
    ("sc/i1.wav", "Nobody knows where I come from.", "Scottish", "train", "ian", "espeak"),  # 4 other_accent
    ("us/gone.wav", "This recording went missing.", "US", "train", "amy", None),  # 5 missing_clip
    ("us/a3.wav", "... !!! ?", "US", "train", "amy", "espeak"),  # 6 empty_sentence
    ("us/noise.wav", "This one is only noise.", "US", "train", "dan", "garbage"),  # 7 unreadable_audio
    ("in/r2.wav", "Which accent is this?", "", "train", "ravi", "espeak"),  # 8 no_accent
    ("us/b1.flac", "Good morning, everyone!", "US", "dev", "ben", "flac"),  # 9
    ("in/s1.wav", "It's a fine day, isn't it?", "indian", "dev", "sita", "espeak"),  # 10
    ("us/c1.wav", "See you again tomorrow.", "US", "test", "cal", "espeak"),  # 11
    ("in/k1.wav", "Thank you very much.", "Indian", "test", "kiran", "espeak"),  # 12
    ("us/tiny.wav", "Hi.", "US", "test", "noor", "tone"),  # 13 empty_audio
    ("us/c1.wav", "See you again tomorrow.", "US", "test", "cal", None),  # 14 duplicate_clip
    ("us/v1.wav", "Where does this row go?", "US", "validation", "vic", "espeak"),  # 15 unknown_split
]
KEPT = {
    ("train", "us"): 2,
    ("train", "indian"): 1,
    ("dev", "us"): 1,
    ("dev", "indian"): 1,
    ("test", "us"): 1,
    ("test", "indian"): 1,
}
DROPS = {
    ("train", "other_accent"): 1,
    ("train", "missing_clip"): 1,
    ("train", "empty_sentence"): 1,
    ("train", "unreadable_audio"): 1,
    ("train", "no_accent"): 1,
    ("test", "empty_audio"): 1,
    ("test", "duplicate_clip"): 1,
    ("validation", "unknown_split"): 1,
    ("", "malformed_row"): 1,
    ("", "blank_line"): 1,
}
GOOD = [1, 2, 3, 9, 10, 11, 12]  # row numbers (1-based) of the rows that are kept
HEADER = ["path", "sentence", "accent", "split", "speaker"]


def _run(cmd: list[str]) -> None:
    subprocess.run(cmd, check=True, capture_output=True)


def _ffmpeg(*args: str) -> None:
    _run(["ffmpeg", "-nostdin", "-y", "-loglevel", "error", *args])


def make_recording(path: Path, sentence: str, kind: str, voice: str) -> None:
    """``sentence`` spoken by espeak-ng (``voice``), stored as ``kind`` says."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "garbage":
        path.write_bytes(random.Random(7).randbytes(4096))
        return
    if kind == "tone":
        _ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:duration=0.05", str(path))
        return
    raw = path.with_name(path.stem + ".espeak.wav")
    _run(["espeak-ng", "-v", voice, "-w", str(raw), sentence if sentence.strip(".!? ") else "silence please"])
    if kind == "espeak":  # espeak-ng's own 22.05 kHz mono
        raw.rename(path)
        return
    conversion = {
        "stereo44k": ["-ac", "2", "-ar", "44100"],
        "mono16k": ["-ac", "1", "-ar", "16000"],
        "flac": ["-ac", "1", "-ar", "22050", "-c:a", "flac"],
    }[kind]
    _ffmpeg("-i", str(raw), *conversion, str(path))
    raw.unlink()


@pytest.fixture(scope="module")
def recordings(tmp_path_factory) -> Path:
    """Every recording any test needs, once (a folder the tests copy TSVs into)."""
    root = tmp_path_factory.mktemp("folder")
    for path, sentence, _, _, _, kind in ROWS:
        if kind is not None:
            voice = "en-029" if path.startswith("in/") else "en-us"
            make_recording(root / "clips" / path, sentence, kind, voice)
    return root / "clips"


def write_tsv(path: Path, rows: list[tuple], header: list[str] = HEADER, extra: list[str] = ()) -> Path:
    """A TSV of ``rows`` (ROWS tuples; only ``header``'s columns), then ``extra`` raw lines."""
    lines = ["\t".join(header)]
    for row in rows:
        record = dict(zip(HEADER, row))
        lines.append("\t".join(record[c] for c in header))
    path.write_text("\n".join([*lines, *extra]) + "\n", encoding="utf-8")
    return path


def full_tsv(folder: Path, name: str = "meta.tsv") -> Path:
    """All of ROWS, then a row with a field missing (row 16, malformed) and a blank line (row 17)."""
    return write_tsv(folder / name, ROWS, extra=["us/x1.wav\tToo few fields\tUS", ""])


def prepare(tsv, wav_dir: Path, **kw):
    args = dict(on_bad_row="skip", text_case="upper", min_samples=MIN_SAMPLES, processes=2)
    args.update(kw)
    return prepare_folder({"tsv": tsv if isinstance(tsv, dict) else str(tsv), "classes": CLASSES}, wav_dir, **args)


@pytest.fixture(scope="module")
def prepared(recordings, tmp_path_factory):
    tsv = full_tsv(recordings)
    manifest, drops = prepare(tsv, tmp_path_factory.mktemp("wav"))
    return tsv, manifest, drops.frame()


def counts(manifest: pd.DataFrame, drops: pd.DataFrame) -> tuple[dict, dict]:
    return (
        dict(Counter(zip(manifest["split"], manifest["accent"]))),
        dict(Counter(zip(drops["split"], drops["reason"]))),
    )


# ---------------------------------------------------------------------------------------------- the source


def test_counts_per_split_accent_and_reason(prepared):
    _, manifest, drops = prepared
    assert counts(manifest, drops) == (KEPT, DROPS)


def test_every_row_is_kept_or_logged_once(prepared):
    tsv, manifest, drops = prepared
    seen = sorted([*zip(manifest["source_tsv"], manifest["source_row"]), *zip(drops["source_file"], drops["row"])])
    assert seen == [(str(tsv), row) for row in range(1, len(ROWS) + 3)]
    assert sorted(manifest["source_row"]) == GOOD


def test_manifest_ids_text_and_classes(prepared):
    _, manifest, _ = prepared
    assert list(manifest.columns) == list(MANIFEST_COLUMNS) + list(EXTRA_COLUMNS)
    validate_manifest(manifest, "folder")
    assert manifest["split"].tolist() == ["train"] * 3 + ["dev"] * 2 + ["test"] * 2  # split, then file order
    row = manifest.set_index("source_row").loc[2]
    assert (row["utt_id"], row["speaker"], row["accent"], row["accent_id"]) == ("ravi-in_r1", "ravi", "indian", 1)
    assert row["raw_text"] == 'She said "yes"; didn\'t she?' and row["text"] == "SHE SAID YES DIDN'T SHE"
    assert row["clip"] == "in/r1.wav"
    spaced = manifest.set_index("source_row").loc[3]
    assert (spaced["accent"], spaced["accent_id"], spaced["raw_accent"]) == ("us", 0, "  united   STATES ")


def test_wavs_are_16k_mono_pcm16_resampled_only_when_needed(prepared, recordings):
    _, manifest, _ = prepared
    by_row = manifest.set_index("source_row")
    for row in by_row.itertuples():
        info = sf.info(row.wav)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", row.num_samples)
        source = sf.info(str(recordings / row.clip))
        assert row.num_samples == pytest.approx(source.frames * 16000 / source.samplerate, abs=2), row.clip
    assert sf.info(str(recordings / "in/r1.wav")).channels == 2  # the stereo recording was down-mixed
    already, _ = sf.read(str(recordings / "us/a2.wav"), dtype="int16")
    written, _ = sf.read(by_row.loc[3, "wav"], dtype="int16")
    assert np.array_equal(already, written), "a 16 kHz mono recording keeps its samples"
    assert by_row["duration_s"].tolist() == pytest.approx((by_row["num_samples"] / 16000).tolist())


def test_one_tsv_per_split_gives_the_same_corpus(prepared, recordings, tmp_path):
    _, manifest, _ = prepared
    kept = [r for i, r in enumerate(ROWS, 1) if i in GOOD]
    header = [c for c in HEADER if c != "split"]
    tsvs = {
        s: str(write_tsv(recordings / f"{s}.tsv", [r for r in kept if r[3] == s], header))
        for s in ("train", "dev", "test")
    }
    again, drops = prepare(tsvs, tmp_path / "wav", on_bad_row="error")
    assert drops.rows == []
    same = ["utt_id", "split", "speaker", "accent", "accent_id", "text", "num_samples"]
    pd.testing.assert_frame_equal(again[same], manifest[same])
    assert again.loc[again["split"] == "dev", "source_tsv"].unique().tolist() == [tsvs["dev"]]


def test_same_input_same_drop_log(prepared, recordings, tmp_path):
    """dropped.tsv quotes ffmpeg's message for an unreadable recording: it must not carry run-to-run noise."""
    tsv, _, drops = prepared
    again = prepare(tsv, tmp_path / "wav")[1].frame()
    pd.testing.assert_frame_equal(again, drops)
    assert "unreadable audio (ffmpeg: [" in drops.set_index("reason").loc["unreadable_audio", "detail"]


def test_rows_in_any_order_come_out_in_split_then_file_order(recordings, tmp_path):
    tsv = write_tsv(recordings / "reversed.tsv", [ROWS[i - 1] for i in reversed(GOOD)])
    manifest, _ = prepare(tsv, tmp_path / "wav", on_bad_row="error")
    assert manifest["split"].tolist() == ["train"] * 3 + ["dev"] * 2 + ["test"] * 2
    assert manifest.loc[manifest["split"] == "train", "source_row"].tolist() == [5, 6, 7]


def test_without_a_speaker_column_each_recording_is_its_own_speaker(recordings, tmp_path):
    kept = [r for i, r in enumerate(ROWS, 1) if i in GOOD]
    tsv = write_tsv(recordings / "nospeaker.tsv", kept, [c for c in HEADER if c != "speaker"])
    manifest, _ = prepare(tsv, tmp_path / "wav", on_bad_row="error")
    assert manifest["utt_id"].tolist()[:2] == ["us_a1", "in_r1"]
    assert (manifest["speaker"] == manifest["utt_id"]).all()


BAD_ROWS = [
    (5, "missing_clip"),
    (6, "empty_sentence"),
    (7, "unreadable_audio"),
    (13, "empty_audio"),
    (14, "duplicate_clip"),
    (15, "unknown_split"),
]


@pytest.mark.parametrize("bad, reason", BAD_ROWS)
def test_on_bad_row_error_names_file_row_and_recording(bad, reason, recordings, tmp_path):
    tsv = write_tsv(recordings / f"bad{bad}.tsv", [ROWS[i - 1] for i in [*GOOD, bad]])  # the bad row last: row 8
    with pytest.raises(DataError) as err:
        prepare(tsv, tmp_path / "wav", on_bad_row="error")
    assert f"{tsv}: row 8 (data row, header excluded), clip {ROWS[bad - 1][0]}: {reason}" in str(err.value)
    manifest, drops = prepare(tsv, tmp_path / "wav", on_bad_row="skip")  # the same row, skipped and counted
    assert sorted(manifest["source_row"]) == list(range(1, 8))
    assert drops.frame()[["row", "reason"]].values.tolist() == [[8, reason]]


def test_malformed_row_is_an_error_naming_it(recordings, tmp_path):
    tsv = full_tsv(tmp_path)
    with pytest.raises(DataError, match=rf"{tsv}: row 6 .*: empty_sentence"):  # the first bad row read
        prepare(tsv, tmp_path / "wav", on_bad_row="error")
    kept = [r for i, r in enumerate(ROWS, 1) if i in GOOD]
    tsv = write_tsv(tmp_path / "short.tsv", kept, extra=["us/x1.wav\tToo few fields\tUS"])
    with pytest.raises(DataError, match=rf"{tsv}: row 8 .*clip us/x1\.wav: malformed_row: 3 fields for 5"):
        prepare(tsv, tmp_path / "wav", on_bad_row="error")


def test_missing_file_column_or_class(recordings, tmp_path):
    with pytest.raises(DataError, match=rf"{tmp_path / 'none.tsv'}: folder TSV not found"):
        prepare(tmp_path / "none.tsv", tmp_path / "wav")
    kept = [r for i, r in enumerate(ROWS, 1) if i in GOOD]
    no_split = write_tsv(recordings / "nosplit.tsv", kept, [c for c in HEADER if c != "split"])
    with pytest.raises(DataError, match=rf"{no_split}: missing columns \['split'\] \(one TSV for every split"):
        prepare(no_split, tmp_path / "wav")
    only_us = write_tsv(recordings / "only_us.tsv", [r for r in kept if r[2] == "US"])
    with pytest.raises(DataError, match=r"folder\.classes\.indian: no utterance .* was kept"):
        prepare(only_us, tmp_path / "wav")


# task labels: (gender, age_group) of each GOOD row, and what config LABELS makes of them
GOOD_LABELS = {
    1: ("F", "20-29"),
    2: ("M", ""),
    3: (" f ", "20-29"),  # case and spaces do not matter
    9: ("M,F", "60+"),  # two classes: ambiguous
    10: ("prefer not to say", "60+"),  # unknown
    11: ("", "20-29"),  # empty
    12: ("M,prefer not to say", "60+"),  # a class and an unknown value
}
LABELS = {
    "sex": {"column": "gender", "values": {"female": ["F"], "male": ["M"]}, "unknown": ["", "prefer not to say"]},
    "age": {"column": "age_group", "values": {"young": ["20-29"], "older": ["60+"]}},
}
EXPECTED_LABELS = {
    1: ("female", "young"),
    2: ("male", ""),
    3: ("female", "young"),
    9: ("", "older"),
    10: ("", "older"),
    11: ("", "young"),
    12: ("male", "older"),
}


def labelled_tsv(path: Path, labels: dict[int, tuple[str, str]] = GOOD_LABELS) -> Path:
    """The GOOD rows (rows 1-7 of the file) with a gender and an age_group column."""
    lines = ["\t".join([*HEADER, "gender", "age_group"])]
    for number, (gender, age) in labels.items():
        lines.append("\t".join([*ROWS[number - 1][:5], gender, age]))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def prepare_labelled(tsv: Path, wav_dir: Path, labels: dict = LABELS, **kw):
    args = dict(on_bad_row="skip", text_case="upper", min_samples=MIN_SAMPLES, processes=2)
    args.update(kw)
    return prepare_folder({"tsv": str(tsv), "classes": CLASSES, "labels": labels}, wav_dir, **args)


def test_task_columns_hold_each_rows_class_and_missing_labels_are_counted(recordings, tmp_path, caplog):
    tsv = labelled_tsv(recordings / "labelled.tsv")
    with caplog.at_level(logging.INFO, logger="hne_core.data.sources.folder"):
        manifest, drops = prepare_labelled(tsv, tmp_path / "wav", on_bad_row="error")
    assert drops.rows == []
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, *EXTRA_COLUMNS, "sex", "age"]
    by_row = manifest.set_index("source_row")
    got = {n: (by_row.loc[i + 1, "sex"], by_row.loc[i + 1, "age"]) for i, n in enumerate(GOOD_LABELS)}
    assert got == EXPECTED_LABELS
    assert (
        "task labels of the kept rows: sex: female 2, male 2, no label 3 (empty 1, unknown 1, ambiguous 1); "
        "age: older 3, young 3, no label 1 (empty 1)"
    ) in caplog.messages


def test_a_bad_label_is_a_bad_row(recordings, tmp_path):
    tsv = labelled_tsv(recordings / "bad_label.tsv", {**GOOD_LABELS, 2: ("robot", "")})
    with pytest.raises(DataError) as err:
        prepare_labelled(tsv, tmp_path / "wav", on_bad_row="error")
    assert str(err.value).startswith(
        f"{tsv}: row 2 (data row, header excluded), clip in/r1.wav: bad_label: gender 'robot' is neither a value "
        "of a sex class (['female', 'male']) nor an unknown value (config folder.labels.sex)"
    )
    manifest, drops = prepare_labelled(tsv, tmp_path / "wav", on_bad_row="skip")
    assert drops.frame()[["row", "utt_id", "reason"]].values.tolist() == [[2, "ravi-in_r1", "bad_label"]]
    assert sorted(manifest["source_row"]) == [1, 3, 4, 5, 6, 7]


def test_a_configured_column_missing_from_the_tsv_is_an_error(recordings, tmp_path):
    tsv = labelled_tsv(recordings / "no_age.tsv")
    labels = {**LABELS, "age": {**LABELS["age"], "column": "age"}}
    with pytest.raises(DataError, match=rf"{tsv}: no column 'age', which folder\.labels\.age\.column names"):
        prepare_labelled(tsv, tmp_path / "wav", labels=labels)
    plain = write_tsv(recordings / "plain.tsv", [ROWS[i - 1] for i in GOOD])  # without labels: columns unchanged
    manifest, _ = prepare(plain, tmp_path / "wav")
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, *EXTRA_COLUMNS]


def test_settings_pass_labels_on():
    folder = sources.get("folder")
    assert folder.settings({"tsv": "a.tsv", "classes": CLASSES, "labels": LABELS})["labels"] == LABELS
    assert folder.settings({"tsv": "a.tsv", "classes": CLASSES})["labels"] == {}


@pytest.mark.parametrize(
    "section, key",
    [
        ({"tsv": "a.tsv", "classes": CLASSES, "labels": {"sex": {"values": {"f": ["F"]}}}}, "folder.labels.sex.column"),
        (
            {
                "tsv": "a.tsv",
                "classes": CLASSES,
                "labels": {"sex": {"column": "g", "values": {"f": ["F"], "m": ["f"]}}},
            },
            "folder.labels.sex.values",
        ),
        ({"tsv": None, "classes": CLASSES}, "folder.tsv"),
        ({"tsv": {"train": "a.tsv", "dev": "b.tsv"}, "classes": CLASSES}, "folder.tsv"),
        ({"tsv": "a.tsv", "classes": {"us": CLASSES["us"]}}, "folder.classes"),
        ({"tsv": "a.tsv", "classes": {**CLASSES, "other": {"labels": ["us"]}}}, "folder.classes.other.labels"),
        ({"tsv": "a.tsv", "classes": {**CLASSES, "other": {"codes": ["x"]}}}, "folder.classes.other"),
        ({"tsv": "a.tsv", "classes": {**CLASSES, "other": "x"}}, "folder.classes.other"),
    ],
)
def test_config_errors_name_the_key(section, key):
    with pytest.raises(ConfigError) as err:
        sources.get("folder").check(section)
    assert err.value.key == key


# ---------------------------------------------------------------------------------------------- the registry


def test_every_source_exposes_the_interface_and_has_its_config_section():
    schema = yaml.safe_load((REPO / "rules/schemas/config.schema.yaml").read_text())
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    for name in sources.SOURCES:
        module = sources.get(name)
        for attr in ("RULE", "DATA_KEYS", "class_names", "check", "settings", "inputs", "test_split_bound", "prepare"):
            assert hasattr(module, attr), f"{name} lacks {attr}"
        assert set(module.DATA_KEYS) <= set(sources.DATA_SETTINGS)
        assert name in schema["properties"] and name in schema["required"] and name in default
        assert "classes" in schema["properties"][name]["properties"]
    with pytest.raises(ConfigError, match="unknown data source 'tape'") as err:
        sources.get("tape")
    assert err.value.key == "data.source"


def test_every_source_has_one_classes_shape():
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    paper = yaml.safe_load((REPO / "configs/paper.yaml").read_text())
    assert sources.get("synthetic").class_names(default["synthetic"]) == ["us_english", "caribbean_english"]
    assert sources.get("commonvoice").class_names(paper["commonvoice"]) == ["us", "indian"]
    assert sources.get("folder").class_names({"classes": CLASSES}) == ["us", "indian"]
    for section in (default["synthetic"], paper["commonvoice"]):
        assert all(isinstance(spec, dict) for spec in section["classes"].values())
    with pytest.raises(ConfigError) as err:
        sources.get("synthetic").check({**default["synthetic"], "classes": {"a": "en-us", "b": "en-029"}})
    assert err.value.key == "synthetic.classes.a"


def test_the_registry_and_every_source_import_light():
    """The workflow imports them while it parses: no pandas, numpy or torch may come along."""
    code = (
        "import sys; from hne_core.data import sources; [sources.get(n) for n in sources.SOURCES]; "
        "print(sorted(m for m in ('pandas', 'numpy', 'torch', 'soundfile') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


# ---------------------------------------------------------------------------------------------- the workflow

DATA_TARGETS = [
    "results/data/report.json",
    *(f"results/data/{s}/{f}" for s in ("train", "dev", "test") for f in ("wav.scp", "accent", "text")),
]


def overlay(tmp_path: Path, tsv: Path, on_bad_row: str) -> str:
    path = tmp_path / "folder.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "data": {"source": "folder", "on_bad_row": on_bad_row, "min_samples": MIN_SAMPLES, "threads": 2},
                "attack": {
                    "n_utterances": 2
                },  # the folder's test split holds 2 (smoke.yaml's 4 would stop the planning)
                "folder": {"tsv": str(tsv), "classes": CLASSES},
            },
            sort_keys=False,
        )
    )  # class index = position: keep it
    return str(path)


@pytest.mark.slow
def test_workflow_data_stage_on_a_folder(recordings, tmp_path):
    tsv = full_tsv(recordings, "workflow.tsv")
    configs = ["--configfile", str(SMOKE), overlay(tmp_path, tsv, "skip")]
    assert planned_jobs(run_snakemake(tmp_path, *DATA_TARGETS, "-n", "--cores", "2", *configs)) == {
        "prepare_folder": 1,
        "espnet_data_dir": 3,
        "data_report": 1,
    }
    run_snakemake(tmp_path, *DATA_TARGETS, "--cores", "2", *configs)
    data = tmp_path / "results/data"
    summary = json.loads((data / "report.json").read_text())
    assert summary["total_utterances"] == 7 and summary["total_dropped"] == len(ROWS) + 2 - 7
    assert summary["tasks"] == {}  # no folder.labels: the declared tasks have no column, and the report says so
    assert "Not in this source's manifest (no labels): sex, age." in (data / "report.md").read_text()
    dropped = pd.read_csv(data / "dropped.tsv", sep="\t", keep_default_na=False)
    assert dict(Counter(zip(dropped["split"], dropped["reason"]))) == DROPS
    assert (data / "accent_classes.txt").read_text() == "0 us\n1 indian\n"
    for split, ids in {
        "train": ["amy-us_a1", "amy-us_a2", "ravi-in_r1"],
        "dev": ["ben-us_b1", "sita-in_s1"],
        "test": ["cal-us_c1", "kiran-in_k1"],
    }.items():
        accent = dict(line.split() for line in (data / split / "accent").read_text().splitlines())
        assert sorted(accent) == ids
        assert accent == {u: "0" if "-us_" in u else "1" for u in ids}
    assert (tmp_path / "results/logs/data/prepare_folder.log").is_file()
    assert planned_jobs(run_snakemake(tmp_path, *DATA_TARGETS, "-n", "--cores", "2", *configs)) == {}
    tsv.write_text(tsv.read_text().replace("Thank you very much.", "Thank you so much."))  # one sentence edited
    assert planned_jobs(run_snakemake(tmp_path, *DATA_TARGETS, "-n", "--cores", "2", *configs)) == {
        "prepare_folder": 1,
        "espnet_data_dir": 3,
        "data_report": 1,
    }


def test_workflow_bad_row_stops_the_job_naming_file_and_row(recordings, tmp_path):
    tsv = full_tsv(recordings, "workflow_error.tsv")
    proc = run_snakemake(
        tmp_path,
        *DATA_TARGETS,
        "--cores",
        "2",
        "--configfile",
        str(SMOKE),
        overlay(tmp_path, tsv, "error"),
        check=False,
    )
    assert proc.returncode != 0
    log = (tmp_path / "results/logs/data/prepare_folder.log").read_text()
    assert f"{tsv}: row 6 (data row, header excluded), clip us/a3.wav: empty_sentence" in log
    assert not (tmp_path / "results/data/manifest.tsv").exists()


def test_workflow_folder_without_a_tsv_is_rejected_naming_the_key(tmp_path):
    path = tmp_path / "folder.yaml"
    path.write_text(yaml.safe_dump({"data": {"source": "folder"}, "folder": {"classes": CLASSES}}))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(SMOKE), str(path), check=False)
    assert proc.returncode != 0
    assert "Invalid config key 'folder.tsv'" in proc.stdout + proc.stderr
