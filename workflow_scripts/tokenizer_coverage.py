"""How much of each split's transcripts the token set cannot spell (<unk> rate) -> coverage.json."""

from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
import json

from hne_core.atomic import write_text_atomic
from hne_core.logs import logged_to
from hne_core.tokenizer import unknown_token_rate

with logged_to(snakemake.log[0]) as log:
    coverage = {}
    for path in snakemake.input.texts:
        rate, example = unknown_token_rate(path, snakemake.input.bpe, snakemake.input.tokens)
        coverage[path] = {"unknown_token_rate": rate, "example": example}
        log.info("%s: <unk> rate %.5f", path, rate)
    write_text_atomic(snakemake.output.coverage, json.dumps(coverage, indent=2) + "\n")
