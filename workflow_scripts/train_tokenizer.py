"""Training transcripts -> a sentencepiece model and ESPnet's token list."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.logs import logged_to
from hne_core.tokenizer import train_sentencepiece, write_token_list

with logged_to(snakemake.log[0]):
    train_sentencepiece(
        snakemake.input.text, snakemake.output.bpe, snakemake.params.model_type, snakemake.params.vocab_size
    )
    write_token_list(snakemake.input.text, snakemake.output.bpe, snakemake.output.tokens)
