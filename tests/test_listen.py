"""How the attacks sound: SNR, PESQ (wide band) and STOI on real speech, the perceptual table of the smoke run, and
its listening page opened in a real headless browser (Debian's Chromium, tests/browser.py)."""

from __future__ import annotations

import html
import math
import re
import subprocess

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml
from browser import check_page
from conftest import SMOKE, run_snakemake

from hne_core.attack.job import load_state
from hne_core.data.utterances import read_audio, read_data_dir
from hne_core.results.listen import amplify, choose_utterances, wav_bytes
from hne_core.results.perceptual import (
    PESQ_MAX,
    TABLE_COLUMNS,
    UTTERANCE_COLUMNS,
    median_frame,
    pesq_wb,
    score_utterance,
    snr_db,
    stoi_score,
)

U64 = 2.0**-53
# P.862.2 maps a raw PESQ score r to MOS-LQO 0.999 + 4 / (1 + exp(-1.3669 r + 3.8224)); a clip against itself has
# the raw maximum 4.5. The C code works in float32 (u = 2^-24): a few roundings of a value below 5.
PESQ_CEILING = 0.999 + 4.0 / (1.0 + math.exp(-1.3669 * 4.5 + 3.8224))
PESQ_TOL = 16 * 5 * 2.0**-24
PESQ_FLOOR = 0.999  # the same mapping as r -> -inf
# STOI of a clip against itself: a mean of correlations, each of two identical 30-sample vectors normalised in
# float64, so 1 up to ~30 roundings of each sum and the division.
STOI_TOL = 100 * 30 * U64


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> np.ndarray:
    """A real utterance: espeak-ng's voice, resampled to 16 kHz mono by sox (what the data stage writes)."""
    folder = tmp_path_factory.mktemp("speech")
    raw, wav = folder / "raw.wav", folder / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), "the quick brown fox jumps over the lazy dog"], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", "-c", "1", "-b", "16", str(wav)], check=True)
    return read_audio(str(wav))


def noise_at(clean: np.ndarray, snr: float, seed: int = 0) -> np.ndarray:
    """Gaussian noise scaled so that 10·log10(Σx²/Σδ²) = ``snr``."""
    delta = np.random.default_rng(seed).standard_normal(len(clean))
    delta *= math.sqrt(np.sum(clean.astype(np.float64) ** 2) / np.sum(delta**2) / 10 ** (snr / 10))
    return delta.astype(np.float32)


# ------------------------------------------------------------------------------------------------ measures
def test_a_clip_against_itself_scores_the_packages_maxima(speech):
    assert PESQ_CEILING == pytest.approx(PESQ_MAX, abs=5e-3)
    value, error = pesq_wb(speech, speech)
    assert error == "" and value == pytest.approx(PESQ_CEILING, abs=PESQ_TOL)
    value, error = stoi_score(speech, speech)
    assert error == "" and abs(value - 1.0) <= STOI_TOL
    zero = score_utterance(speech, np.zeros_like(speech))
    assert zero["snr_db"] == math.inf and zero["pesq_wb"] == pytest.approx(PESQ_CEILING, abs=PESQ_TOL)


def test_more_noise_sounds_worse_and_the_snr_is_the_one_constructed(speech):
    scores = [score_utterance(speech, noise_at(speech, snr)) for snr in (40.0, 20.0, 5.0)]
    for snr, s in zip((40.0, 20.0, 5.0), scores):
        # δ rounded to float32: each sample within u/2 relative, so Σδ² within ~u relative, 10·log10 of it ~4.3u dB
        assert s["snr_db"] == pytest.approx(snr, abs=10 * 2.0**-24 * 4.35)
        assert PESQ_FLOOR < s["pesq_wb"] < PESQ_CEILING and 0.0 < s["stoi"] < 1.0
    assert scores[0]["pesq_wb"] > scores[1]["pesq_wb"] > scores[2]["pesq_wb"]
    assert scores[0]["stoi"] > scores[1]["stoi"] > scores[2]["stoi"]
    assert snr_db(speech, 2 * noise_at(speech, 20.0)) == pytest.approx(20.0 - 20 * math.log10(2), abs=1e-4)


def test_clips_pesq_or_stoi_refuse_are_nan_with_their_reason_and_counted(speech):
    silent = score_utterance(np.zeros(32000, np.float32), noise_at(np.ones(32000, np.float32), 60.0))
    assert math.isnan(silent["pesq_wb"]) and silent["pesq_error"] == "PESQ NoUtterancesError: No utterances detected"
    assert math.isnan(silent["stoi"]) and silent["stoi_error"] == "STOI: silent clean clip"
    short = score_utterance(speech[:3200], noise_at(speech[:3200], 30.0))  # 0.2 s
    assert math.isnan(short["pesq_wb"]) and short["pesq_error"].startswith("PESQ BufferTooShortError")
    assert math.isnan(short["stoi"]) and short["stoi_error"] == "STOI: too few non-silent frames"
    good = [score_utterance(speech, noise_at(speech, snr, seed=k)) for k, snr in enumerate((10.0, 20.0, 30.0))]
    key = {"lambda_a": 1.0, "lambda_c_train": 0.0, "lambda_c_infer": 0.0, "steps": 500}
    utts = pd.DataFrame(
        [{**key, "utt_id": f"u{i}", **s} for i, s in enumerate([*good, silent, short])], columns=UTTERANCE_COLUMNS
    )
    (row,) = median_frame(utts).to_dict("records")
    assert list(median_frame(utts).columns) == TABLE_COLUMNS
    assert row["n_utts"] == 5 and row["pesq_unscored"] == 2 and row["stoi_unscored"] == 2
    assert row["pesq_wb"] == np.median([s["pesq_wb"] for s in good])  # the scored ones only, never 0 or 4.64
    assert row["stoi"] == np.median([s["stoi"] for s in good])
    assert "PESQ NoUtterancesError: No utterances detected ×1" in row["unscored_reasons"]
    assert "STOI: too few non-silent frames ×1" in row["unscored_reasons"]


# ------------------------------------------------------------------------------------------------ page pieces
def test_the_chosen_utterances_are_seeded_and_in_the_attacks_order():
    ids = [f"utt{i:02d}" for i in range(32)]
    chosen = choose_utterances(ids, 3, seed=7)
    assert chosen == choose_utterances(ids, 3, seed=7) and len(set(chosen)) == 3
    assert chosen == sorted(chosen, key=ids.index)
    assert chosen != choose_utterances(ids, 3, seed=8)
    assert choose_utterances(ids[:2], 3, seed=7) == ids[:2]


def test_delta_is_amplified_by_the_gain_said_and_never_clips(tmp_path):
    delta = np.array([0.001, -0.002, 0.0005], np.float32)
    loud, gain = amplify(delta, 20.0)
    assert gain == pytest.approx(20.0, abs=1e-12) and np.allclose(loud, 10 * delta.astype(np.float64), rtol=1e-12)
    loud, gain = amplify(np.array([0.2, -0.5]), 20.0)  # ×10 would reach 5: lowered to full scale
    assert np.abs(loud).max() == pytest.approx(32767 / 32768) and gain == pytest.approx(20 * math.log10(65534 / 32768))
    path = tmp_path / "d.wav"
    path.write_bytes(wav_bytes(loud))
    samples, rate = sf.read(path, dtype="int16")
    assert rate == 16000 and samples.tolist() == np.round(loud * 32767).astype(int).tolist()


# ------------------------------------------------------------------------------------------------ the smoke run
def test_smoke_perceptual_table_is_the_stored_attacks_measured(smoke_run):
    tables = smoke_run / "results/tables"
    utts = pd.read_csv(tables / "perceptual_utterances.csv", keep_default_na=False, dtype={"utt_id": str})
    frame = pd.read_csv(tables / "perceptual.csv", keep_default_na=False)
    assert list(utts.columns) == UTTERANCE_COLUMNS and list(frame.columns) == TABLE_COLUMNS
    assert len(utts) == 2 * 2 * 4 and (frame.n_utts == 4).all() and len(frame) == 4  # 2 columns x PGD-2, 4
    clean = {u.utt_id: u for u in read_data_dir(smoke_run / "results/data/test")}
    for (model, steps), part in utts.groupby([utts.lambda_a.map({1.0: "la1.0_lc0.0", 0.7: "la0.7_lc0.3"}), "steps"]):
        folder = smoke_run / f"results/attacks/{model}/infer0.0/pgd{steps}"
        state, attack = load_state(folder / "state.npz"), pd.read_csv(folder / "utterances.csv", dtype={"utt_id": str})
        assert part.utt_id.tolist() == state["utt_ids"] == attack.utt_id.tolist()
        for row, delta, job_snr in zip(part.itertuples(), state["deltas"], attack.snr_db):
            # both from the stored (int16-quantised) δ: the same float64 sums, printed and read back exactly
            assert row.snr_db == pytest.approx(job_snr, rel=8 * U64)
            x = read_audio(str(smoke_run / clean[row.utt_id].wav))
            assert row.pesq_wb == pytest.approx(pesq_wb(x, x + delta)[0], abs=0)  # the same clip, the same score
            assert PESQ_FLOOR < row.pesq_wb <= PESQ_CEILING + PESQ_TOL and 0 <= row.stoi <= 1
        medians = frame[(frame.lambda_a == part.lambda_a.iloc[0]) & (frame.steps == steps)].iloc[0]
        for col in ("snr_db", "pesq_wb", "stoi"):
            assert float(medians[col]) == pytest.approx(part[col].median(), abs=5e-5)  # printed to 4 decimals
    md = (tables / "perceptual.md").read_text()
    assert "NOT the paper's attack budget" in md and "| 1.0/0.0/0.0 | smoke: STL (Decoder) | PGD-2 |" in md
    for ext in ("tex", "html"):
        assert "Perceptual measures of the attacks" in (tables / f"perceptual.{ext}").read_text()


def test_smoke_listen_page_loads_and_plays_in_chromium(smoke_run, tmp_path):
    page = smoke_run / "results/listen/index.html"
    text = page.read_text()
    assert not re.search(r"""(src|href)=["'](?!data:)""", text), "self-contained: every source is a data: URI"
    attacked = (smoke_run / "results/attacks/utterances.txt").read_text().split()
    chosen = choose_utterances(attacked, 3, seed=7)  # smoke.yaml's seed, config.yaml's listen.n_utterances
    assert [u for u in attacked if f'<h2 id="{u}">' in text] == chosen
    assert "played amplified by +20.0 dB" in text
    report = check_page(page, tmp_path / "chromium", screenshot=tmp_path / "listen.png")
    assert report.title == "Listen to the attacks"
    assert report.problems() == []
    assert len(report.audio) == 3 * (1 + 2 * 2)  # per utterance: the clean clip, x + δ and δ of both columns
    assert len(report.images) == len(report.audio)  # a spectrogram under every player
    assert "3 of the 4 attacked test utterances" in text
    for model in ("la1.0_lc0.0", "la0.7_lc0.3"):  # each column's hypotheses at the last milestone, PGD-4
        rows = pd.read_csv(
            smoke_run / f"results/attacks/{model}/infer0.0/pgd4/utterances.csv", keep_default_na=False, dtype=str
        ).set_index("utt_id")
        assert all(f'<td class="text">{html.escape(rows.loc[u, "hypothesis"])}' in text for u in chosen)
    assert (tmp_path / "listen.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("cut", ["anywhere", "on a base64 boundary"])
def test_a_broken_page_fails_the_browser_check(smoke_run, tmp_path, cut):
    """The check can fail: one audio source cut short. Anywhere, the data: URI is invalid and the player errors;
    on a 4-character boundary it is valid base64 of a WAV shorter than its header says, which Chromium still plays,
    so only the decoded sample count gives it away."""
    text = (smoke_run / "results/listen/index.html").read_text()
    uris = re.findall(r'src="(data:audio/wav;base64,[^"]+)"', text)
    keep = len(uris[4]) // 2
    keep = keep - keep % 4 if cut == "on a base64 boundary" else keep - keep % 4 + 2
    broken = tmp_path / "index.html"
    broken.write_text(text.replace(uris[4], uris[4][:keep], 1))
    problems = check_page(broken, tmp_path / "chromium").problems()
    assert problems and all(p.startswith(("audio 4:", "log: Failed to load resource")) for p in problems), problems


def test_smoke_report_links_the_page_and_the_table(smoke_run, tmp_path):
    report = tmp_path / "report.html"
    run_snakemake(smoke_run, "--configfile", str(SMOKE), "--report", str(report))
    names = set(re.findall(r"filename=([^;]+);base64,", report.read_text()))
    assert {"index.html", "perceptual.csv", "perceptual.html"} <= names


@pytest.mark.parametrize(
    "overlay, key",
    [
        ({"tables": [{**yaml.safe_load(SMOKE.read_text())["tables"][0], "name": "perceptual"}]}, "tables.0"),
        ({"listen": {"delta_gain_db": -6}}, "listen.delta_gain_db"),
        ({"listen": {"n_utterances": 0}}, "listen.n_utterances"),
    ],
)
def test_a_wrong_listen_config_is_refused_naming_the_key(tmp_path, overlay, key):
    path = tmp_path / "overlay.yaml"
    path.write_text(yaml.safe_dump(overlay))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(SMOKE), str(path), check=False)
    assert proc.returncode != 0 and f"Invalid config key '{key}'" in proc.stdout + proc.stderr
