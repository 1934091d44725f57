"""Utterance shapes and global feature statistics of train/dev (ESPnet asr.sh stage 10)."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from pathlib import Path

import yaml

from hne_core.logs import logged_to
from hne_core.model.train import run_collect_stats, set_threads

with logged_to(snakemake.log[0]):
    set_threads(snakemake.threads)
    from espnet2.tasks.asr import ASRTask

    from hne_core.model.recipe import collect_stats_args, pretrain_config

    p = snakemake.params
    out = Path(p.out_dir)
    # ESPnet builds a model to extract features: the default base's recipe (shapes do not depend on it).
    recipe = out.parent / "collect_stats.recipe.yaml"
    recipe.write_text(
        yaml.safe_dump(pretrain_config(p.model, p.pretrain, snakemake.input.bpe, snakemake.input.tokens, "unused"))
    )
    run_collect_stats(
        lambda args: ASRTask.main(cmd=args),
        collect_stats_args(recipe, p.train_dir, p.dev_dir, snakemake.input.bpe, snakemake.input.tokens),
        out,
    )
