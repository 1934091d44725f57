"""The self-made corpus: seeded, balanced, split by speaker, real espeak-ng audio that ESPnet loads."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf

from hne_core.data.corpus import DataError, validate_manifest, write_espnet_dir
from hne_core.data.sources.synthetic import SyntheticSpec, build_script, read_script, synthesize
from hne_core.data.vocabulary import vocabulary
from hne_core.tokenizer import train_sentencepiece, unknown_token_rate, write_token_list

CLASSES = {"us_english": {"voice": "en-us"}, "scottish_english": {"voice": "en-gb-scotland"}}


def small_spec(seed: int = 3, **over) -> SyntheticSpec:
    cfg = dict(
        classes=CLASSES,
        variants=["m1", "m2", "m3", "f1", "f2", "f3"],
        speakers_per_split={"train": 2, "dev": 1, "test": 1},
        utterances={"train": 12, "dev": 4, "test": 4},
        rate=[140, 190],
        pitch=[30, 70],
        pitch_jitter=6,
    )
    cfg.update(over)
    return SyntheticSpec.from_config(cfg, seed=seed)


def hashes(wav_dir: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(wav_dir.glob("*.wav"))}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("synthetic")
    script = build_script(small_spec())
    manifest, drops = synthesize(script, root / "wav", processes=2)
    return root, script, manifest, drops


def test_vocabulary_is_a_few_hundred_words():
    assert 300 <= len(vocabulary()) <= 500


def test_script_is_seeded():
    a, b = build_script(small_spec(seed=3)), build_script(small_spec(seed=3))
    pd.testing.assert_frame_equal(a, b)
    c = build_script(small_spec(seed=4))
    assert not a["sentence"].equals(c["sentence"])


def test_same_seed_same_audio_whatever_the_process_count(corpus, tmp_path):
    root, script, _, _ = corpus
    synthesize(build_script(small_spec()), tmp_path / "again", processes=1)
    first, second = hashes(root / "wav"), hashes(tmp_path / "again")
    assert len(first) == len(script) == 20
    assert first == second


def test_balanced_and_split_by_speaker(corpus):
    _, _, manifest, drops = corpus
    assert drops.rows == []
    counts = manifest.groupby(["split", "accent"]).size().unstack()
    assert (counts["us_english"] == counts["scottish_english"]).all()
    assert counts.loc["train"].tolist() == [6, 6] and counts.loc["test"].tolist() == [2, 2]
    speakers = manifest.groupby("split")["speaker"].apply(set)
    assert not speakers["train"] & speakers["test"]
    assert not speakers["train"] & speakers["dev"]
    assert not speakers["dev"] & speakers["test"]
    variants = manifest.groupby("split")["variant"].apply(set)
    assert not variants["train"] & variants["test"], "a test voice variant is unseen in every class"
    assert variants["train"] == set(manifest[(manifest.split == "train") & (manifest.accent == "us_english")].variant)
    assert variants["train"] == set(
        manifest[(manifest.split == "train") & (manifest.accent == "scottish_english")].variant
    )
    per_speaker = manifest[manifest.split == "train"].groupby("speaker").size()
    assert per_speaker.nunique() == 1, "utterances are spread evenly over a split's speakers"
    assert manifest["text"].is_unique


@pytest.mark.parametrize("seed", range(6))
def test_both_sexes_in_every_split_and_class(seed):
    """The sex task's labels come from the variant (m* male, f* female) and every split of every accent class
    holds both sexes, whatever the seed (a plain shuffle gave the default corpus an all-female dev split)."""
    spec = small_spec(
        seed=seed,
        variants=["m1", "m2", "m3", "m4", "f1", "f2", "f3", "klatt"],
        speakers_per_split={"train": 3, "dev": 2, "test": 2},
    )
    script = build_script(spec)
    assert set(script.loc[script.variant.str.startswith("m"), "sex"]) == {"male"}
    assert set(script.loc[script.variant.str.startswith("f"), "sex"]) == {"female"}
    assert set(script.loc[script.variant == "klatt", "sex"]) <= {""}
    sexes = script[script.sex != ""].groupby(["split", "accent"])["sex"].apply(set)
    assert len(sexes) == 6 and all(s == {"female", "male"} for s in sexes), sexes


def test_audio_is_16k_mono_pcm16_and_speech_length(corpus):
    _, _, manifest, _ = corpus
    for row in manifest.itertuples():
        info = sf.info(row.wav)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert info.frames == row.num_samples
        assert 0.8 < row.duration_s < 6.0
        assert row.text == row.raw_text.upper()


def test_espnet_data_dir_and_tokenizer_load_with_espnet(corpus, tmp_path):
    """ESPnet's own dataset and preprocessor read the directory, tokenising with our sentencepiece model."""
    from espnet2.train.dataset import ESPnetDataset
    from espnet2.train.preprocessor import CommonPreprocessor

    _, _, manifest, _ = corpus
    validate_manifest(manifest, "test")
    out = write_espnet_dir(manifest, "train", tmp_path / "train")
    bpe, tokens = tmp_path / "bpe.model", tmp_path / "tokens.txt"
    train_sentencepiece(out / "text", bpe, "char", 64)
    write_token_list(out / "text", bpe, tokens)
    token_list = tokens.read_text().split()
    assert token_list[:2] == ["<blank>", "<unk>"] and token_list[-1] == "<sos/eos>"
    assert unknown_token_rate(out / "text", bpe, tokens)[0] == 0.0
    preprocess = CommonPreprocessor(train=False, token_type="bpe", token_list=str(tokens), bpemodel=str(bpe))
    dataset = ESPnetDataset(
        [
            (str(out / "wav.scp"), "speech", "sound"),
            (str(out / "text"), "text", "text"),
            (str(out / "accent"), "accent", "text_int"),
        ],
        preprocess=preprocess,
    )
    rows = manifest[manifest.split == "train"].set_index("utt_id")
    for uid in rows.index:
        _, item = dataset[uid]
        assert item["speech"].shape == (rows.loc[uid, "num_samples"],)
        spelled = "".join(token_list[i] for i in item["text"]).replace("\u2581", " ").strip()
        assert spelled == rows.loc[uid, "text"]
        assert item["accent"].tolist() == [rows.loc[uid, "accent_id"]]
    spk2utt = (out / "spk2utt").read_text().split("\n")
    assert sum(len(line.split()) - 1 for line in spk2utt if line) == len(rows)


def test_unbalanced_or_impossible_config_names_the_key():
    with pytest.raises(DataError, match=r"synthetic\.utterances\.dev"):
        build_script(small_spec(utterances={"train": 12, "dev": 3, "test": 4}))
    with pytest.raises(DataError, match=r"synthetic\.speakers_per_split"):
        build_script(small_spec(speakers_per_split={"train": 5, "dev": 1, "test": 1}))


def test_edited_script_with_an_empty_sentence_is_refused_by_name(tmp_path):
    script = build_script(small_spec())
    script.loc[5, "sentence"] = "  "
    path = tmp_path / "script.tsv"
    script.to_csv(path, sep="\t", index=False)
    with pytest.raises(DataError, match=rf"{path}.*{script.loc[5, 'utt_id']}.*empty sentence"):
        read_script(path)


def test_empty_split_is_refused(corpus, tmp_path):
    _, _, manifest, _ = corpus
    with pytest.raises(DataError, match="split 'dev' has no utterances"):
        write_espnet_dir(manifest[manifest.split != "dev"], "dev", tmp_path / "dev")


def test_pitch_carries_no_accent_within_a_variant():
    """A variant speaks every accent around one base pitch: pitch must not tell its accents apart."""
    script = build_script(small_spec(pitch_jitter=0, utterances={"train": 40, "dev": 4, "test": 4}))
    pitches = script.groupby(["variant", "accent"])["pitch"].agg(set).unstack()
    assert (pitches["us_english"] == pitches["scottish_english"]).all()
    assert all(len(p) == 1 for p in pitches["us_english"])
    assert script.groupby("variant")["pitch"].first().nunique() > 1, "variants differ in pitch"


def test_warp_scales_frequency_and_duration_of_the_same_utterance(tmp_path):
    """warp w reads espeak-ng's samples as if taken at w times its rate: 1/w as long, every frequency times w."""
    import numpy as np

    script = build_script(small_spec())
    row = script.iloc[[0]].copy()
    out = {}
    for w in (1.0, 1.2):
        row["warp"] = w
        row["utt_id"] = f"u{w}"
        manifest, _ = synthesize(row, tmp_path, processes=1)
        wave, rate = sf.read(manifest["wav"].iloc[0])
        spectrum = np.abs(np.fft.rfft(wave, n=1 << 17))
        freqs = np.fft.rfftfreq(1 << 17, 1 / rate)
        band = freqs < 2500 * w  # the same band of the voice, below the 8 kHz of 16 kHz audio
        out[w] = (len(wave), float((spectrum[band] * freqs[band]).sum() / spectrum[band].sum()))  # its centroid
    assert out[1.2][0] == pytest.approx(out[1.0][0] / 1.2, rel=0.01)
    assert out[1.2][1] == pytest.approx(out[1.0][1] * 1.2, rel=0.05)


def test_warp_is_drawn_per_utterance_in_range_and_checked():
    script = build_script(small_spec(warp=[0.9, 1.1]))
    assert script["warp"].between(0.9, 1.1).all() and script["warp"].nunique() > 10
    plain = build_script(small_spec())
    assert (plain["warp"] == 1.0).all()
    # no warping keeps the random stream of a corpus made before warping existed: same rates and pitches
    assert plain["rate"].tolist() == build_script(small_spec(warp=[1.0, 1.0]))["rate"].tolist()
    with pytest.raises(DataError, match=r"synthetic\.warp"):
        build_script(small_spec(warp=[1.2, 0.9]))


def test_trim_cuts_the_quiet_ends_and_keeps_the_speech_sample_for_sample(tmp_path):
    """The same sentence rendered with and without ``synthetic.trim``: the trimmed audio is a contiguous slice of the
    untrimmed (the same samples, nothing resampled), at least 0.1 s shorter (espeak-ng's trailing silence, 0.15 s or
    more, less the margin kept), and
    what was cut lies more than ``top_db`` below the loudest 32-ms frame, except for the ``margin_s`` kept."""
    import numpy as np

    from hne_core.data.sources.synthetic import Trim

    row = build_script(small_spec()).iloc[[0]].copy()
    trim = Trim(top_db=40.0, margin_s=0.05)
    full = sf.read(synthesize(row, tmp_path / "full", processes=1)[0]["wav"].iloc[0], dtype="int16")[0]
    cut = sf.read(synthesize(row, tmp_path / "cut", processes=1, trim=trim)[0]["wav"].iloc[0], dtype="int16")[0]
    assert len(full) - len(cut) >= 0.1 * 16000
    start = next(k for k in range(len(full) - len(cut) + 1) if np.array_equal(full[k : k + len(cut)], cut))
    # librosa keeps every 512-sample frame whose RMS is within top_db of the loudest frame's; a sample of a dropped
    # frame is at most sqrt(512) times that frame's RMS (all its energy in one sample)
    frames = np.lib.stride_tricks.sliding_window_view(np.pad(full.astype(np.float64), 256), 512)[::128]
    floor = np.sqrt((frames**2).mean(axis=1)).max() * 10 ** (-trim.top_db / 20) * np.sqrt(512)
    margin = int(trim.margin_s * 16000)
    for removed in (full[: max(0, start - margin)], full[start + len(cut) + margin :]):
        assert removed.size == 0 or np.abs(removed).max() <= floor
