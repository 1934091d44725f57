"""Training and decoding throughput, in utterance-seconds of audio per wall second.

Two models: the default config's small conformer on the CPU, and the paper's architecture (12-block
conformer, d=512, 8 heads, FF 2048, kernel 31; 6-block decoder; 5000 tokens) with random weights on whatever
device is present. Training = forward + backward + Adam step of ESPnet's model on a batch of 2-4 s inputs;
decoding = ``Speech2Text`` greedy (beam 1, λC(i)=0.3) one utterance at a time, as the evaluation runs it.
With random weights the decoder never emits <eos> early, so its decoding figure is a worst case.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import yaml

PAPER_MODEL = {
    "frontend": {"n_fft": 512, "hop_length": 256, "n_mels": 80},
    "encoder": {
        "output_size": 512,
        "attention_heads": 8,
        "linear_units": 2048,
        "num_blocks": 12,
        "cnn_module_kernel": 31,
        "dropout_rate": 0.1,
    },
    "decoder": {"attention_heads": 8, "linear_units": 2048, "num_blocks": 6, "dropout_rate": 0.1},
    "ctc_weight": 0.3,
    "lsm_weight": 0.1,
}
PAPER_VOCAB = 5000


def _token_list(n: int) -> list[str]:
    return ["<blank>", "<unk>", *(f"t{i}" for i in range(n - 3)), "<sos/eos>"]


def _recipe(model: dict, vocab: int) -> dict:
    from hne_core.model.recipe import pretrain_config

    cfg = pretrain_config(model, {"lr": 1e-3, "epochs": 1, "batch_bins": 1}, "unused", "unused", "unused")
    cfg.update(
        token_list=_token_list(vocab),
        bpemodel=None,
        token_type="char",
        use_preprocessor=False,
        normalize="utterance_mvn",
        normalize_conf={},
        input_size=None,
        init=None,
        ctc_conf={},
    )
    return cfg


def _build(cfg: dict):
    from espnet2.tasks.asr import ASRTask

    args = ASRTask.get_parser().parse_args([])
    for k, v in cfg.items():
        setattr(args, k, v)
    return ASRTask.build_model(args)


def _batch(batch: int, vocab: int, device: str, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    seconds = 2.0 + 2.0 * torch.rand(batch, generator=g)
    lengths = (seconds * 16000).long()
    speech = 0.1 * torch.randn(batch, int(lengths.max()), generator=g)
    n_tok = (seconds * 12).long()  # ~12 tokens a second
    text = torch.randint(3, vocab - 1, (batch, int(n_tok.max())), generator=g)
    for i, n in enumerate(n_tok):
        text[i, n:] = -1
    to = lambda x: x.to(device)  # noqa: E731
    return dict(speech=to(speech), speech_lengths=to(lengths), text=to(text), text_lengths=to(n_tok)), float(
        seconds.sum()
    )


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def train_throughput(model, vocab: int, device: str, steps: int, batch: int) -> float:
    model.to(device).train()
    optim = torch.optim.Adam(model.parameters(), lr=1e-4)
    data, audio_s = _batch(batch, vocab, device)
    for _ in range(1):  # warm-up step (allocations, kernels)
        loss, _, _ = model(**data)
        loss.backward()
        optim.step()
        optim.zero_grad()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loss, _, _ = model(**data)
        loss.backward()
        optim.step()
        optim.zero_grad()
    _sync(device)
    return steps * audio_s / (time.perf_counter() - start)


def _decode_rate(s2t, waves, device: str) -> float:
    """Audio seconds decoded per wall second, one utterance at a time as the evaluation runs."""
    start = time.perf_counter()
    for wave in waves:
        s2t(wave)
    _sync(device)
    return sum(len(w) for w in waves) / 16000 / (time.perf_counter() - start)


def decode_throughput(model, cfg: dict, device: str, utterances: int) -> float:
    from hne_core.model.evaluate import load_speech2text

    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "config.yaml").write_text(yaml.safe_dump(cfg))
        torch.save(model.state_dict(), Path(tmp) / "model.pth")
        s2t = load_speech2text(tmp, 0.3, device)
    data, _ = _batch(utterances, len(cfg["token_list"]), "cpu", seed=1)
    waves = [data["speech"][i, : int(data["speech_lengths"][i])].numpy() for i in range(utterances)]
    return _decode_rate(s2t, waves, device)


def decode_trained_throughput(layout_dir: Path, test_dir: Path, utterances: int) -> float:
    """Greedy decoding by the trained default base on real test utterances: what evaluation jobs pay."""
    from hne_core.model.evaluate import load_speech2text, read_audio, read_data_dir

    waves = [read_audio(u.wav) for u in read_data_dir(test_dir, utterances)]
    return _decode_rate(load_speech2text(layout_dir, 0.3), waves, "cpu")


def run(args: argparse.Namespace) -> int:
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    default_model = yaml.safe_load(Path(args.config).read_text())["model"]
    paper_device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    paper_steps = args.paper_steps or (args.steps if paper_device != "cpu" else 1)
    figures = {}
    for name, spec, vocab, device, steps, batch, n_dec in (
        ("default", default_model, 32, "cpu", args.steps, 16, 4),
        ("paper", PAPER_MODEL, PAPER_VOCAB, paper_device, paper_steps, 8, 2),
    ):
        cfg = _recipe(spec, vocab)
        model = _build(cfg)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        train = train_throughput(model, vocab, device, steps, batch)
        decode = decode_throughput(model.cpu(), cfg, device, n_dec)
        figures[name] = (device, params, train, decode)
        print(
            f"{name:8s} model: {params:6.1f} M parameters on {device}: training {train:8.2f} audio-s/s "
            f"(batch {batch}, {steps} steps), greedy decoding {decode:8.2f} audio-s/s (one at a time)",
            flush=True,
        )
    trained = Path(args.trained)
    test_dir = trained.parent / "data" / "test"
    if (trained / "config.yaml").is_file() and (test_dir / "wav.scp").is_file():
        rate = decode_trained_throughput(trained, test_dir, 8)
        print(f"trained default base ({trained}): greedy decoding {rate:8.2f} audio-s/s (one at a time)")
        figures["default"] = (*figures["default"][:3], rate)
    d, p = figures["default"], figures["paper"]
    print(
        f"summary: default_device={d[0]} default_train_audio_s_per_s={d[2]:.2f} "
        f"default_decode_audio_s_per_s={d[3]:.2f} paper_device={p[0]} paper_params_m={p[1]:.1f} "
        f"paper_train_audio_s_per_s={p[2]:.2f} paper_decode_audio_s_per_s={p[3]:.2f}"
    )
    return 0
