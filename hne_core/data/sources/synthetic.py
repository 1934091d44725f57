"""Source ``synthetic``: the self-made espeak-ng corpus (the default run; ``hne_core.data.synthetic``).

Two jobs: ``synthetic_script`` (``rules/sources/synthetic.smk``) writes the seeded plan of every utterance,
``data/synthetic_script.tsv``, which a user may edit; this source's prepare job speaks that plan. The plan is the
prepare job's only input and carries everything from ``synthetic:`` that is drawn per utterance; the job's one
setting is ``synthetic.trim`` (silence trimming of the rendered audio). Editing one sentence of the plan
re-synthesises the corpus and nothing upstream.

Classes: ``synthetic.classes: {name: {voice: <espeak-ng voice>}}``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hne_core.data.errors import ConfigError
from hne_core.data.sources import Outputs, Paths
from hne_core.data.sources import class_names as _class_names

RULE = "synthesize_corpus"
DATA_KEYS: tuple[str, ...] = ("text_case", "min_samples")
SCRIPT = "synthetic_script.tsv"


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
    from hne_core.data.synthetic import Trim, read_script, synthesize

    script = read_script(inputs["script"])
    trim = Trim.from_config(settings["trim"])
    manifest, drops = synthesize(
        script, outputs.wavs, processes=threads, text_case=text_case, min_samples=min_samples, trim=trim
    )
    write_prepared(manifest, drops, inputs["script"], outputs.manifest, outputs.dropped)
    return f"synthesized {len(manifest)} utterances with {threads} processes"
