"""The Common Voice source through the workflow's own rules (paper config), on a self-made CV-shaped corpus."""

from __future__ import annotations

import json
import tarfile

import pandas as pd
import pytest
import yaml
from conftest import REPO, run_snakemake
from cv_fixture import EXPECTED_DROPS, MIN_SAMPLES, RELEASE, cv_clips, make_corpus  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow  # real workflow runs (minutes each)

PAPER = str(REPO / "configs" / "paper.yaml")
DATA_TARGETS = [
    "results/paper/data/report.json",
    *(f"results/paper/data/{s}/wav.scp" for s in ("train", "dev", "test")),
]


def overlay(tmp_path, archive, on_bad_row="skip") -> str:
    path = tmp_path / "cv.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "commonvoice": {"archive": str(archive), "subsample": {"train": None, "dev": None, "test": None}},
                "data": {"on_bad_row": on_bad_row, "min_samples": MIN_SAMPLES, "threads": 2},
            }
        )
    )
    return str(path)


def check_outputs(workdir):
    data = workdir / "results/paper/data"
    summary = json.loads((data / "report.json").read_text())
    assert summary["total_utterances"] == 6
    drops = pd.read_csv(data / "dropped.tsv", sep="\t")
    assert drops.groupby(["split", "reason"]).size().to_dict() == EXPECTED_DROPS["codes"]
    assert (data / "accent_classes.txt").read_text() == "0 us\n1 indian\n"
    for split in ("train", "dev", "test"):
        accents = sorted(line.split()[1] for line in (data / split / "accent").read_text().splitlines())
        assert accents == ["0", "1"]
    text = (data / "train" / "text").read_text()
    assert "HELLO WORLD THIS IS A TEST" in text and "SHE SAID YES DIDN'T SHE" in text


def test_commonvoice_folder_in_place(tmp_path, cv_clips):
    root = tmp_path / "cv"
    make_corpus(root, "codes", cv_clips)
    run_snakemake(tmp_path, *DATA_TARGETS, "--cores", "2", "--configfile", PAPER, overlay(tmp_path, root / RELEASE))
    check_outputs(tmp_path)
    assert not (tmp_path / "resources").exists(), "a folder is read in place, not copied"


def test_commonvoice_archive_is_extracted_then_prepared(tmp_path, cv_clips):
    root = tmp_path / "cv"
    make_corpus(root, "codes", cv_clips)
    archive = tmp_path / f"{RELEASE}-en.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(root / RELEASE, arcname=RELEASE)
    run_snakemake(tmp_path, *DATA_TARGETS, "--cores", "2", "--configfile", PAPER, overlay(tmp_path, archive))
    check_outputs(tmp_path)
    assert (tmp_path / "resources/commonvoice/corpus" / RELEASE / "en" / "train.tsv").is_file()


def test_bad_row_stops_the_job_naming_file_and_row(tmp_path, cv_clips):
    root = tmp_path / "cv"
    lang = make_corpus(root, "codes", cv_clips)
    proc = run_snakemake(
        tmp_path,
        *DATA_TARGETS,
        "--cores",
        "2",
        "--configfile",
        PAPER,
        overlay(tmp_path, root / RELEASE, on_bad_row="error"),
        check=False,
    )
    assert proc.returncode != 0
    log = (tmp_path / "results/paper/logs/data/prepare_commonvoice.log").read_text()
    assert f"{lang / 'train.tsv'}: row" in log
    assert not (tmp_path / "results/paper/data/manifest.tsv").exists()
    assert not (tmp_path / "results/paper/data/wav").exists()
