"""Filter Common Voice by accent, convert clips to 16 kHz WAV -> manifest.tsv, dropped.tsv."""
from hne_core.startup import skip_typeguard_instrumentation

skip_typeguard_instrumentation()  # before ESPnet is imported
from hne_core.data.commonvoice import find_language_dir, prepare_commonvoice
from hne_core.data.corpus import validate_manifest, write_tsv
from hne_core.logs import logged_to

with logged_to(snakemake.log[0]) as log:
    p = snakemake.params
    lang_dir = find_language_dir(p.root)
    manifest, drops = prepare_commonvoice(
        lang_dir, snakemake.output.wavs, classes=p.classes, multi_accent=p.multi_accent,
        splits_subsample=p.subsample, seed=p.seed, on_bad_row=p.on_bad_row, text_case=p.text_case,
        processes=snakemake.threads, min_samples=p.min_samples)
    validate_manifest(manifest, str(lang_dir))
    write_tsv(drops.frame(), snakemake.output.dropped)
    write_tsv(manifest, snakemake.output.manifest)
    log.info("kept %d utterances, dropped %d rows", len(manifest), len(drops.rows))
