# Models: the pre-trained base. (Fine-tuning and evaluation follow in later stages.)

if config["pretrained"]["source"] == "zenodo":

    rule fetch_pretrained:
        output:
            expand("{dir}/{f}", dir=pretrained_dir(), f=PRETRAINED_FILES),
        log:
            f"{R}/logs/model/fetch_pretrained.log",
        params:
            url=config["pretrained"]["url"],
            sha256=config["pretrained"]["sha256"],
            cache=f"{RES}/model_zoo_cache",
            out_dir=pretrained_dir(),
        conda:
            "../envs/hne.yaml"
        script:
            "../workflow_scripts/fetch_pretrained.py"
