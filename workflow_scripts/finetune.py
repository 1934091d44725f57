"""Fine-tune one (λA, λC(t)) multi-task model from the pre-trained base; export it for Speech2Text."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.gpu import claim_gpus

claim_gpus(snakemake.resources.gpu)  # before CUDA starts: devices of its own on a multi-GPU machine
from hne_core.logs import logged_to
from hne_core.model.train import set_threads

with logged_to(snakemake.log[0]):
    set_threads(snakemake.threads)
    from hne_core.model.stages import StageDirs, finetune

    p = snakemake.params
    dirs = StageDirs(p.train_dir, p.dev_dir, p.stats_dir, p.exp_dir, p.out_dir)
    gpu = snakemake.resources.gpu
    finetune(p.weights, p.num_accents, p.discriminator, p.train, p.seed, p.base_dir, dirs, gpu, tasks=p.tasks)
