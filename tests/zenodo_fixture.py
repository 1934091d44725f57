"""A stand-in for the paper's pre-trained model (Zenodo record 4604011), made at test time in the zip's own
layout, small enough to fine-tune in seconds.

The real zip is what ESPnet's asr.sh packs (``python -m espnet2.bin.pack asr``) from its LibriSpeech run:

    meta.yaml
    exp/asr_train_asr_conformer6_n_fft512_hop_length256_raw_en_bpe5000_..._sp/config.yaml
    exp/asr_train_asr_conformer6_n_fft512_hop_length256_raw_en_bpe5000_..._sp/valid.acc.ave_10best.pth
    exp/asr_train_asr_conformer6_n_fft512_hop_length256_raw_en_bpe5000_..._sp/RESULTS.md
    exp/lm_train_lm_transformer2_bpe5000_..._use_amptrue/config.yaml, valid.loss.ave_10best.pth
    exp/asr_stats_raw_en_bpe5000_sp/train/feats_stats.npz
    data/en_token_list/bpe_unigram5000/bpe.model

The stand-in is made by the same tools: sentencepiece trains an upper-case unigram model (on this test's own
sentences, a small vocabulary in place of 5000), ESPnet's frontend computes the global statistics from espeak-ng
speech, ESPnet's ``ASRTask``/``LMTask`` write each config.yaml (``--dry_run``: the training config ESPnet dumps,
token list inline) and build the model whose weights are saved, and ESPnet's packer makes the zip, run from the
experiment folder as asr.sh runs it. The config has the real one's keys and choices (default frontend with
n_fft 512 / hop 256 / 80 mels, SpecAugment, global MVN, conformer encoder with rel_pos/rel_selfattn/swish/macaron/
conv module and conv2d subsampling, transformer decoder, ctc_weight 0.3, lsm_weight 0.1, 16 kHz BPE); only the
sizes are tiny. The weights are random: the rehearsal checks shapes, not accuracy.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import yaml

REPO = Path(__file__).resolve().parent.parent
TAG = "asr_conformer6_n_fft512_hop_length256_raw_en_bpe5000_scheduler_confwarmup_steps40000_optim_conflr0.0025_sp"
ASR_EXP = f"exp/asr_train_{TAG}"
LM_EXP = (
    "exp/lm_train_lm_transformer2_bpe5000_scheduler_confwarmup_steps25000_batch_bins500000000_accum_grad2_use_amptrue"
)
STATS = "exp/asr_stats_raw_en_bpe5000_sp"
BPE = "data/en_token_list/bpe_unigram5000/bpe.model"
ASR_MODEL = f"{ASR_EXP}/valid.acc.ave_10best.pth"  # asr.sh packs valid.acc.ave.pth, a link to this file
LM_MODEL = f"{LM_EXP}/valid.loss.ave_10best.pth"
ZIP_MEMBERS = (
    "meta.yaml",
    f"{ASR_EXP}/config.yaml",
    ASR_MODEL,
    f"{ASR_EXP}/RESULTS.md",
    f"{LM_EXP}/config.yaml",
    LM_MODEL,
    f"{STATS}/train/feats_stats.npz",
    BPE,
)


def paper_zip_name() -> str:
    """The file name of the pinned download in configs/paper.yaml (the stand-in is served under it)."""
    url = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())["pretrained"]["url"]
    return Path(urlparse(url).path).name


# The real config's keys, tiny sizes. frontend_conf.fs is what asr.sh adds for raw audio.
ASR_RECIPE = {
    "batch_type": "numel",
    "batch_bins": 140000000,
    "accum_grad": 1,
    "max_epoch": 35,
    "patience": None,
    "init": None,
    "best_model_criterion": [["valid", "acc", "max"]],
    "keep_nbest_models": 10,
    "encoder": "conformer",
    "encoder_conf": {
        "output_size": 16,
        "attention_heads": 2,
        "linear_units": 32,
        "num_blocks": 1,
        "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1,
        "attention_dropout_rate": 0.1,
        "input_layer": "conv2d",
        "normalize_before": True,
        "macaron_style": True,
        "pos_enc_layer_type": "rel_pos",
        "selfattention_layer_type": "rel_selfattn",
        "activation_type": "swish",
        "use_cnn_module": True,
        "cnn_module_kernel": 7,
    },
    "decoder": "transformer",
    "decoder_conf": {
        "attention_heads": 2,
        "linear_units": 32,
        "num_blocks": 1,
        "dropout_rate": 0.1,
        "positional_dropout_rate": 0.1,
        "self_attention_dropout_rate": 0.1,
        "src_attention_dropout_rate": 0.1,
    },
    "model_conf": {"ctc_weight": 0.3, "lsm_weight": 0.1, "length_normalized_loss": False},
    "optim": "adam",
    "optim_conf": {"lr": 0.0025},
    "scheduler": "warmuplr",
    "scheduler_conf": {"warmup_steps": 40000},
    "frontend": "default",
    "frontend_conf": {"n_fft": 512, "hop_length": 256, "fs": "16k"},
    "specaug": "specaug",
    "specaug_conf": {
        "apply_time_warp": True,
        "time_warp_window": 5,
        "time_warp_mode": "bicubic",
        "apply_freq_mask": True,
        "freq_mask_width_range": [0, 30],
        "num_freq_mask": 2,
        "apply_time_mask": True,
        "time_mask_width_range": [0, 40],
        "num_time_mask": 2,
    },
    "normalize": "global_mvn",
    "normalize_conf": {"stats_file": f"{STATS}/train/feats_stats.npz"},
    "token_type": "bpe",
    "bpemodel": BPE,
}
LM_RECIPE = {
    "lm": "transformer",
    "lm_conf": {
        "pos_enc": None,
        "embed_unit": 16,
        "att_unit": 16,
        "head": 2,
        "unit": 32,
        "layer": 1,
        "dropout_rate": 0.0,
    },
    "optim": "adam",
    "optim_conf": {"lr": 0.001},
    "scheduler": "warmuplr",
    "scheduler_conf": {"warmup_steps": 25000},
    "token_type": "bpe",
    "bpemodel": BPE,
}

# Run inside the experiment folder (paths in the configs are relative to it, as in an ESPnet recipe).
_BUILD = r"""
import sys, yaml
from hne_core.startup import skip_typeguard_instrumentation
skip_typeguard_instrumentation()  # before ESPnet is imported: a fast start-up, as the workflow's jobs
import numpy as np, soundfile as sf, torch, torchaudio
from espnet2.asr.frontend.default import DefaultFrontend
from espnet2.tasks.asr import ASRTask
from espnet2.tasks.lm import LMTask
from espnet2.utils.yaml_no_alias_safe_dump import yaml_no_alias_safe_dump

CONF = {"ASRTask": "conf/tuning/train_asr_conformer6_n_fft512_hop_length256.yaml",
        "LMTask": "conf/tuning/train_lm_transformer2.yaml"}

asr_exp, lm_exp, stats, asr_model, lm_model, *wavs = sys.argv[1:]
# Global MVN statistics of the frontend's features, as collect_stats writes them
frontend = DefaultFrontend(fs=16000, n_fft=512, hop_length=256)
count, total, square = 0, 0.0, 0.0
for wav in wavs:
    audio, rate = sf.read(wav, dtype="float32")
    x = torchaudio.functional.resample(torch.from_numpy(audio), rate, 16000)[None]
    feats, _ = frontend(x, torch.tensor([x.shape[1]]))
    feats = feats[0].detach().double().numpy()
    count, total, square = count + len(feats), total + feats.sum(0), square + (feats ** 2).sum(0)
np.savez(f"{stats}/train/feats_stats.npz", count=np.array(count), sum=total, sum_square=square)
data = ["--train_data_path_and_name_and_type", "dump/raw/train_960_sp/wav.scp,speech,sound",
        "--train_data_path_and_name_and_type", "dump/raw/train_960_sp/text,text,text",
        "--valid_data_path_and_name_and_type", "dump/raw/dev/wav.scp,speech,sound",
        "--valid_data_path_and_name_and_type", "dump/raw/dev/text,text,text",
        "--train_shape_file", f"{stats}/train/speech_shape", "--valid_shape_file", f"{stats}/valid/speech_shape"]
for task, exp, weights in ((ASRTask, asr_exp, asr_model), (LMTask, lm_exp, lm_model)):
    task.main(cmd=["--config", "recipe.yaml" if task is ASRTask else "lm_recipe.yaml", "--dry_run", "true",
                   "--ngpu", "0", "--use_preprocessor", "true", "--token_list", "tokens.txt",
                   "--output_dir", exp, *data])
    model, _ = task.build_model_from_file(f"{exp}/config.yaml", None, "cpu")
    torch.save(model.state_dict(), weights)
    # as the real run wrote it: a training run (not --dry_run) of the recipe's tuning config
    with open(f"{exp}/config.yaml", encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    cfg.update(dry_run=False, config=CONF[task.__name__])
    with open(f"{exp}/config.yaml", "w", encoding="utf-8") as fh:
        yaml_no_alias_safe_dump(cfg, fh, indent=4, sort_keys=False)
"""


def _run(cmd: list[str], cwd: Path) -> None:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[:3]} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def make_standin_zip(work: Path, sentences: list[str], wavs: list[Path], vocab_size: int = 120) -> Path:
    """The stand-in zip under ``work`` (named as the pinned download), from upper-case ``sentences`` (BPE and
    token list) and 16 kHz-or-other mono ``wavs`` (feature statistics)."""
    import sentencepiece as spm

    src = work / "espnet_run"
    for folder in (ASR_EXP, LM_EXP, f"{STATS}/train", str(Path(BPE).parent)):
        (src / folder).mkdir(parents=True, exist_ok=True)
    text = src / "data" / "en_token_list" / "train.txt"
    text.write_text("".join(f"{s}\n" for s in sentences), encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(text),
        model_prefix=str(src / BPE)[: -len(".model")],
        model_type="unigram",
        vocab_size=vocab_size,
        character_coverage=1.0,
        input_sentence_size=100000000,
        hard_vocab_limit=False,
        num_threads=1,
        minloglevel=2,
    )
    sp = spm.SentencePieceProcessor(model_file=str(src / BPE))
    # ESPnet's token list: <blank>, <unk>, every piece of the BPE model, <sos/eos> (the real one: 5000 entries)
    pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size()) if not (sp.is_unknown(i) or sp.is_control(i))]
    (src / "tokens.txt").write_text("\n".join(["<blank>", "<unk>", *pieces, "<sos/eos>"]) + "\n", encoding="utf-8")
    (src / "recipe.yaml").write_text(yaml.safe_dump(ASR_RECIPE, sort_keys=False))
    (src / "lm_recipe.yaml").write_text(yaml.safe_dump(LM_RECIPE, sort_keys=False))
    _run([sys.executable, "-c", _BUILD, ASR_EXP, LM_EXP, STATS, ASR_MODEL, LM_MODEL, *map(str, wavs)], src)
    (src / ASR_EXP / "RESULTS.md").write_text("# RESULTS\nA stand-in made by the tests: random weights.\n")
    out = work / paper_zip_name()
    _run(
        [
            sys.executable,
            "-m",
            "espnet2.bin.pack",
            "asr",
            "--asr_train_config",
            f"{ASR_EXP}/config.yaml",
            "--asr_model_file",
            ASR_MODEL,
            "--lm_train_config",
            f"{LM_EXP}/config.yaml",
            "--lm_file",
            LM_MODEL,
            "--option",
            f"{STATS}/train/feats_stats.npz",
            "--option",
            BPE,
            "--option",
            f"{ASR_EXP}/RESULTS.md",
            "--outpath",
            str(out),
        ],
        src,
    )
    return out
