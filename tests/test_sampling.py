"""Seeded, accent-balanced subsets: the attacked test utterances and the fine-tuning training subset."""

import pytest

from hne_core.attack.targets import select_utterances
from hne_core.data.corpus import balanced_sample
from hne_core.model.recipe import write_training_subset


@pytest.fixture
def accent_file(tmp_path):
    path = tmp_path / "accent"
    path.write_text("".join(f"u{i:03d} {int(i >= 15)}\n" for i in range(21)))  # 15 of class 0, 6 of class 1
    return path


def test_balanced_and_seeded(accent_file):
    chosen = balanced_sample(accent_file, 8, seed=3)
    assert chosen == balanced_sample(accent_file, 8, seed=3) == sorted(chosen)
    assert chosen != balanced_sample(accent_file, 8, seed=4)
    assert sum(u >= "u015" for u in chosen) == 4
    # a class with too few utterances gives all it has
    assert sum(u >= "u015" for u in balanced_sample(accent_file, 16, seed=3)) == 6


def test_attacked_subset_must_be_complete(accent_file):
    assert len(select_utterances(accent_file, 9, seed=1)) == 9
    with pytest.raises(ValueError, match="asked for 30 utterances"):
        select_utterances(accent_file, 30, seed=1)


def test_training_subset_shape_files_hold_exactly_the_chosen_keys(accent_file, tmp_path):
    stats = tmp_path / "stats"
    stats.mkdir()
    for name in ("speech_shape", "text_shape"):
        (stats / name).write_text("".join(f"u{i:03d} {i + 100}\n" for i in range(21)))
    out = write_training_subset(stats, accent_file, 6, seed=2, out_dir=tmp_path / "subset")
    keys = [line.split()[0] for line in (out / "speech_shape").read_text().splitlines()]
    assert keys == balanced_sample(accent_file, 6, seed=2)
    assert [ln.split()[0] for ln in (out / "text_shape").read_text().splitlines()] == keys


def test_evaluation_subset_is_balanced_not_the_first_ids(accent_file):
    from hne_core.model.evaluate import read_data_dir

    d = accent_file.parent
    (d / "wav.scp").write_text("".join(f"u{i:03d} /x/u{i:03d}.wav\n" for i in range(21)))
    (d / "text").write_text("".join(f"u{i:03d} WORD {i}\n" for i in range(21)))
    subset = read_data_dir(d, limit=8, seed=5)
    assert [u.accent_id for u in subset].count(1) == 4, "the first 8 ids would all be class 0"
    assert [u.utt_id for u in subset] == balanced_sample(accent_file, 8, seed=5)
    assert len(read_data_dir(d)) == 21
