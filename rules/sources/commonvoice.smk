# Source commonvoice (hne_core.data.sources.commonvoice): an archive, or a Mozilla Data Collective download,
# extracted under resources/; an extracted folder is read in place by the prepare job (prepare_commonvoice).

if not SOURCE.is_folder(config["commonvoice"]):

    rule fetch_commonvoice:
        input:
            archive=config["commonvoice"]["archive"] or [],
        output:
            corpus=directory(os.path.join(RES, SOURCE.CORPUS_DIR)),
        log:
            f"{R}/logs/data/fetch_commonvoice.log",
        conda:
            "../../envs/hne.yaml"
        params:
            mdc_dataset_id=config["commonvoice"]["mdc_dataset_id"],
            download_dir=f"{RES}/commonvoice/download",
        script:
            "../../workflow_scripts/fetch_commonvoice.py"
