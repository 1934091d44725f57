"""Source ``synthetic``: the default run's self-made corpus, English sentences spoken by espeak-ng voices that stand
in for accents (``synthetic.classes: {name: {voice: <espeak-ng voice>}}``).

Two jobs, each a workflow rule:

1. ``synthetic_script`` (``rules/sources/synthetic.smk``; ``build_script``): a fully seeded plan of every utterance
   (speaker, voice, rate, pitch, sentence, split), ``data/synthetic_script.tsv``, kept as a file so that a reader
   (or a user editing one sentence) sees exactly what will be spoken; it carries everything from ``synthetic:``
   that is drawn per utterance;
2. this source's prepare job (``synthesize``): render the plan, its only input, in parallel; every random choice is
   made in step 1, so the audio does not depend on the number of processes. Its one setting is ``synthetic.trim``
   (silence trimming); editing one sentence of the plan re-synthesises the corpus and nothing upstream.

The workflow imports this module while it parses, so pandas and audio are imported in the functions that use them.
"""

from __future__ import annotations

import os
import random
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hne_core.data.errors import ConfigError, DataError
from hne_core.data.sources import Outputs, Paths
from hne_core.data.sources import class_names as _class_names
from hne_core.data.vocabulary import unique_sentences
from hne_core.text import normalize_transcript

if TYPE_CHECKING:
    import pandas as pd

    from hne_core.data.corpus import DropLog

RULE = "synthesize_corpus"
DATA_KEYS: tuple[str, ...] = ("text_case", "min_samples")
SCRIPT = "synthetic_script.tsv"
SPLITS: tuple[str, ...] = ("train", "dev", "test")  # the data stage's (hne_core.data.corpus.SPLITS)
SCRIPT_COLUMNS = (
    "utt_id",
    "split",
    "speaker",
    "accent",
    "accent_id",
    "voice",
    "variant",
    "sex",
    "rate",
    "pitch",
    "warp",
    "sentence",
)


def class_names(section: Mapping) -> list[str]:
    return _class_names(section, "synthetic")


def voices(section: Mapping) -> dict[str, str]:
    """Class name -> espeak-ng voice, in class order (what the plan speaks)."""
    class_names(section)
    out = {}
    for name, spec in section["classes"].items():
        if set(spec) != {"voice"} or not isinstance(spec["voice"], str):
            raise ConfigError(f"synthetic.classes.{name}", f"expected {{voice: <espeak-ng voice>}}, got {spec!r}")
        out[str(name)] = spec["voice"]
    return out


def check(section: Mapping) -> None:
    voices(section)


def settings(section: Mapping) -> dict:
    """Silence trimming (``{top_db, margin_s}`` or None); everything else reaches the corpus through the plan."""
    return {"trim": section.get("trim")}


def inputs(section: Mapping, paths: Paths) -> dict[str, str]:
    return {"script": os.path.join(paths.data_dir, SCRIPT)}


def test_split_bound(section: Mapping) -> tuple[int | None, str]:
    return int(section["utterances"]["test"]), "config key 'synthetic.utterances.test'"


def prepare(
    settings: Mapping, inputs: Mapping, outputs: Outputs, *, threads: int, text_case: str, min_samples: int
) -> str:
    from hne_core.data.corpus import write_prepared

    script = read_script(inputs["script"])
    trim = Trim.from_config(settings["trim"])
    manifest, drops = synthesize(
        script, outputs.wavs, processes=threads, text_case=text_case, min_samples=min_samples, trim=trim
    )
    write_prepared(manifest, drops, inputs["script"], outputs.manifest, outputs.dropped)
    return f"synthesized {len(manifest)} utterances with {threads} processes"


@dataclass(frozen=True)
class SyntheticSpec:
    """What the config says about the self-made corpus (see config.yaml, ``synthetic:``)."""

    classes: Mapping[str, str]  # accent class name -> espeak-ng voice
    variants: Sequence[str]  # espeak-ng speaker variants; one speaker = (class, variant)
    speakers_per_split: Mapping[str, int]
    utterances: Mapping[str, int]
    rate: tuple[int, int]  # words per minute, drawn per utterance
    pitch: tuple[int, int]  # espeak pitch 0-99: a base per variant (all its accents), jittered per utterance
    pitch_jitter: int
    seed: int
    warp: tuple[float, float] = (1.0, 1.0)  # frequency-scale factor per utterance (a vocal-tract length stand-in)

    @classmethod
    def from_config(cls, cfg: Mapping, seed: int) -> SyntheticSpec:
        """From the config section ``synthetic:``, whose classes are ``{name: {voice: <espeak-ng voice>}}`` (the
        shape every source's classes share: ``hne_core.data.sources``)."""
        return cls(
            classes=voices(cfg),
            variants=list(cfg["variants"]),
            speakers_per_split=dict(cfg["speakers_per_split"]),
            utterances=dict(cfg["utterances"]),
            rate=tuple(cfg["rate"]),
            pitch=tuple(cfg["pitch"]),
            pitch_jitter=int(cfg["pitch_jitter"]),
            seed=int(seed),
            warp=tuple(float(w) for w in cfg.get("warp", (1.0, 1.0))),
        )

    def check(self) -> None:
        n_cls = len(self.classes)
        need = sum(self.speakers_per_split[s] for s in SPLITS)
        if need > len(self.variants):
            raise DataError(
                f"synthetic.speakers_per_split asks for {need} speakers per class but "
                f"synthetic.variants lists only {len(self.variants)}"
            )
        for split in SPLITS:
            if self.utterances[split] % n_cls:
                raise DataError(
                    f"synthetic.utterances.{split}={self.utterances[split]} is not divisible by the "
                    f"{n_cls} accent classes: the corpus must be balanced"
                )
            if self.speakers_per_split[split] < 1:
                raise DataError(f"synthetic.speakers_per_split.{split} must be at least 1")
        if not 0.5 <= self.warp[0] <= self.warp[1] <= 2.0:
            raise DataError(f"synthetic.warp {list(self.warp)} must be [low, high] with 0.5 <= low <= high <= 2")
        for key, (lo, hi) in (("rate", self.rate), ("pitch", self.pitch)):
            if lo > hi:
                raise DataError(f"synthetic.{key}: lower bound {lo} exceeds upper bound {hi}")


SEXES: tuple[str, ...] = ("female", "male")  # the labels of the ``sex`` task (``variant_sex``)


def variant_sex(variant: str) -> str:
    """'female' for espeak-ng's f1-f5, 'male' for m1-m7, '' (no label) for any other variant (klatt, whisper...)."""
    match = re.fullmatch(r"([fm])[0-9]+", variant)
    return "" if match is None else SEXES[match[1] == "m"]


def _speaker_splits(spec: SyntheticSpec, rng: random.Random) -> dict[str, list[str]]:
    """A seeded assignment of speaker variants to splits, the same for every accent class, with both sexes in
    every split that has room for two speakers (the ``sex`` task needs both in training, validation and test).

    Crossing variant with accent matters: were the splits drawn per class, a test speaker of one accent could
    be a training speaker of the other, and a discriminator that recognises speakers (not accents) would be
    rewarded in training and punished on test. Here every training variant speaks every accent, so a variant
    carries no accent information, and test variants are unseen in any class.

    Each sex's variants are shuffled apart; the small splits (dev, test) draw first, alternating sexes from the
    one with more variants left, and training takes what remains in the same alternation.
    """
    groups: dict[str, list[str]] = {sex: [] for sex in (*SEXES, "")}
    for variant in spec.variants:
        groups[variant_sex(variant)].append(variant)
    for group in groups.values():
        rng.shuffle(group)
    out: dict[str, list[str]] = {}
    for split in sorted(SPLITS, key=lambda s: s == "train"):  # dev and test first, in SPLITS order
        chosen: list[str] = []
        while len(chosen) < spec.speakers_per_split[split]:
            taken = {variant_sex(v) for v in chosen}
            left = [sex for sex in groups if groups[sex]]
            # a sex this split lacks first, then the one with most variants left (ties: SPLITS' sex order)
            sex = min(left, key=lambda s: (s in taken, -len(groups[s]), (*SEXES, "").index(s)))
            chosen.append(groups[sex].pop(0))
        out[split] = chosen
    return out


def build_script(spec: SyntheticSpec) -> pd.DataFrame:
    """Every utterance of the corpus as a row: who says what, how, and in which split. Seeded end to end."""
    import pandas as pd

    spec.check()
    rng = random.Random(spec.seed)
    assignment = _speaker_splits(spec, rng)
    total = sum(spec.utterances[s] for s in SPLITS)
    sentences = unique_sentences(total, rng)
    # One base pitch per variant, shared by its accents: drawn per (accent, variant), pitch told the accents of
    # a training variant apart, and a discriminator that learned those 8 pitch pairs failed on unseen variants.
    base_pitch = {v: rng.randint(*spec.pitch) for v in spec.variants}
    rows = []
    k = 0
    for split in SPLITS:
        per_class = spec.utterances[split] // len(spec.classes)
        for accent_id, (accent, voice) in enumerate(spec.classes.items()):
            speakers = assignment[split]
            for i in range(per_class):
                variant = speakers[i % len(speakers)]  # round-robin: balanced over speakers too
                jitter = rng.randint(-spec.pitch_jitter, spec.pitch_jitter)
                pitch = min(99, max(0, base_pitch[variant] + jitter))
                # Drawn only when asked for, so that a corpus without warping keeps its old random stream.
                warp = round(rng.uniform(*spec.warp), 3) if spec.warp[0] < spec.warp[1] else spec.warp[0]
                speaker = f"{accent}-{variant}"
                rows.append(
                    dict(
                        utt_id=f"{speaker}-{k:06d}",
                        split=split,
                        speaker=speaker,
                        accent=accent,
                        accent_id=accent_id,
                        voice=voice,
                        variant=variant,
                        sex=variant_sex(variant),
                        rate=rng.randint(*spec.rate),
                        pitch=pitch,
                        warp=warp,
                        sentence=sentences[k],
                    )
                )
                k += 1
    return pd.DataFrame(rows, columns=list(SCRIPT_COLUMNS))


def read_script(path: str | Path) -> pd.DataFrame:
    import pandas as pd

    script = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False)
    missing = [c for c in SCRIPT_COLUMNS if c not in script.columns]
    if missing:
        raise DataError(f"{path}: synthetic script lacks columns {missing}")
    for col in ("accent_id", "rate", "pitch"):
        bad = script.loc[~script[col].str.fullmatch(r"-?\d+"), "utt_id"]
        if len(bad):
            raise DataError(f"{path}: utterance {bad.iloc[0]!r} has a non-integer {col}")
        script[col] = script[col].astype(int)
    warp = pd.to_numeric(script["warp"], errors="coerce")
    bad = script.loc[~(warp > 0), "utt_id"]
    if len(bad):
        raise DataError(f"{path}: utterance {bad.iloc[0]!r} has a warp that is not a positive number")
    script["warp"] = warp
    empty = script.loc[script["sentence"].str.strip() == "", "utt_id"]
    if len(empty):
        raise DataError(f"{path}: utterance {empty.iloc[0]!r} has an empty sentence")
    return script


@dataclass(frozen=True)
class Trim:
    """Silence trimming of every rendered sentence (``synthetic.trim``; ``audio.trim_silence``)."""

    top_db: float
    margin_s: float

    @classmethod
    def from_config(cls, trim: Mapping | None) -> Trim | None:
        """From ``synthetic.trim`` (``{top_db, margin_s}``, or null: no trimming)."""
        return cls(float(trim["top_db"]), float(trim["margin_s"])) if trim else None


def _render(job: tuple[str, str, str, int, int, float, str, int, Trim | None]) -> tuple[str, int]:
    """Speak one sentence to a 16 kHz WAV. Returns (path, samples).

    ``warp`` scales every frequency (formants and pitch) and the tempo by reading espeak-ng's samples as if
    they were taken at ``warp`` times its rate: the classic speed perturbation, free here because the audio is
    resampled to 16 kHz anyway. It turns a dozen espeak-ng variants into a continuum of vocal-tract lengths.
    """
    from hne_core.data.audio import AudioError, read_wav_bytes, resample, trim_silence, write_wav16

    path, voice, variant, rate, pitch, warp, sentence, min_samples, trim = job
    cmd = ["espeak-ng", "-v", f"{voice}+{variant}", "-s", str(rate), "-p", str(pitch), "--stdout", sentence]
    proc = subprocess.run(cmd, capture_output=True, check=False)
    if proc.returncode != 0 or not proc.stdout:
        raise AudioError(
            f"espeak-ng failed for {path} (voice {voice}+{variant}): "
            f"{proc.stderr.decode(errors='replace').strip()[:300]}"
        )
    wave, source_rate = read_wav_bytes(proc.stdout, f"espeak-ng output for {path}")
    # The warped rate is rounded to a multiple of 50 Hz (a 0.2 % step): resampling cost grows with
    # rate / gcd(rate, 16000), and an arbitrary rate (gcd 1) takes gigabytes and minutes per utterance.
    wave = resample(wave, 50 * int(round(source_rate * warp / 50)))
    if trim is not None:
        wave = trim_silence(wave, trim.top_db, trim.margin_s)
    if wave.size < min_samples:
        raise AudioError(f"{path}: espeak-ng spoke only {wave.size} samples (need {min_samples}) for {sentence!r}")
    return path, write_wav16(path, wave)


def synthesize(
    script: pd.DataFrame,
    wav_dir: str | Path,
    processes: int,
    text_case: str = "upper",
    min_samples: int = 1,
    trim: Trim | None = None,
) -> tuple[pd.DataFrame, DropLog]:
    """Render the script into ``wav_dir`` with ``processes`` workers, trimming silence with ``trim``; returns
    (manifest, drops).

    espeak-ng either speaks a sentence or fails loudly (AudioError), so nothing is ever dropped here; the
    empty drop log keeps the interface of the Common Voice source.
    """
    from hne_core.data.audio import TARGET_RATE, require_tool
    from hne_core.data.corpus import DropLog
    from hne_core.parallel import parallel_map

    require_tool("espeak-ng")
    wav_dir = Path(wav_dir)
    wav_dir.mkdir(parents=True, exist_ok=True)
    paths, jobs = [], []
    for row in script.to_dict(orient="records"):
        path = str(wav_dir / f"{row['utt_id']}.wav")
        paths.append(path)
        jobs.append(
            (
                path,
                row["voice"],
                row["variant"],
                int(row["rate"]),
                int(row["pitch"]),
                float(row["warp"]),
                row["sentence"],
                min_samples,
                trim,
            )
        )
    samples = dict(parallel_map(_render, jobs, processes))
    drops = DropLog()
    manifest = script.rename(columns={"sentence": "raw_text"}).copy()
    manifest["text"] = [normalize_transcript(t, text_case) for t in manifest["raw_text"]]
    manifest["wav"] = paths
    manifest["num_samples"] = [samples[p] for p in paths]
    manifest["duration_s"] = manifest["num_samples"] / TARGET_RATE
    front = ["utt_id", "split", "speaker", "accent", "accent_id", "text", "wav", "num_samples", "duration_s"]
    return manifest[front + [c for c in manifest.columns if c not in front]], drops
