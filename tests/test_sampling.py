"""Seeded subsets of a split: the attacked and evaluated test utterances (``natural`` or ``balanced``
composition) and the fine-tuning training subset."""

from collections import Counter

import pytest

from hne_core.attack.targets import select_utterances
from hne_core.data.corpus import SampleSizeError, balanced_quotas, balanced_sample, sample_utterances
from hne_core.model.recipe import write_training_subset


@pytest.fixture
def accent_file(tmp_path):
    path = tmp_path / "accent"
    path.write_text("".join(f"u{i:03d} {int(i >= 15)}\n" for i in range(21)))  # 15 of class 0, 6 of class 1
    return path


def split(tmp_path, sizes: dict[str, int]):
    """An ``accent`` file with ``sizes[cls]`` utterances of each class; ids lead with the class, as the data
    stage's do."""
    path = tmp_path / "split_accent"
    path.write_text("".join(f"{cls}_{i:04d} {cls}\n" for cls, n in sizes.items() for i in range(n)))
    return path


def classes(ids) -> Counter:
    return Counter(u.split("_")[0] for u in ids)


def test_balanced_and_seeded(accent_file):
    chosen = balanced_sample(accent_file, 8, seed=3)
    assert chosen == balanced_sample(accent_file, 8, seed=3) == sorted(chosen)
    assert chosen != balanced_sample(accent_file, 8, seed=4)
    assert sum(u >= "u015" for u in chosen) == 4
    # a class with too few utterances gives all it has, and the other class fills its shortfall
    chosen = balanced_sample(accent_file, 16, seed=3)
    assert len(chosen) == 16 and sum(u >= "u015" for u in chosen) == 6


def test_balanced_draws_are_unchanged_when_no_class_is_short(accent_file):
    """The fill-in only moves what a short class cannot give: with no class short, the draws are those of the
    even split as it was (one ``rng.sample`` per class in sorted order), so earlier results do not change."""
    import random

    for n, seed in ((8, 3), (12, 7), (11, 0)):  # 11: the odd one goes to the first class
        rng = random.Random(seed)
        ids = sorted(f"u{i:03d}" for i in range(21))
        half, extra = divmod(n, 2)
        expected = sorted(rng.sample(ids[:15], half + extra) + rng.sample(ids[15:], half))
        assert balanced_sample(accent_file, n, seed) == expected
        assert sample_utterances(accent_file, n, seed, "balanced") == expected


@pytest.mark.parametrize("sizes", [{"a": 700, "b": 300}, {"a": 501, "b": 499}, {"a": 300, "b": 700}])
@pytest.mark.parametrize("n", [1000, 999, 800, 601])
def test_balanced_gives_exactly_n_as_even_as_the_classes_allow(tmp_path, sizes, n):
    chosen = sample_utterances(split(tmp_path, sizes), n, seed=11, composition="balanced")
    assert len(chosen) == len(set(chosen)) == n
    counts = classes(chosen)
    small = min(sizes, key=sizes.get)
    even = n // 2
    # the small class gives min(its size, an even share); the other class gives the rest
    assert counts[small] == min(sizes[small], even + (n % 2 if small == "a" else 0))
    assert counts[small] + counts[max(sizes, key=sizes.get)] == n


def test_balanced_quotas_fill_a_short_class_from_the_others():
    assert balanced_quotas({"a": 700, "b": 300}, 1000) == {"a": 700, "b": 300}
    assert balanced_quotas({"a": 501, "b": 499}, 1000) == {"a": 501, "b": 499}
    assert balanced_quotas({"a": 10, "b": 100, "c": 100}, 100) == {"a": 10, "b": 45, "c": 45}
    assert balanced_quotas({"a": 10, "b": 20, "c": 100}, 61) == {"a": 10, "b": 20, "c": 31}
    assert balanced_quotas({"a": 50, "b": 50}, 7) == {"a": 4, "b": 3}


def test_attacked_subset_of_1000_from_a_700_300_test_split(tmp_path):
    accent = split(tmp_path, {"us": 700, "indian": 300})
    for composition in ("balanced", "natural"):
        chosen = select_utterances(accent, 1000, seed=2022, composition=composition)
        assert len(chosen) == 1000 and classes(chosen) == {"us": 700, "indian": 300}


def test_natural_follows_the_split_mix_and_is_seeded(tmp_path):
    accent = split(tmp_path, {"a": 700, "b": 300})
    first = sample_utterances(accent, 200, seed=5, composition="natural")
    assert first == sample_utterances(accent, 200, seed=5, composition="natural") == sorted(first)
    assert first != sample_utterances(accent, 200, seed=6, composition="natural")
    assert first != sample_utterances(accent, 200, seed=5, composition="balanced")
    # in expectation the sample's mix is the split's (70 % of class a): the mean over 200 seeds of 200 ids
    # (sd of the mean ~0.23 percentage points) lies within 1 point of 70 %, while balanced gives 50 %
    shares = [classes(sample_utterances(accent, 200, seed=s, composition="natural"))["a"] / 200 for s in range(200)]
    assert abs(sum(shares) / len(shares) - 0.7) < 0.01
    assert len(set(shares)) > 5, "a sample that always has the same mix is not a random sample"
    assert classes(sample_utterances(accent, 200, seed=5, composition="balanced"))["a"] == 100


@pytest.mark.parametrize("composition", ["balanced", "natural"])
def test_asking_for_more_than_the_split_holds_names_both_numbers(accent_file, composition):
    with pytest.raises(
        SampleSizeError,
        match=r"attack\.n_utterances asks for 30 utterances, but the split "
        r"holds only 21",
    ) as err:
        select_utterances(accent_file, 30, seed=1, composition=composition)
    assert str(accent_file) in str(err.value)
    assert len(select_utterances(accent_file, 21, seed=1, composition=composition)) == 21


def test_unknown_composition_is_an_error(accent_file):
    with pytest.raises(ValueError, match="composition must be one of"):
        sample_utterances(accent_file, 5, seed=1, composition="stratified")


def test_training_subset_shape_files_hold_exactly_the_chosen_keys(accent_file, tmp_path):
    stats = tmp_path / "stats"
    stats.mkdir()
    for name in ("speech_shape", "text_shape"):
        (stats / name).write_text("".join(f"u{i:03d} {i + 100}\n" for i in range(21)))
    out = write_training_subset(stats, accent_file, 6, seed=2, out_dir=tmp_path / "subset")
    keys = [line.split()[0] for line in (out / "speech_shape").read_text().splitlines()]
    assert keys == balanced_sample(accent_file, 6, seed=2)
    assert [ln.split()[0] for ln in (out / "text_shape").read_text().splitlines()] == keys
    # a bound: 16 of a 15/6 split fills the short class's share; 50 uses the whole split
    out = write_training_subset(stats, accent_file, 16, seed=2, out_dir=tmp_path / "subset16")
    assert len((out / "speech_shape").read_text().splitlines()) == 16
    out = write_training_subset(stats, accent_file, 50, seed=2, out_dir=tmp_path / "subset50")
    assert len((out / "speech_shape").read_text().splitlines()) == 21


def _data_dir(accent_file):
    d = accent_file.parent
    (d / "wav.scp").write_text("".join(f"u{i:03d} /x/u{i:03d}.wav\n" for i in range(21)))
    (d / "text").write_text("".join(f"u{i:03d} WORD {i}\n" for i in range(21)))
    return d


def test_evaluation_subset_is_balanced_not_the_first_ids(accent_file):
    from hne_core.data.utterances import read_data_dir

    d = _data_dir(accent_file)
    subset = read_data_dir(d, limit=8, seed=5)
    assert [u.accent_id for u in subset].count(1) == 4, "the first 8 ids would all be class 0"
    assert [u.utt_id for u in subset] == balanced_sample(accent_file, 8, seed=5)
    assert len(read_data_dir(d)) == 21


def test_evaluation_subset_composition_and_size_error(accent_file):
    from hne_core.data.utterances import read_data_dir

    d = _data_dir(accent_file)
    natural = read_data_dir(d, limit=8, seed=5, composition="natural")
    assert [u.utt_id for u in natural] == sample_utterances(accent_file, 8, 5, "natural")
    assert len(read_data_dir(d, limit=21, seed=5, composition="balanced")) == 21
    with pytest.raises(
        SampleSizeError,
        match=r"evaluation\.n_utterances asks for 22 utterances, but the split "
        r"holds only 21",
    ) as err:
        read_data_dir(d, limit=22, seed=5)
    assert str(d / "accent") in str(err.value)


def test_planning_stops_when_the_test_split_is_smaller_than_asked(tmp_path):
    """With the data stage's test `accent` file already there, `snakemake -n` knows the split's size: asking for
    more is refused before any job runs, naming the key, both numbers and the file."""
    import yaml
    from conftest import run_snakemake

    accent = tmp_path / "results" / "data" / "test" / "accent"
    accent.parent.mkdir(parents=True)
    accent.write_text("".join(f"u{i:03d} {i % 2}\n" for i in range(7)))
    overlay = tmp_path / "overlay.yaml"
    overlay.write_text(yaml.safe_dump({"attack": {"n_utterances": 8}, "evaluation": {"n_utterances": 7}}))
    proc = run_snakemake(tmp_path, "-n", "--configfile", str(overlay), check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (
        "Invalid config key 'attack.n_utterances': it asks for 8 test utterances, but the test split holds "
        "only 7 (results/data/test/accent)" in out
    )
    overlay.write_text(yaml.safe_dump({"attack": {"n_utterances": 7}, "evaluation": {"n_utterances": 7}}))
    assert run_snakemake(tmp_path, "-n", "--configfile", str(overlay), check=False).returncode == 0
