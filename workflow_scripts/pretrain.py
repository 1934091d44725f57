"""Pre-train the small STL hybrid CTC/attention base on the self-made corpus, in the pre-trained layout."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.gpu import claim_gpus

claim_gpus(snakemake.resources.gpu)  # before CUDA starts: devices of its own on a multi-GPU machine
from hne_core.logs import logged_to
from hne_core.model.train import set_threads

with logged_to(snakemake.log[0]):
    set_threads(snakemake.threads)
    from hne_core.model.stages import pretrain

    p = snakemake.params
    pretrain(
        model=p.model,
        train=p.train,
        seed=p.seed,
        train_dir=p.train_dir,
        dev_dir=p.dev_dir,
        stats_dir=p.stats_dir,
        bpe_model=snakemake.input.bpe,
        tokens=snakemake.input.tokens,
        exp_dir=p.exp_dir,
        out_dir=p.out_dir,
        ngpu=snakemake.resources.gpu,
    )
