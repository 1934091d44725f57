"""The multi-task model: loss weighting, the discriminator, the λ edge cases, export and decoding."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile

import pandas as pd
import pytest
import torch
from model_utils import build_tiny, tiny_batch

from hne_core.model.mtl import AccentDiscriminator, masked_mean, mtl_loss


def t(x: float) -> torch.Tensor:
    return torch.tensor(x)


@pytest.mark.parametrize(
    "la, lc, ctc, att, dis, expected",
    [
        (0.7, 0.3, 2.0, 4.0, 10.0, 0.7 * (0.3 * 2.0 + 0.7 * 4.0) + 0.3 * 10.0),
        (1.0, 0.5, 2.0, 4.0, None, 3.0),
        (1.0, 1.0, 2.0, None, None, 2.0),
        (1.0, 0.0, None, 4.0, None, 4.0),
        (0.5, 0.0, None, 4.0, 10.0, 7.0),
    ],
)
def test_loss_is_eq_1_and_3(la, lc, ctc, att, dis, expected):
    loss = mtl_loss(
        None if ctc is None else t(ctc), None if att is None else t(att), None if dis is None else t(dis), la, lc
    )
    assert loss.item() == pytest.approx(expected)


def test_loss_refuses_a_misbuilt_model():
    with pytest.raises(ValueError, match="L_CTC has weight 0"):
        mtl_loss(t(1.0), t(1.0), None, 1.0, 0.0)
    with pytest.raises(ValueError, match="L_DIS has weight 0.3.* not computed"):
        mtl_loss(t(1.0), t(1.0), None, 0.7, 0.5)


@pytest.mark.numeric
def test_discriminator_has_five_layers_and_ignores_padding():
    dis = AccentDiscriminator(16, [8, 8, 8, 8], 2, "relu")
    assert sum(isinstance(m, torch.nn.Linear) for m in dis) == 5
    assert dis(torch.randn(3, 16)).shape == (3, 2)
    enc = torch.randn(2, 10, 16)
    lens = torch.tensor([10, 6])
    padded = enc.clone()
    padded[1, 6:] = 1e4  # whatever sits in the padding must not matter
    assert torch.allclose(masked_mean(enc, lens), masked_mean(padded, lens))
    assert torch.allclose(masked_mean(enc, lens)[1], enc[1, :6].mean(0))


@pytest.mark.numeric
def test_standardised_discriminator_input_is_batch_independent_at_inference():
    torch.manual_seed(0)
    dis = AccentDiscriminator(16, [8, 8, 8, 8], 2, "relu", input_norm="batch")
    assert sum(isinstance(m, torch.nn.Linear) for m in dis) == 5
    assert sum(p.numel() for p in dis[0].parameters()) == 0, "the standardiser adds no parameters"
    x = 5.0 + 0.01 * torch.randn(32, 16)  # one common vector plus small deviations, as pooled embeddings are
    dis.train()
    for _ in range(50):  # running statistics of the training batches
        dis(x[torch.randperm(32)[:8]])
    standardised = dis[0](x)
    assert standardised.std(0).mean() > 10 * x.std(0).mean(), "the deviations are scaled up"
    dis(x[:1])  # a one-utterance training batch uses the running statistics instead of failing
    dis.eval()
    alone = torch.cat([dis(x[i : i + 1]) for i in range(4)])
    # elementwise ops are the same for any batch; the 5 linear layers (inner sizes ≤ 16) may sum in another order
    # for another batch shape: ≤ 2·γ_16 of the layer's Σ|w·a| each, bounded here by the output's own scale
    batched = dis(x[:4])
    bound = 2 * 5 * 16 * 2.0**-24 * float(alone.abs().max())
    assert float((alone - batched).abs().max()) <= bound
    with pytest.raises(ValueError, match="input_norm"):
        AccentDiscriminator(16, [8], 2, "relu", input_norm="layer")


@pytest.mark.parametrize(
    "la, lc, heads",
    [
        (1.0, 0.0, {"decoder"}),  # STL decoder
        (1.0, 1.0, {"ctc"}),  # STL CTC
        (1.0, 0.3, {"ctc", "decoder"}),  # MTL CTC + decoder
        (0.7, 0.0, {"decoder", "discriminator"}),
        (0.7, 0.5, {"ctc", "decoder", "discriminator"}),
    ],
)
def test_lambda_edge_cases_build_only_the_weighted_heads(la, lc, heads):
    model = build_tiny(la, lc)
    built = {name for name in ("ctc", "decoder", "discriminator") if getattr(model, name) is not None}
    assert built == heads
    loss, stats, weight = model(**tiny_batch())
    assert weight.item() == 2
    present = {k for k in ("loss_ctc", "loss_att", "loss_dis") if stats.get(k) is not None}
    assert present == {{"ctc": "loss_ctc", "decoder": "loss_att", "discriminator": "loss_dis"}[h] for h in heads}
    parts = {k: stats[k] for k in present}
    expected = mtl_loss(parts.get("loss_ctc"), parts.get("loss_att"), parts.get("loss_dis"), la, lc)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert ("acc_dis" in stats) == ("discriminator" in heads)


def test_smoke_models_export_and_evaluate(smoke_run):
    """Two grid points fine-tuned and evaluated end to end by the workflow (tests/configs/smoke.yaml)."""
    results = smoke_run / "results"
    for model, inference in (("la1.0_lc0.0", ("0.0",)), ("la0.7_lc0.3", ("0.3", "0.0"))):
        curve = pd.read_csv(results / "models" / model / "train_curve.csv")
        assert set(curve.phase) == {"train", "valid"} and curve.epoch.max() == 1
        assert (results / "models" / model / "train_curve.png").stat().st_size > 1000
        for lci in inference:
            summary = json.loads((results / "eval" / model / f"infer{lci}" / "summary.json").read_text())
            assert summary["n_utts"] == 8 and summary["wer"] >= 0
            assert summary["lambda_c_infer"] == float(lci)
            assert (summary["accent_acc"] is None) == model.startswith("la1.0")
    mtl = curve  # the last one read: λA = 0.7 reports its discriminator
    assert mtl["loss_dis"].notna().all() and mtl["acc_dis"].notna().all()


def test_exported_model_decodes_in_stock_speech2text(smoke_run):
    """A fresh process that never imports hne_core loads the export with Speech2Text and decodes exactly what
    the evaluation job wrote. The job decodes in the default ``decoding.mode: exact`` (Eq. 2's arg-max over the
    whole vocabulary), which is ESPnet's own beam-1 search with its pre-beam turned off; ESPnet appends an
    <eos> after its last step's token even when that token is <eos>, which is removed."""
    model_dir = smoke_run / "results/models/la0.7_lc0.3"
    hyps = pd.read_csv(smoke_run / "results/eval/la0.7_lc0.3/infer0.3/hypotheses.tsv", sep="\t", keep_default_na=False)
    utt = hyps.iloc[0]
    wav = next(
        line.split()[1]
        for line in (smoke_run / "results/data/test/wav.scp").read_text().splitlines()
        if line.startswith(utt.utt_id + " ")
    )
    code = f"""
import soundfile as sf, sys
from espnet2.bin.asr_inference import Speech2Text
assert 'hne_core' not in sys.modules
s2t = Speech2Text(asr_train_config='{model_dir}/config.yaml', asr_model_file='{model_dir}/model.pth',
                  beam_size=1, ctc_weight=0.3, lm_weight=0.0, penalty=0.0, nbest=1)
s2t.beam_search.do_pre_beam = False  # score every token with both heads, not only the decoder's top one
print('HYP=' + s2t(sf.read('{wav}', dtype='float32')[0])[0][0].removesuffix('<sos/eos>'))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=smoke_run, check=True)
    hyp = next(line[4:] for line in out.stdout.splitlines() if line.startswith("HYP="))
    from hne_core.text import normalize_transcript

    assert normalize_transcript(hyp) == utt.hypothesis


def _espnet_zoo_zip(smoke_run, tmp_path):
    """The smoke run's pre-trained base packed by ESPnet's own packer, as the model zoo serves models."""
    from espnet2.main_funcs.pack_funcs import pack

    base = smoke_run / "results/pretrained"
    import yaml

    cfg = yaml.safe_load((base / "config.yaml").read_text())
    cfg["bpemodel"] = str(base / "bpe.model")
    cfg["normalize_conf"]["stats_file"] = str(base / "feats_stats.npz")
    cfg["token_list"] = (base / "tokens.txt").read_text().split()
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(cfg))
    out = tmp_path / "model.zip"
    pack(
        files={"asr_model_file": base / "model.pth"},
        yaml_files={"asr_train_config": tmp_path / "config.yaml"},
        option=[base / "bpe.model", base / "feats_stats.npz"],
        outpath=out,
    )
    return out


def test_pretrained_fetch_verifies_sha256_and_lays_out_the_model(smoke_run, tmp_path):
    from hne_core.pretrained import LAYOUT, PretrainedError, fetch_pretrained, sha256_of

    archive = _espnet_zoo_zip(smoke_run, tmp_path)
    assert zipfile.is_zipfile(archive)
    with pytest.raises(PretrainedError, match="does not match config key 'pretrained.sha256'"):
        fetch_pretrained(str(archive), "0" * 64, tmp_path / "cache", tmp_path / "refused")
    assert not (tmp_path / "refused").exists()
    with pytest.raises(PretrainedError, match="'pretrained.sha256' is not set"):
        fetch_pretrained(str(archive), None, tmp_path / "cache", tmp_path / "refused")
    out = fetch_pretrained(str(archive), sha256_of(archive), tmp_path / "cache", tmp_path / "base")
    assert sorted(p.name for p in out.iterdir()) == sorted(LAYOUT)
    original = smoke_run / "results/pretrained"
    assert (out / "model.pth").read_bytes() == (original / "model.pth").read_bytes()
    assert (out / "tokens.txt").read_text() == (original / "tokens.txt").read_text()


def test_discriminator_learning_rate_scale_makes_its_own_parameter_group():
    import argparse

    from hne_core.model.mtl import MTLASRTask

    model = build_tiny(0.7, 0.3)
    args = argparse.Namespace(optim="adam", optim_conf={"lr": 1e-3}, sharded_ddp=False, exclude_weight_decay=False)
    (single,) = MTLASRTask.build_optimizers(args, model)
    assert [g["lr"] for g in single.param_groups] == [1e-3]
    model.dis_lr_scale = 3.0
    (split,) = MTLASRTask.build_optimizers(args, model)
    assert [g["lr"] for g in split.param_groups] == [1e-3, pytest.approx(3e-3)]
    head = {id(p) for p in model.discriminator.parameters()}
    assert {id(p) for p in split.param_groups[1]["params"]} == head
    assert sum(len(g["params"]) for g in split.param_groups) == len(list(model.parameters()))


@pytest.mark.parametrize("lc, expected", [(0.0, "base.pth:::ctc"), (1.0, "base.pth:::decoder"), (0.3, "base.pth")])
def test_init_param_leaves_out_the_heads_a_corner_model_lacks(lc, expected):
    from hne_core.model.recipe import init_param

    assert init_param("base.pth", lc) == expected


# ------------------------------------------------------------------------------------------------ auxiliary tasks
ACCENT_ONLY = {"accent": {"classes": 2, "weight": 1.0}}
ACCENT_AND_SEX = {"accent": {"classes": 2, "weight": 0.25}, "sex": {"classes": 2, "weight": 0.75}}


def with_labels(batch: dict, **labels) -> dict:
    return {**batch, **{k: torch.tensor(v)[:, None] for k, v in labels.items()},
            **{f"{k}_lengths": torch.ones(len(v), dtype=torch.long) for k, v in labels.items()}}  # fmt: skip


@pytest.mark.numeric
def test_the_accent_task_alone_is_the_papers_model_bit_for_bit():
    """``tasks`` naming the accent alone with weight 1 builds the paper's model: the same weights file (keys and
    values, same seed) and, on a fixed batch, the same loss and statistics, bit for bit (the same operations)."""
    paper, tasked = build_tiny(0.7, 0.3).train(), build_tiny(0.7, 0.3, tasks=ACCENT_ONLY).train()
    a, b = paper.state_dict(), tasked.state_dict()
    assert list(a) == list(b) and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.startswith("discriminator.") for k in a) and not any(k.startswith("task_heads") for k in a)
    torch.manual_seed(5)
    loss_a, stats_a, _ = paper(**tiny_batch())
    torch.manual_seed(5)
    loss_b, stats_b, _ = tasked(**tiny_batch())
    assert torch.equal(loss_a, loss_b)
    assert {k: None if v is None else float(v) for k, v in stats_a.items()} == {
        k: None if v is None else float(v) for k, v in stats_b.items()
    }


@pytest.mark.numeric
def test_two_tasks_weigh_their_heads_cross_entropies_and_a_missing_label_trains_the_rest():
    """L = λA·L_ASR + (1 − λA)·(0.25·L_accent + 0.75·L_sex), each head's cross-entropy recomputed from the model's own
    heads (in eval mode, no dropout); an utterance without a sex label (-1) is left out of L_sex alone, and a batch
    with none gives L_sex = 0 and no gradient to the sex head."""
    model = build_tiny(0.7, 0.3, tasks=ACCENT_AND_SEX)
    assert set(model.tasks) == {"accent", "sex"} and model.task_heads is not None
    batch = with_labels(tiny_batch(), sex=[1, -1])
    loss, stats, _ = model(**{k: v.clone() for k, v in batch.items()})
    with torch.no_grad():
        enc, lens = model.encode(batch["speech"], batch["speech_lengths"])
        ce = torch.nn.functional.cross_entropy
        l_acc = ce(model.task_logits("accent", enc, lens), batch["accent"][:, 0])
        l_sex = ce(model.task_logits("sex", enc, lens)[:1], batch["sex"][:1, 0])  # the labelled row only
    asr = 0.3 * stats["loss_ctc"] + 0.7 * stats["loss_att"]
    expected = 0.7 * asr + 0.3 * (0.25 * l_acc + 0.75 * l_sex)
    # a handful of float32 operations on the same numbers: a few units of round-off of the total
    assert float(loss) == pytest.approx(float(expected), rel=16 * 2.0**-24)
    assert float(stats["loss_sex"]) == pytest.approx(float(l_sex), rel=4 * 2.0**-24)
    unlabelled = with_labels(tiny_batch(), sex=[-1, -1])
    model.zero_grad()
    loss, stats, _ = model(**unlabelled)
    loss.backward()
    assert float(stats["loss_sex"]) == 0.0 and stats["acc_sex"] is None and torch.isfinite(loss)
    assert all(p.grad is None or not p.grad.any() for p in model.task_head("sex").parameters())
    assert any(p.grad is not None and p.grad.any() for p in model.task_head("accent").parameters())


def test_tasks_are_checked():
    with pytest.raises(ValueError, match="sum to 1"):
        build_tiny(0.7, 0.3, tasks={"accent": {"classes": 2, "weight": 0.5}, "sex": {"classes": 2, "weight": 0.4}})
    with pytest.raises(ValueError, match="at least 2 classes"):
        build_tiny(0.7, 0.3, tasks={"sex": {"classes": 1, "weight": 1.0}})
    model = build_tiny(0.7, 0.3, tasks={"sex": {"classes": 2, "weight": 1.0}})  # a sex head instead of the accent's
    assert model.discriminator is None and set(model.tasks) == {"sex"}
    with pytest.raises(ValueError, match="no 'accent' head"):
        model.task_head("accent")
    with pytest.raises(ValueError, match="has no 'sex' labels"):
        model(**tiny_batch())
    assert build_tiny(1.0, 0.3, tasks=ACCENT_AND_SEX).tasks == {}  # λA = 1: no discriminator at all
