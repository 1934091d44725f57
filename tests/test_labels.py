"""Task labels (hne_core/data/labels.py): a source column mapped to a task's classes, the label files of the
manifest's task columns, and their counts in the data report."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import REPO
from cv_fixture import LABEL_MAPS

from hne_core.data.corpus import MANIFEST_COLUMNS, read_kaldi_table, write_report, write_task_labels, write_tsv
from hne_core.data.errors import ConfigError, DataError
from hne_core.data.labels import (
    LabelMap,
    describe_tally,
    label_maps,
    label_row,
    summarize_task_labels,
    tally_labels,
)

SEX = LabelMap.from_config("sex", LABEL_MAPS["sex"], "commonvoice.labels.sex")
AGE = LabelMap.from_config("age", LABEL_MAPS["age"], "commonvoice.labels.age")
TASKS = {"sex": {"classes": ["female", "male"]}, "age": {"classes": ["young", "middle", "older"]}}


def test_the_fixture_maps_are_config_yamls():
    config = yaml.safe_load((REPO / "config.yaml").read_text())
    assert config["commonvoice"]["labels"] == LABEL_MAPS
    assert {t: list(m["values"]) for t, m in LABEL_MAPS.items()} == {t: s["classes"] for t, s in TASKS.items()}


@pytest.mark.parametrize(
    "raw, label, reason",
    [
        ("female", "female", ""),  # CV <= 7.0
        ("male_masculine", "male", ""),  # CV >= 8.0
        ("  Male_Masculine ", "male", ""),  # case and spaces do not matter
        ("", "", "empty"),
        ("   ", "", "empty"),
        ("other", "", "unknown"),
        ("do_not_wish_to_say", "", "unknown"),
        ("female_feminine,non-binary", "female", ""),  # one class and an unknown value
        ("female,female_feminine", "female", ""),  # two values of one class
        ("non-binary, transgender", "", "unknown"),
        ("female_feminine,male_masculine", "", "ambiguous"),
        ("robot", None, "bad_label"),
        ("female_feminine,robot", None, "bad_label"),
    ],
)
def test_gender_values_of_both_releases(raw, label, reason):
    outcome = SEX.classify(raw)
    assert (outcome.label, outcome.reason) == (label, reason)
    assert SEX.label_of(raw) == label


def test_a_bad_value_is_named_with_the_column_classes_and_config_key():
    assert SEX.classify("robot").detail == (
        "gender 'robot' is neither a value of a sex class (['female', 'male']) nor an unknown value "
        "(config commonvoice.labels.sex)"
    )
    assert "('robot' in it)" in SEX.classify("female_feminine,robot").detail
    assert "classes ['female', 'male']" in SEX.classify("female,male").detail


def test_a_value_holding_a_comma_is_one_value():
    m = LabelMap.from_config("age", {"column": "age", "values": {"young": ["under 30, over 18"], "old": ["60+"]}})
    assert m.label_of("under 30, over 18") == "young"
    assert m.label_of("Under 30, over 18,60+") == ""  # two classes
    assert m.label_of("") == ""  # unknown defaults to [""]
    assert m.label_of("under 30") is None


@pytest.mark.parametrize(
    "spec, key",
    [
        ({"column": "gender"}, "folder.labels.sex.values"),
        ({"column": "", "values": {"f": ["f"]}}, "folder.labels.sex.column"),
        ({"column": "gender", "values": {"f": []}}, "folder.labels.sex.values"),
        ({"column": "gender", "values": {"f": ["f"]}, "unknown": "x"}, "folder.labels.sex.unknown"),
        ({"column": "gender", "values": {"f": ["f"]}, "extra": 1}, "folder.labels.sex"),
        ({"column": "gender", "values": {"f": ["f"], "m": ["F "]}}, "folder.labels.sex.values"),
        ({"column": "gender", "values": {"f": ["f"]}, "unknown": ["f"]}, "folder.labels.sex.values"),
    ],
)
def test_config_errors_name_the_key(spec, key):
    with pytest.raises(ConfigError) as err:
        label_maps({"sex": spec}, "folder.labels")
    assert err.value.key == key


def test_label_row_stops_at_the_first_bad_value():
    assert label_row((SEX, AGE), {"gender": "male", "age": "fourties"}) == ({"sex": "male", "age": "middle"}, None)
    assert label_row((SEX, AGE), {"gender": "robot", "age": "fourties"}) == ({}, SEX)
    assert label_row((SEX, AGE), {"gender": "male", "age": "100"}) == ({"sex": "male"}, AGE)


def test_tally_counts_classes_and_why_labels_are_missing():
    rows = [
        {"gender": g, "age": "twenties"}
        for g in ["female", "male_masculine", "other", "", "female_feminine,male_masculine", "female"]
    ]
    counts = tally_labels((SEX, AGE), rows)
    assert counts["sex"] == Counter(
        {("female", ""): 2, ("male", ""): 1, ("", "unknown"): 1, ("", "empty"): 1, ("", "ambiguous"): 1}
    )
    assert counts["age"] == Counter({("young", ""): 6})
    assert describe_tally(counts) == (
        "sex: female 2, male 1, no label 3 (empty 1, unknown 1, ambiguous 1); age: young 6, no label 0"
    )


def test_the_module_imports_without_pandas():
    code = "import sys; import hne_core.data.labels; print('pandas' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# ---------------------------------------------------------------------------------------------- label files


def manifest(path: Path, sex: list[str], splits: list[str] | None = None) -> Path:
    """A manifest of len(sex) utterances (ids in reverse order, to see the files sorted), with a sex column."""
    n = len(sex)
    frame = pd.DataFrame(
        {
            "utt_id": [f"spk-{i:02d}" for i in reversed(range(n))],
            "split": splits or ["train"] * n,
            "speaker": ["spk"] * n,
            "accent": ["us"] * n,
            "accent_id": [0] * n,
            "text": ["HELLO"] * n,
            "wav": [f"/w/{i}.wav" for i in range(n)],
            "num_samples": [16000] * n,
            "duration_s": [1.0] * n,
            "sex": sex,
        },
        columns=[*MANIFEST_COLUMNS, "sex"],
    )
    write_tsv(frame, path)
    return path


def test_label_file_lines_sorted_with_minus_one_for_no_label(tmp_path):
    path = manifest(tmp_path / "manifest.tsv", ["female", "", "male", "female"], ["train", "train", "dev", "train"])
    out = tmp_path / "train" / "labels_sex"
    counts = write_task_labels(path, "train", "sex", ["female", "male"], out)
    assert out.read_text() == "spk-00 0\nspk-02 -1\nspk-03 0\n"
    assert counts == {"female": 2, "male": 0, "": 1}
    assert read_kaldi_table(out) == {"spk-00": "0", "spk-02": "-1", "spk-03": "0"}
    write_task_labels(path, "dev", "sex", ["male", "female"], tmp_path / "labels_dev")  # index = position
    assert (tmp_path / "labels_dev").read_text() == "spk-01 0\n"


def test_label_file_errors_name_the_manifest_utterance_and_value(tmp_path):
    path = manifest(tmp_path / "manifest.tsv", ["female", "robot"])
    with pytest.raises(DataError, match=rf"{path}: utterance 'spk-00' has sex 'robot', not one of the classes"):
        write_task_labels(path, "train", "sex", ["female", "male"], tmp_path / "labels_sex")
    assert not (tmp_path / "labels_sex").exists()
    with pytest.raises(DataError, match=rf"{path}: no 'age' column"):
        write_task_labels(path, "train", "age", ["young", "older"], tmp_path / "labels_age")
    with pytest.raises(DataError, match=rf"{path}: split 'test' has no utterances"):
        write_task_labels(path, "test", "sex", ["female", "male"], tmp_path / "labels_sex")


# ---------------------------------------------------------------------------------------------- the report


def test_report_counts_each_class_and_missing_labels_per_split(tmp_path):
    path = manifest(tmp_path / "manifest.tsv", ["female", "", "male", "female"], ["train", "train", "dev", "train"])
    frame = pd.read_csv(path, sep="\t", dtype={"sex": str}, keep_default_na=False)
    dropped = pd.DataFrame(columns=["split", "source_file", "row", "utt_id", "reason", "detail"])
    summary = write_report(frame, dropped, "test corpus", tmp_path / "report.md", tmp_path / "report.json", TASKS)
    expected = {
        "sex": {
            "classes": ["female", "male"],
            "splits": {
                "train": {"classes": {"female": 2, "male": 0}, "missing": 1},
                "dev": {"classes": {"female": 0, "male": 1}, "missing": 0},
            },
        }
    }
    assert summary["tasks"] == expected
    assert json.loads((tmp_path / "report.json").read_text())["tasks"] == expected
    md = (tmp_path / "report.md").read_text()
    assert "### sex\n\n| split | female | male | no label |\n|---|---:|---:|---:|\n| train | 2 | 0 | 1 |\n" in md
    assert "| dev | 0 | 1 | 0 |" in md
    assert "Not in this source's manifest (no labels): age." in md


def test_report_without_tasks_is_unchanged(tmp_path):
    path = manifest(tmp_path / "manifest.tsv", ["female", "male"])
    frame = pd.read_csv(path, sep="\t", keep_default_na=False)
    dropped = pd.DataFrame(columns=["split", "source_file", "row", "utt_id", "reason", "detail"])
    summary = write_report(frame, dropped, "t", tmp_path / "r.md", tmp_path / "r.json")
    assert summary["tasks"] == {}
    assert "Task labels" not in (tmp_path / "r.md").read_text()
    assert summarize_task_labels(frame, {"age": {"classes": ["young", "older"]}}, ("train", "dev", "test")) == {}
