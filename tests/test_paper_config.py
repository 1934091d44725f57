"""configs/paper.yaml as the workflow sees it: merged on top of config.yaml by Snakemake itself, then checked
value by value against what the paper states (Das & Chau, Interspeech 2022, sections 3-5).

The merged config is read out of a real ``snakemake --configfile configs/paper.yaml -n`` run: a two-line
Snakefile includes the workflow's own and dumps ``config`` after the workflow has loaded, merged and validated
it (schema defaults filled in). So what is checked is exactly what the paper-scale run's jobs receive, keys
inherited from config.yaml included (``discriminator.input_norm`` was one: ``batch``, a standardiser the paper
lacks). Where the paper is silent, the choice must be a named key whose comment says so.
"""

from __future__ import annotations

import json
import re
import subprocess

import pytest
import yaml
from conftest import REPO, SNAKEMAKE, planned_jobs, run_snakemake

PAPER = REPO / "configs" / "paper.yaml"
GRID = {
    (1.0, 0.0),
    (1.0, 0.3),
    (1.0, 0.5),
    (1.0, 0.7),
    (1.0, 1.0),
    (0.9, 0.0),
    (0.8, 0.0),
    (0.7, 0.0),
    (0.6, 0.0),
    (0.5, 0.0),
    (0.7, 0.3),
    (0.7, 0.5),
    (0.7, 0.7),
}


@pytest.fixture(scope="module")
def merged(tmp_path_factory) -> dict:
    """The config a paper-scale run's jobs get, from Snakemake's own merge (a Common Voice source is required
    by the paper config and given by an overlay, as a user does)."""
    tmp = tmp_path_factory.mktemp("paper_config")
    dump = tmp / "merged.json"
    (tmp / "Snakefile").write_text(
        f'include: "{REPO / "Snakefile"}"\n\nimport json\nwith open("{dump}", "w") as fh:\n    json.dump(config, fh)\n'
    )
    overlay = tmp / "cv.yaml"
    overlay.write_text(yaml.safe_dump({"commonvoice": {"mdc_dataset_id": "stand-in"}}))
    proc = subprocess.run(
        [
            SNAKEMAKE,
            "-s",
            str(tmp / "Snakefile"),
            "--directory",
            str(tmp),
            "-n",
            "--configfile",
            str(PAPER),
            str(overlay),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return json.loads(dump.read_text())


def test_the_merge_is_snakemakes_maps_key_by_key_lists_replaced(merged):
    """Keys the paper config leaves out come from config.yaml; maps merge key by key; lists replace."""
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    paper = yaml.safe_load(PAPER.read_text())
    assert "model" not in paper and merged["model"] == default["model"]  # inherited whole
    assert "findings" not in paper and merged["findings"] == default["findings"]
    assert merged["discriminator"]["hidden"] == [512] * 4 != default["discriminator"]["hidden"]  # list replaced
    assert merged["attack"]["engine"] == paper["attack"]["engine"]
    assert merged["commonvoice"]["mdc_dataset_id"] == "stand-in"  # the overlay, merged last
    assert merged["results_dir"] == "results/paper"


def test_heads_and_the_13_model_grid(merged):
    grid = [(p["lambda_a"], p["lambda_c"]) for p in merged["finetune"]["grid"]]
    assert len(grid) == 13 and set(grid) == GRID


def test_discriminator_is_5_fully_connected_layers_on_the_mean_embedding_without_normalisation(merged):
    """Section 4.2: "passes the mean sequence embedding through 5 fully connected layers"; nothing about a
    normalisation, one learning rate. Checked on the recipe ESPnet gets and on the head that recipe builds."""
    import torch
    from zenodo_fixture import ASR_RECIPE

    from hne_core.model.mtl import AccentDiscriminator, masked_mean
    from hne_core.model.recipe import finetune_config

    dis = merged["discriminator"]
    assert dis["input_norm"] == "none" and dis["lr_scale"] == 1.0 and len(dis["hidden"]) == 4
    base = {**ASR_RECIPE, "encoder_conf": {**ASR_RECIPE["encoder_conf"], "output_size": 512}}
    conf = finetune_config(base, REPO, 0.7, 0.5, 2, dis, merged["finetune"])["model_conf"]
    assert conf["dis_input_norm"] == "none" and conf["dis_lr_scale"] == 1.0
    head = AccentDiscriminator(512, conf["dis_hidden"], 2, conf["dis_activation"], conf["dis_input_norm"])
    layers = [type(m).__name__ for m in head]
    assert layers.count("Linear") == 5 and layers[0] == "Linear" and layers[-1] == "Linear", layers
    assert head[0].in_features == 512 and head[-1].out_features == 2

    # "mean sequence embedding": the model's accent logits are the head on the mean of the valid frames
    from model_utils import build_tiny

    model = build_tiny(0.7, 0.0)
    enc = torch.randn(2, 9, model.discriminator[0].in_features)
    lens = torch.tensor([9, 4])
    with torch.no_grad():
        expected = model.discriminator(torch.stack([enc[0].mean(0), enc[1, :4].mean(0)]))
        assert torch.allclose(model.accent_logits(enc, lens), expected, atol=1e-6)
        assert torch.allclose(masked_mean(enc, lens)[1], enc[1, :4].mean(0), atol=1e-6)


def test_fine_tuning_lr_epochs_and_the_best_validation_loss_kept(merged):
    """Section 4.2: "a learning rate of 1e-3 for 30 epochs, and we pick the model with the lowest validation
    loss from all the epochs". The recipe ESPnet trains with, on a base shaped like the Zenodo model (whose own
    warmuplr schedule and valid.acc criterion must not leak into fine-tuning)."""
    from zenodo_fixture import ASR_RECIPE

    from hne_core.model.recipe import finetune_config

    ft = merged["finetune"]
    assert (ft["lr"], ft["epochs"], ft["scheduler"]) == (0.001, 30, "constant") and "warmup_steps" not in ft
    assert ft["max_train_utterances"] is None
    recipe = finetune_config(ASR_RECIPE, REPO, 1.0, 0.3, 2, merged["discriminator"], ft)
    assert recipe["optim_conf"] == {"lr": 0.001} and recipe["max_epoch"] == 30
    assert "scheduler" not in recipe, "a constant learning rate: no ESPnet scheduler"
    assert recipe["best_model_criterion"] == [["valid", "loss", "min"]] and recipe["keep_nbest_models"] == 1
    # hne_core.model.train.run_training returns (and the export takes) the file this criterion names
    train_src = (REPO / "hne_core" / "model" / "train.py").read_text()
    assert 'best = out / "valid.loss.best.pth"' in train_src


def test_attack_setting(merged):
    """Section 4.3: ε = 2.0, α = 0.05, up to 2000 steps (Tables 1-3: PGD-500/1000/1500/2000), on ~1K test
    utterances (section 4.1), sampled from the test split as it is."""
    attack = merged["attack"]
    assert (attack["epsilon"], attack["step_size"], attack["steps"]) == (2.0, 0.05, [500, 1000, 1500, 2000])
    assert attack["n_utterances"] == 1000 and attack["composition"] == "natural"
    assert attack["clip"] is True
    assert merged["commonvoice"]["subsample"] == {"train": None, "dev": 1200, "test": 1000}  # ~1.2K / ~1K
    assert merged["evaluation"]["n_utterances"] is None and merged["evaluation"]["composition"] == "natural"
    assert set(merged["commonvoice"]["classes"]) == {"us", "indian"}


def test_the_three_tables_columns(merged):
    """λA, λC(t), λC(i) of every column, in the paper's order."""
    tables = {
        t["name"]: [(c["lambda_a"], c["lambda_c_train"], c["lambda_c_infer"]) for c in t["columns"]]
        for t in merged["tables"]
    }
    assert tables == {
        "table1": [
            (1.0, 0.0, 0.0),
            (1.0, 0.3, 0.3),
            (1.0, 0.5, 0.5),
            (1.0, 0.7, 0.7),
            (1.0, 1.0, 1.0),
            (1.0, 0.3, 0.0),
            (1.0, 0.5, 0.0),
            (1.0, 0.7, 0.0),
        ],
        "table2": [
            (1.0, 0.0, 0.0),
            (0.9, 0.0, 0.0),
            (0.8, 0.0, 0.0),
            (0.7, 0.0, 0.0),
            (0.6, 0.0, 0.0),
            (0.5, 0.0, 0.0),
        ],
        "table3": [(0.7, 0.0, 0.0), (0.7, 0.3, 0.0), (0.7, 0.5, 0.0), (0.7, 0.7, 0.0)],
    }
    baselines = {t["name"]: [c["label"] for c in t["columns"] if c.get("baseline")] for t in merged["tables"]}
    assert baselines == {"table1": ["STL (Decoder)", "STL (CTC)"], "table2": ["1.0"], "table3": ["0.0"]}


def test_the_pretrained_model_is_the_pinned_zenodo_record(merged):
    pre = merged["pretrained"]
    assert pre["source"] == "zenodo" and merged["tokenizer"]["source"] == "pretrained"
    assert re.match(
        r"^https://zenodo\.org/record/4604011/files/asr_train_asr_conformer6_.*\.zip\?download=1$", pre["url"]
    )


def _comment_of(path, dotted: str) -> str:
    """The comment on a `section: key:` line of a YAML file, with the comment-only lines right after it."""
    section, key = dotted.split(".")
    lines = path.read_text().splitlines()
    start = next(i for i, ln in enumerate(lines) if re.match(rf"^{section}:", ln))
    i = next(j for j in range(start + 1, len(lines)) if re.match(rf"^  {key}:", lines[j]))
    text = lines[i].split("#", 1)[1] if "#" in lines[i] else ""
    for ln in lines[i + 1 :]:
        if not re.match(r"^\s+#", ln):
            break
        text += ln.split("#", 1)[1]
    return text


SILENT = [
    "finetune.scheduler",
    "attack.target_length",
    "attack.label_smoothing",
    "attack.composition",
    "attack.n_targets",
    "discriminator.hidden",
    "discriminator.activation",
    "finetune.batch_bins",
]


@pytest.mark.parametrize("dotted", SILENT)
def test_where_the_paper_is_silent_the_choice_is_a_named_key_saying_so(merged, dotted):
    section, key = dotted.split(".")
    assert key in merged[section]
    assert "paper is silent" in _comment_of(PAPER, dotted), f"configs/paper.yaml: {dotted} needs its comment"


def test_the_silent_choices_default_to_the_current_behaviour():
    """config.yaml's values of the new keys keep the default run as it was: constant fine-tuning lr, targets by
    characters, the model's own label smoothing, balanced subsets."""
    default = yaml.safe_load((REPO / "config.yaml").read_text())
    assert default["finetune"]["scheduler"] == "constant" and "warmup_steps" not in default["finetune"]
    assert (default["attack"]["target_length"], default["attack"]["label_smoothing"]) == ("chars", "model")
    assert default["attack"]["composition"] == default["evaluation"]["composition"] == "balanced"
    assert default["discriminator"]["input_norm"] == "batch"
    for dotted in ("finetune.scheduler", "attack.target_length", "attack.label_smoothing"):
        assert "paper is silent" in _comment_of(REPO / "config.yaml", dotted), dotted


def test_the_paper_dag_attacks_16_pairs_at_4_milestones(tmp_path):
    """The dry run of the paper config plans the paper's jobs: 13 fine-tunings, 16 (model, λC(i)) pairs at 4
    milestones, the three tables."""
    overlay = tmp_path / "cv.yaml"
    overlay.write_text(yaml.safe_dump({"commonvoice": {"mdc_dataset_id": "stand-in"}}))
    jobs = planned_jobs(run_snakemake(tmp_path, "-n", "--configfile", str(PAPER), str(overlay)))
    assert (jobs["finetune"], jobs["attack"], jobs["results_table"]) == (13, 64, 3)


def test_finetune_scheduler_key_is_what_espnet_gets(merged):
    """`finetune.scheduler` is honoured by the recipe: constant = no ESPnet scheduler, warmuplr = ESPnet's warmuplr
    over `warmup_steps`; a contradiction is an error naming it. The pre-training section, which has warm-up steps
    and no scheduler key, keeps warmuplr."""
    from zenodo_fixture import ASR_RECIPE

    from hne_core.model.recipe import finetune_config, pretrain_config, scheduler_of

    ft = merged["finetune"]
    warm = finetune_config(
        ASR_RECIPE, REPO, 1.0, 0.3, 2, merged["discriminator"], {**ft, "scheduler": "warmuplr", "warmup_steps": 500}
    )
    assert warm["scheduler"] == "warmuplr" and warm["scheduler_conf"] == {"warmup_steps": 500}
    with pytest.raises(ValueError, match="warm-up would be ignored"):
        scheduler_of({**ft, "warmup_steps": 500})
    with pytest.raises(ValueError, match="needs a positive warmup_steps"):
        scheduler_of({**ft, "scheduler": "warmuplr"})
    pre = pretrain_config(merged["model"], merged["pretrain"], "bpe.model", "tokens.txt", "stats.npz")
    assert merged["pretrain"].get("scheduler") is None and pre["scheduler"] == "warmuplr"


def test_fine_tuning_amp_and_loader_workers_reach_espnet(merged):
    """The paper config fine-tunes with ESPnet's --use_amp and 4 DataLoader workers (config keys
    finetune.use_amp / num_workers, in the recipe YAML and on the command line); the default config's recipe and
    command line stay as they were (no use_amp key, --num_workers 0). ESPnet's own parser reads both."""
    from espnet2.tasks.asr import ASRTask
    from zenodo_fixture import ASR_RECIPE

    from hne_core.model.recipe import finetune_config, train_args

    ft = merged["finetune"]
    assert (ft["use_amp"], ft["num_workers"]) == (True, 4)
    recipe = finetune_config(ASR_RECIPE, REPO, 1.0, 0.3, 2, merged["discriminator"], ft)
    args = train_args("tr", "dv", "st", True, 1, 0, num_workers=ft["num_workers"])
    assert recipe["use_amp"] is True and args[args.index("--num_workers") + 1] == "4"
    parsed = ASRTask.get_parser().parse_args(["--use_amp", str(recipe["use_amp"]).lower(), *args[:4]])
    assert parsed.use_amp is True and parsed.num_workers == 4
    default = yaml.safe_load((REPO / "config.yaml").read_text())["finetune"]
    assert (default["use_amp"], default["num_workers"]) == (False, 0)
    assert "use_amp" not in finetune_config(ASR_RECIPE, REPO, 1.0, 0.3, 2, merged["discriminator"], default)
    plain = train_args("tr", "dv", "st", True, 0, 0)
    assert plain[plain.index("--num_workers") + 1] == "0"
    attack = merged["attack"]
    assert (attack["batch_size"], attack["batch_samples"], attack["autocast"]) == (64, 1600000, None)
