"""Fine-tune one (λA, λC(t)) multi-task model from the pre-trained base; export it for Speech2Text."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.gpu import claim_gpus

claim_gpus(snakemake.resources.gpu)  # before CUDA starts: devices of its own on a multi-GPU machine
from hne_core.logs import logged_to
from hne_core.model.train import set_threads

with logged_to(snakemake.log[0]):
    set_threads(snakemake.threads)
    from hne_core.model.stages import finetune

    p = snakemake.params
    finetune(
        lambda_a=p.weights["lambda_a"],
        lambda_c=p.weights["lambda_c"],
        num_accents=p.num_accents,
        discriminator=p.discriminator,
        train=p.train,
        seed=p.seed,
        base_dir=p.base_dir,
        train_dir=p.train_dir,
        dev_dir=p.dev_dir,
        stats_dir=p.stats_dir,
        exp_dir=p.exp_dir,
        out_dir=p.out_dir,
        ngpu=snakemake.resources.gpu,
    )
