"""Common Voice preparation end to end on a self-made CV-shaped corpus (see cv_fixture.py), in each schema."""

from __future__ import annotations

import http.server
import io
import json
import logging
import shutil
import tarfile
import threading
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
from cv_fixture import (  # noqa: F401
    CLASSES,
    EXPECTED_DROPS,
    EXPECTED_KEPT,
    EXPECTED_LABELS,
    EXPECTED_NO_SEX,
    LABEL_MAPS,
    MIN_SAMPLES,
    RELEASE,
    ROWS,
    client_id,
    clip_name,
    cv_clips,
    cv_corpus,
    make_corpus,
)

from hne_core.data import sources
from hne_core.data.corpus import MANIFEST_COLUMNS, DataError, validate_manifest
from hne_core.data.errors import ConfigError
from hne_core.data.rows import EXTRA_COLUMNS
from hne_core.data.sources.commonvoice import (
    download_mdc,
    extract_archive,
    find_language_dir,
    prepare_commonvoice,
    speakers_in_several_splits,
)


def prepare(lang: Path, wav_dir: Path, **kw):
    args = dict(
        classes=CLASSES,
        multi_accent="drop",
        splits_subsample={},
        seed=7,
        on_bad_row="skip",
        text_case="upper",
        processes=2,
        min_samples=MIN_SAMPLES,
    )
    args.update(kw)
    return prepare_commonvoice(lang, wav_dir, **args)


def counts(manifest: pd.DataFrame, drops: pd.DataFrame) -> tuple[dict, dict]:
    return (
        dict(Counter(zip(manifest["split"], manifest["accent"]))),
        dict(Counter(zip(drops["split"], drops["reason"]))),
    )


@pytest.fixture(scope="module")
def prepared(cv_corpus, tmp_path_factory):
    schema, lang = cv_corpus
    manifest, drops = prepare(lang, tmp_path_factory.mktemp(f"wav_{schema}"))
    return schema, lang, manifest, drops.frame()


def test_counts_per_split_accent_and_reason(prepared):
    schema, _, manifest, drops = prepared
    kept, dropped = counts(manifest, drops)
    assert kept == EXPECTED_KEPT[schema]
    assert dropped == EXPECTED_DROPS[schema]


def test_every_row_is_kept_or_logged_once(prepared):
    _, lang, manifest, drops = prepared
    seen = list(zip(manifest["source_tsv"], manifest["source_row"])) + list(zip(drops["source_file"], drops["row"]))
    expected = [
        (str(lang / f"{split}.tsv"), i + 1)
        for split in ("train", "dev", "test")
        for i in range(sum(r[0] == split for r in ROWS))
    ]
    assert sorted(seen) == sorted(expected)


def test_manifest_columns_ids_and_text(prepared):
    _, _, manifest, _ = prepared
    assert list(manifest.columns) == list(MANIFEST_COLUMNS) + list(EXTRA_COLUMNS)
    validate_manifest(manifest, "commonvoice")
    assert (manifest["speaker"].str.len() == 16).all()
    assert manifest["accent_id"].tolist() == [list(CLASSES).index(a) for a in manifest["accent"]]
    quoted = manifest.set_index("clip").loc[clip_name(2)]
    assert quoted["raw_text"] == 'She said "yes"; didn\'t she?'
    assert quoted["text"] == "SHE SAID YES DIDN'T SHE"
    assert quoted["utt_id"] == f"{quoted['speaker']}-common_voice_en_00000002"
    assert quoted["source_row"] == 2 and quoted["source_tsv"].endswith("train.tsv")


def test_wavs_are_16k_mono_pcm16(prepared):
    _, _, manifest, _ = prepared
    for wav, n in zip(manifest["wav"], manifest["num_samples"]):
        info = sf.info(wav)
        assert (info.samplerate, info.channels, info.subtype, info.frames) == (16000, 1, "PCM_16", n)
        assert n >= MIN_SAMPLES
    assert manifest["duration_s"].tolist() == pytest.approx((manifest["num_samples"] / 16000).tolist())


def test_speaker_in_two_cv_splits_is_counted(prepared):
    _, _, manifest, _ = prepared
    info = speakers_in_several_splits(manifest)
    assert info["in_several_splits"] == 1 and info["pairs"] == {"train+test": 1}


class _Messages(logging.Handler):
    """The records of the source's logger, as the workflow's job log would hold them."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@pytest.fixture(scope="module")
def labelled(cv_corpus, tmp_path_factory):
    """Each schema prepared with config.yaml's ``commonvoice.labels`` (gender -> sex, age -> age)."""
    schema, lang = cv_corpus
    logger, handler = logging.getLogger("hne_core.data.sources.commonvoice"), _Messages()
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        manifest, drops = prepare(lang, tmp_path_factory.mktemp(f"wav_labels_{schema}"), labels=LABEL_MAPS)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
    return schema, manifest, drops.frame(), handler.messages


def test_task_columns_follow_the_others_with_each_rows_class(labelled):
    schema, manifest, drops, _ = labelled
    assert list(manifest.columns) == [*MANIFEST_COLUMNS, *EXTRA_COLUMNS, "sex", "age"]
    got = {int(c[-12:-4]): (sex, age) for c, sex, age in zip(manifest["clip"], manifest["sex"], manifest["age"])}
    assert got == EXPECTED_LABELS[schema]
    assert counts(manifest, drops) == (EXPECTED_KEPT[schema], EXPECTED_DROPS[schema])  # nothing else changes


def test_unknown_empty_and_ambiguous_values_are_kept_and_counted(labelled):
    schema, _, _, messages = labelled
    (line,) = [m for m in messages if m.startswith("task labels of the kept rows")]
    why = ", ".join(f"{reason} {n}" for reason, n in EXPECTED_NO_SEX[schema].items())
    sexes = Counter(sex for sex, _ in EXPECTED_LABELS[schema].values() if sex)
    assert f"sex: female {sexes['female']}, male {sexes['male']}, no label 2 ({why}); " in line
    assert line.endswith("age: middle 1, older 2, young 2, no label 1 (empty 1)")


@pytest.mark.parametrize("schema", ["codes", "free_text"])
def test_bad_gender_is_a_bad_row(schema, tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "corpus", schema, cv_clips, bad_gender={2: "robot"})
    with pytest.raises(DataError) as err:
        prepare(lang, tmp_path / "wav", labels=LABEL_MAPS, on_bad_row="error")
    assert str(err.value).startswith(
        f"{lang / 'train.tsv'}: row 2 (data row, header excluded), clip {clip_name(2)}: bad_label: gender 'robot' "
        "is neither a value of a sex class (['female', 'male']) nor an unknown value (config commonvoice.labels.sex)"
    )
    manifest, drops = prepare(lang, tmp_path / "wav", labels=LABEL_MAPS, on_bad_row="skip")
    frame = drops.frame()
    utt_id = f"{client_id('bala')[:16]}-{Path(clip_name(2)).stem}"
    bad = frame.loc[frame["reason"] == "bad_label", ["split", "source_file", "row", "utt_id"]].values.tolist()
    assert bad == [["train", str(lang / "train.tsv"), 2, utt_id]]
    assert Counter(frame["reason"])["bad_label"] == 1 and len(frame) == sum(EXPECTED_DROPS[schema].values()) + 1
    assert clip_name(2) not in set(manifest["clip"]) and len(manifest) == 5
    without, _ = prepare(lang, tmp_path / "wav")  # no labels configured: the column is not read
    assert clip_name(2) in set(without["clip"])


def test_a_configured_column_missing_from_a_tsv_is_an_error(tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "corpus", "codes", cv_clips)
    labels = {"sex": {**LABEL_MAPS["sex"], "column": "sex_at_birth"}}
    with pytest.raises(DataError, match=rf"{lang / 'train.tsv'}: no column 'sex_at_birth', which commonvoice\.labels"):
        prepare(lang, tmp_path / "wav", labels=labels)


def test_settings_pass_labels_on_and_check_them():
    section = {"archive": "cv", "mdc_dataset_id": None, "classes": CLASSES, "multi_accent": "drop"}
    section |= {"subsample": {"train": None}, "labels": LABEL_MAPS}
    cv = sources.get("commonvoice")
    assert cv.settings(section)["labels"] == LABEL_MAPS
    assert cv.settings({k: v for k, v in section.items() if k != "labels"})["labels"] == {}
    cv.check(section)
    bad = {"sex": {**LABEL_MAPS["sex"], "unknown": ["female"]}}  # a value that is a class's and unknown
    with pytest.raises(ConfigError) as err:
        cv.check({**section, "labels": bad})
    assert err.value.key == "commonvoice.labels.sex.values"


@pytest.mark.parametrize(
    "policy, kept_train, reasons",
    [
        ("unique_class", {("train", "us"): 1, ("train", "indian"): 2}, {"multi_accent_conflict": 1}),
        ("first", {("train", "us"): 2, ("train", "indian"): 2}, {}),
    ],
)
def test_multi_accent_policies_on_free_text(policy, kept_train, reasons, tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "corpus", "free_text", cv_clips)
    manifest, drops = prepare(lang, tmp_path / "wav", multi_accent=policy)
    kept, dropped = counts(manifest, drops.frame())
    assert {k: v for k, v in kept.items() if k[0] == "train"} == kept_train
    assert {r: n for (s, r), n in dropped.items() if r.startswith("multi")} == reasons


def test_subsample_is_seeded_and_independent_of_processes(tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "corpus", "free_text", cv_clips)
    runs = [
        prepare(lang, tmp_path / f"wav{p}", splits_subsample={"train": 1, "dev": None}, processes=p) for p in (1, 3)
    ]
    (m1, d1), (m3, d3) = runs
    assert m1["utt_id"].tolist() == m3["utt_id"].tolist()
    assert d1.frame().drop(columns="detail").equals(d3.frame().drop(columns="detail"))
    reasons = Counter(d1.frame()["reason"])
    assert reasons["subsampled"] == 3  # train rows 1, 2, 6, 8 survive the accent and text checks; 1 is drawn
    assert (m1["split"] == "dev").sum() == 2


def test_subsample_must_be_positive(tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "corpus", "codes", cv_clips)
    with pytest.raises(DataError, match=r"subsample\.train"):
        prepare(lang, tmp_path / "wav", splits_subsample={"train": 0})


@pytest.mark.parametrize("schema", ["codes", "free_text"])
@pytest.mark.parametrize(
    "drop, row, clip, reason",
    [
        ({}, 7, 7, "empty_sentence"),  # found while reading, before any audio work
        ({7, 9}, 6, 6, "missing_clip"),
        ({6, 7, 9}, 6, 8, "unreadable_audio"),  # rows 6, 7 left out: clip 8 is now data row 6
    ],
)
def test_on_bad_row_error_names_file_row_and_clip(schema, drop, row, clip, reason, tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "corpus", schema, cv_clips, drop_rows={"train": drop})
    with pytest.raises(DataError) as err:
        prepare(lang, tmp_path / "wav", on_bad_row="error")
    msg = str(err.value)
    assert f"{lang / 'train.tsv'}: row {row} (data row, header excluded)" in msg
    assert clip_name(clip) in msg and reason in msg


def test_unknown_code_is_an_error(tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "corpus", "codes", cv_clips, drop_rows={"train": {6, 7, 8}})
    with pytest.raises(DataError, match=r"train\.tsv: row 6 .*common_voice_en_00000009\.mp3: unknown_accent"):
        prepare(lang, tmp_path / "wav", on_bad_row="error")


def test_empty_audio_is_an_error(tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "corpus", "codes", cv_clips, drop_rows={"train": {6, 7, 8, 9}})
    with pytest.raises(DataError, match=r"test\.tsv: row 3 .*common_voice_en_00000014\.mp3: empty_audio"):
        prepare(lang, tmp_path / "wav", on_bad_row="error")


def test_blank_lines_are_logged_and_rows_keep_their_numbers(tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "corpus", "codes", cv_clips)
    dev = lang / "dev.tsv"
    header, first, second = dev.read_text().splitlines()
    dev.write_text(f"{header}\n{first}\n\n{second}\n")
    manifest, drops = prepare(lang, tmp_path / "wav", classes={"indian": CLASSES["indian"]})
    frame = drops.frame()
    assert frame.loc[frame["split"] == "dev", ["row", "reason"]].values.tolist() == [
        [1, "other_accent"],
        [2, "blank_line"],
    ]
    assert manifest.loc[manifest["split"] == "dev", "source_row"].tolist() == [3]


def test_missing_split_file_and_accent_column(tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "corpus", "codes", cv_clips)
    (lang / "dev.tsv").unlink()
    with pytest.raises(DataError, match="no Common Voice English folder"):
        find_language_dir(tmp_path / "corpus")
    with pytest.raises(DataError, match=r"dev\.tsv: Common Voice split file not found"):
        prepare(lang, tmp_path / "wav")
    lang2 = make_corpus(tmp_path / "corpus2", "codes", cv_clips)
    test_tsv = lang2 / "test.tsv"
    test_tsv.write_text(test_tsv.read_text().replace("\taccent\t", "\tvariant\t", 1))
    with pytest.raises(DataError, match=r"test\.tsv: no accent column"):
        prepare(lang2, tmp_path / "wav")


def test_find_language_dir(tmp_path, cv_clips):
    lang = make_corpus(tmp_path / "a", "codes", cv_clips)
    assert find_language_dir(tmp_path / "a") == lang
    assert find_language_dir(lang) == lang
    assert find_language_dir(lang.parent) == lang
    shutil.copytree(tmp_path / "a" / RELEASE, tmp_path / "a" / "cv-corpus-98.0-2098-01-01")
    with pytest.raises(DataError, match="several Common Voice releases"):
        find_language_dir(tmp_path / "a")
    with pytest.raises(DataError, match="folder not found"):
        find_language_dir(tmp_path / "nowhere")


def test_archive_round_trip(tmp_path, cv_clips):
    make_corpus(tmp_path / "src", "free_text", cv_clips)
    archive = tmp_path / "cv-corpus-99.0-2099-01-01-en.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(tmp_path / "src" / RELEASE, arcname=RELEASE)
    dest = extract_archive(archive, tmp_path / "extracted")
    lang = find_language_dir(dest)
    assert lang == tmp_path / "extracted" / RELEASE / "en"
    assert [p.name for p in (tmp_path).iterdir() if p.name.endswith(".part")] == []
    manifest, drops = prepare(lang, tmp_path / "wav")
    assert counts(manifest, drops.frame()) == (EXPECTED_KEPT["free_text"], EXPECTED_DROPS["free_text"])


def test_archive_missing_or_unsafe(tmp_path):
    missing = tmp_path / "cv-corpus-1.0-en.tar.gz"
    with pytest.raises(DataError, match=f"{missing}: Common Voice archive not found"):
        extract_archive(missing, tmp_path / "out")
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        data = b"escaped"
        member = tarfile.TarInfo("../escaped.txt")
        member.size = len(data)
        tar.addfile(member, io.BytesIO(data))
    with pytest.raises(DataError, match=f"{evil}: cannot extract"):
        extract_archive(evil, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "out").exists()
    corrupt = tmp_path / "corrupt.tar.gz"
    corrupt.write_bytes(b"not a tar archive" * 64)
    with pytest.raises(DataError, match=f"{corrupt}: cannot extract"):
        extract_archive(corrupt, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert [p for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


def test_mdc_without_key(monkeypatch, tmp_path):
    monkeypatch.delenv("MDC_API_KEY", raising=False)
    with pytest.raises(DataError, match="MDC_API_KEY is not set"):
        download_mdc("common-voice-en-99", tmp_path)


class _Refuse(http.server.BaseHTTPRequestHandler):
    """A local stand-in for the MDC API that refuses every request the way MDC refuses a bad key."""

    status = 401

    def do_GET(self):  # noqa: N802 (http.server's naming)
        body = json.dumps({"message": "refused by the test server"}).encode()
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_POST = do_GET

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("status", [401, 403])
def test_mdc_rejected_key(status, monkeypatch, tmp_path):
    handler = type("Refuse", (_Refuse,), {"status": status})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("MDC_API_KEY", "not-a-real-key")
        monkeypatch.setenv("MDC_API_URL", f"http://127.0.0.1:{server.server_address[1]}/api")
        with pytest.raises(DataError, match=r"rejected the key in MDC_API_KEY for dataset 'cv-en-99'.*terms"):
            download_mdc("cv-en-99", tmp_path, show_progress=False)
    finally:
        server.shutdown()
        server.server_close()
