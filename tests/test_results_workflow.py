"""The results stage on the real smoke run: the tidy frame, the tables, the comparison, the figures and the report."""

from __future__ import annotations

import base64
import json
import re

import jiwer
import pandas as pd
import pytest
from conftest import SMOKE, run_snakemake

from hne_core.results.aggregate import ADVTWER_COLUMNS, read_advtwer


def test_smoke_advtwer_frame_matches_the_attacks(smoke_run):
    frame = pd.read_csv(smoke_run / "results/tables/advtwer.csv")
    assert list(frame.columns) == ADVTWER_COLUMNS  # spelled out in tests/test_tables.py
    assert sorted(zip(frame.lambda_a, frame.lambda_c_train, frame.lambda_c_infer, frame.steps)) == [
        (0.7, 0.3, 0.0, 2),
        (0.7, 0.3, 0.0, 4),
        (1.0, 0.0, 0.0, 2),
        (1.0, 0.0, 0.0, 4),
    ]
    assert (frame.n_utts == 4).all()
    assert (read_advtwer(smoke_run / "results/tables/advtwer.csv")["tasks"] == "").all()  # the paper's models
    assert ((frame.adv_twer_ci_low <= frame.adv_twer + 1e-4) & (frame.adv_twer <= frame.adv_twer_ci_high + 1e-4)).all()
    assert ((frame.ref_wer_ci_low <= frame.ref_wer + 1e-4) & (frame.ref_wer <= frame.ref_wer_ci_high + 1e-4)).all()
    assert (frame.ref_wer >= 0).all() and frame.ref_wer.notna().all()
    for row in frame.itertuples():
        model = f"la{row.lambda_a}_lc{row.lambda_c_train}"
        attack = json.loads((smoke_run / f"results/attacks/{model}/infer0.0/pgd{row.steps}/summary.json").read_text())
        benign = json.loads((smoke_run / f"results/eval/{model}/infer0.0/summary.json").read_text())
        assert abs(row.adv_twer - attack["adv_twer"]) < 1e-3
        assert abs(row.ref_wer - attack["wer"]) < 1e-3  # the job's WER against the references, now in the frame
        utts = pd.read_csv(
            smoke_run / f"results/attacks/{model}/infer0.0/pgd{row.steps}/utterances.csv", keep_default_na=False
        )
        assert abs(row.ref_wer - 100 * jiwer.wer(list(utts.reference), list(utts.hypothesis))) < 1e-3
        assert abs(row.benign_wer - 100 * benign["wer"]) < 1e-3
        assert pd.isna(row.accent_acc) == (benign["accent_acc"] is None)


def test_smoke_tables_comparison_and_figures(smoke_run):
    tables, figures = smoke_run / "results/tables", smoke_run / "results/figures"
    frame = pd.read_csv(tables / "advtwer.csv")
    table = pd.read_csv(tables / "smoke.csv", keep_default_na=False)
    assert list(table.columns) == ["steps", "STL (Decoder) (baseline)", "MTL + discriminator", "bold", "highlighted"]
    assert table.steps.tolist() == ["PGD-2", "PGD-4"]
    for row in table.itertuples(index=False):
        steps = int(row.steps.removeprefix("PGD-"))
        at = frame[frame.steps == steps].set_index("lambda_a").adv_twer.round(2)
        assert (float(row[1]), float(row[2])) == (at[1.0], at[0.7])
        assert row.bold == ";".join(
            lab for lab, v in (("STL (Decoder)", at[1.0]), ("MTL + discriminator", at[0.7])) if v == at.max()
        )
        assert row.highlighted == ("MTL + discriminator" if at[0.7] > at[1.0] else "")
    refwer = pd.read_csv(tables / "smoke_refwer.csv", keep_default_na=False)
    assert list(refwer.columns) == list(table.columns) and refwer.steps.tolist() == table.steps.tolist()
    for row in refwer.itertuples(index=False):
        steps = int(row.steps.removeprefix("PGD-"))
        rw = frame[frame.steps == steps].set_index("lambda_a").ref_wer.round(2)
        assert (float(row[1]), float(row[2])) == (rw[1.0], rw[0.7])
        assert row.bold == ";".join(
            lab for lab, v in (("STL (Decoder)", rw[1.0]), ("MTL + discriminator", rw[0.7])) if v == rw.min()
        )  # lower is more robust
        assert row.highlighted == ("MTL + discriminator" if rw[0.7] < rw[1.0] else "")
    for ext in ("md", "tex", "html"):
        assert "against the references" in (tables / f"smoke_refwer.{ext}").read_text()
    md = (tables / "smoke.md").read_text()
    assert "| PGD-2 |" in md and "| λA/λC(t)/λC(i) | *1.0/0.0/0.0* | 0.7/0.3/0.0 |" in md
    assert (tables / "smoke.tex").read_text().count(r"\\") == 4  # header, λ row, two milestones
    benign = pd.read_csv(tables / "benign.csv")
    assert benign.model.tolist() == ["pretrained", "la0.7_lc0.3", "la1.0_lc0.0"]
    comparison = (tables / "paper_comparison.md").read_text()
    assert len(re.findall(r"^### \d\. .*: \*\*(holds|does not hold|partly holds)\*\*$", comparison, re.M)) == 3
    assert "matched by position (2 ↔ PGD-500, 4 ↔ PGD-1000)" in comparison
    assert (figures / "figure1.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (figures / "figure1.pdf").read_bytes()[:5] == b"%PDF-"
    assert (figures / "training_curves.png").stat().st_size > 10_000


def test_report_holds_the_tables(smoke_run):
    run_snakemake(smoke_run, "--configfile", str(SMOKE), "--report", "report.html")
    page = (smoke_run / "report.html").read_text()
    embedded = {
        name: base64.b64decode(data).decode("utf-8", "replace")
        for name, data in re.findall(r"data:[a-z/+.-]+;charset=[^;]+;filename=([^;]+);base64,([A-Za-z0-9+/=]+)", page)
    }
    tables = smoke_run / "results/tables"
    for name in (
        "smoke.csv",
        "smoke.html",
        "smoke_refwer.csv",
        "smoke_refwer.html",
        "advtwer.csv",
        "benign.csv",
        "benign.html",
        "paper_comparison.md",
    ):
        assert embedded[name] == (tables / name).read_text(), name
    assert {"figure1.png", "training_curves.png"} <= set(embedded)
    assert "percentile bootstrap over the attacked utterances" in page  # a caption says how it was made


def test_decoding_effect_redecodes_a_finished_run_in_the_other_mode(smoke_run):
    """The smoke run decodes in mode exact; the tool re-decodes its one joint evaluation (λC(i) = 0.3) in
    espnet_beam1, skips λC(i) = 0 (both modes pick the same tokens there), and its exact column is the run's own."""
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "hne_core.results.decoding_effect", str(smoke_run / "results")],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    lines = out.stdout.strip().splitlines()
    assert lines[-1].startswith("benign_changed=") and lines[-1].endswith(" attacked_changed=0/0")
    row = next(line.split() for line in lines if line.split()[:2] == ["benign", "la0.7_lc0.3"])
    summary = json.loads((smoke_run / "results/eval/la0.7_lc0.3/infer0.3/summary.json").read_text())
    assert float(row[6]) == pytest.approx(100 * summary["wer"], abs=0.005)  # wer_exact, printed to 2 decimals
    assert 0 <= int(row[5]) <= int(row[4]) == summary["n_utts"]
