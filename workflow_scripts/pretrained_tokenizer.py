"""The pre-trained model's BPE model and token list, reused as they are."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.tokenizer import copy_pretrained_tokenizer

with logged_to(snakemake.log[0]):
    copy_pretrained_tokenizer(
        snakemake.input.bpe, snakemake.input.tokens, snakemake.output.bpe, snakemake.output.tokens
    )
