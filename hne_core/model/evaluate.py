"""Benign evaluation: greedy decoding as the paper's Eq. 2, WER with jiwer, each discriminator's accuracy.

The model is loaded by ESPnet's own ``Speech2Text`` (its weights, token list and tokenizer). Decoding follows
``decoding.mode`` (``hne_core.decoding``): ``exact`` (the default) takes at every step the token of the whole
vocabulary, <eos> included, that maximises λC(i)·log p_CTC(prefix + token) + (1-λC(i))·log p_dec(token | prefix),
Eq. 2; ``espnet_beam1`` is ``Speech2Text`` with beam 1 and ``ctc_weight`` = λC(i), whose pre-beam keeps only the
decoder's top token (the decoder's greedy hypothesis, which CTC can only end early). Mode ``exact`` decodes
``decoding.batch_size`` utterances together, encoded under the attack's batch-invariance hooks (ESPnet's own
outputs depend on batch padding: its centred STFT reflects the batch's zero padding), which give the tokens of
one-at-a-time decoding; ``Speech2Text`` (``espnet_beam1``) decodes one utterance per call. Hypotheses and
references are normalised by the same function as the data stage before scoring.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import jiwer
import numpy as np
import pandas as pd
import torch
import yaml

# What the data stage wrote, read back (hne_core.data.utterances: the data stage's side of the contract).
from hne_core.data.corpus import read_kaldi_table
from hne_core.data.utterances import Utterance, read_audio, read_data_dir  # noqa: F401 (read_audio: bench)
from hne_core.decoding import DEFAULT_BATCH_SIZE, DEFAULT_MODE
from hne_core.naming import ACCENT_TASK as ACCENT
from hne_core.naming import tasks_id
from hne_core.text import normalize_transcript


def load_speech2text(model_dir: str | Path, ctc_weight: float, device: str = "cpu"):
    """ESPnet's ``Speech2Text`` (beam 1, ``ctc_weight`` = λC(i)) on an exported model (``config.yaml`` +
    ``model.pth``), or on a pre-trained base in its layout (whose config names its files relative to its folder).
    Called, it decodes in mode ``espnet_beam1``; ``load_transcriber`` gives the configured mode."""
    import tempfile

    from espnet2.bin.asr_inference import Speech2Text

    from hne_core.model.recipe import resolve_layout_config

    d = Path(model_dir)
    cfg = yaml.safe_load((d / "config.yaml").read_text(encoding="utf-8"))
    with tempfile.TemporaryDirectory() as tmp:
        config = d / "config.yaml"
        if cfg.get("token_list") == "tokens.txt":  # the pre-trained layout
            config = Path(tmp) / "config.yaml"
            config.write_text(yaml.safe_dump(resolve_layout_config(cfg, d)), encoding="utf-8")
        return Speech2Text(
            asr_train_config=str(config),
            asr_model_file=str(d / "model.pth"),
            device=device,
            beam_size=1,
            ctc_weight=float(ctc_weight),
            lm_weight=0.0,
            penalty=0.0,
            nbest=1,
        )


def load_transcriber(model_dir: str | Path, ctc_weight: float, mode: str = DEFAULT_MODE, device: str = "cpu"):
    """``transcriber(wave) -> text``: greedy decoding of the model at λC(i) = ``ctc_weight`` in ``decoding.mode``
    (``hne_core.decoding.Transcriber``; ``.asr_model`` and ``.speech2text`` give the loaded model)."""
    from hne_core.decoding import Transcriber

    return Transcriber(load_speech2text(model_dir, ctc_weight, device), ctc_weight, mode)


def decode(
    transcriber: Callable[[np.ndarray], str],
    utterances: Iterable[Utterance],
    text_case: str = "upper",
    batch_size: int = 1,
) -> list[str]:
    """One greedy hypothesis per utterance (``transcriber``: ``load_transcriber``), normalised for scoring.
    ``batch_size`` (``decoding.batch_size``): utterances decoded together in mode ``exact``
    (``Transcriber.batch``: padded batches whose tokens are one-at-a-time decoding's, several times faster);
    ``espnet_beam1``, or a plain callable, decodes one at a time."""
    waves = [read_audio(utt.wav) for utt in utterances]
    with torch.no_grad():
        batch = getattr(transcriber, "batch", None)
        texts = batch(waves, batch_size) if batch is not None else [transcriber(w) for w in waves]
    return [normalize_transcript(t or "", text_case) for t in texts]


def corpus_wer(references: list[str], hypotheses: list[str]) -> float:
    """Total word edits over total reference words (jiwer on lists), as a fraction."""
    return float(jiwer.wer(references, hypotheses))


def load_mtl_model(model_dir: str | Path, device: str = "cpu"):
    """The full multi-task model (with its discriminators) kept beside an export; None if it has none."""
    from espnet2.tasks.asr import ASRTask

    import hne_core.model.mtl  # noqa: F401  (registers model: mtl)

    d = Path(model_dir)
    if not (d / "mtl_config.yaml").is_file():  # a pre-trained base: no discriminator
        return None
    cfg = yaml.safe_load((d / "mtl_config.yaml").read_text(encoding="utf-8"))
    model = ASRTask.build_model(argparse.Namespace(**cfg))
    model.load_state_dict(torch.load(d / "mtl_model.pth", map_location=device, weights_only=True), strict=True)
    model.to(device).eval()
    return model if getattr(model, "tasks", None) else None


MISSING_LABEL = -1  # "no label" in a task's label file (hne_core.model.mtl masks it in training)


def predict_tasks(model, utterances: Iterable[Utterance], device: str = "cpu") -> dict[str, list[int]]:
    """Every discriminator head's predictions, one utterance at a time (no padding involved), one encoding each."""
    preds: dict[str, list[int]] = {task: [] for task in model.tasks}
    with torch.no_grad():
        for utt in utterances:
            speech = torch.from_numpy(read_audio(utt.wav)).unsqueeze(0).to(device)
            lengths = torch.tensor([speech.shape[1]], device=device)
            enc, enc_lens = model.encode(speech, lengths)
            for task in preds:
                preds[task].append(int(model.task_logits(task, enc, enc_lens).argmax(-1).item()))
    return preds


def predict_accents(model, utterances: Iterable[Utterance], device: str = "cpu") -> list[int]:
    """The accent discriminator's predictions (``predict_tasks``)."""
    return predict_tasks(model, utterances, device)[ACCENT]


def task_labels(data_dir: str | Path, task: str, utterances: Iterable[Utterance]) -> list[int]:
    """The data stage's labels of ``task`` (``labels_<task>``: class index, -1 = none) of the evaluated utterances;
    an utterance the file lacks is an error naming both."""
    path = Path(data_dir) / f"labels_{task}"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: the {task!r} labels of this split are missing (rule task_labels)")
    table = read_kaldi_table(path)
    missing = [u.utt_id for u in utterances if u.utt_id not in table]
    if missing:
        raise ValueError(f"{path}: no {task!r} label for {missing[0]!r} ({len(missing)} utterances)")
    return [int(table[u.utt_id]) for u in utterances]


def _accuracy(pred: list[int], gold: list[int]) -> float | None:
    """Over the utterances with a label (-1: none); None when none has one."""
    pairs = [(p, g) for p, g in zip(pred, gold) if g != MISSING_LABEL]
    return float(np.mean([p == g for p, g in pairs])) if pairs else None


@dataclass(frozen=True)
class EvalSettings:
    """How every benign evaluation of a run samples and decodes, built once from the config: ``limit``,
    ``composition`` and ``seed`` choose the test utterances (``read_data_dir``); ``decoding`` and
    ``decoding_batch_size`` are ``decoding.mode`` (``hne_core.decoding.DECODING_MODES``) and ``decoding.batch_size``;
    ``text_case`` normalises references and hypotheses alike."""

    text_case: str = "upper"
    limit: int | None = None
    seed: int = 0
    composition: str = "balanced"
    decoding: str = DEFAULT_MODE
    decoding_batch_size: int = DEFAULT_BATCH_SIZE


def evaluate(
    model_dir: str | Path, data_dir: str | Path, ctc_weight: float, settings: EvalSettings, device: str = "cpu"
) -> tuple[pd.DataFrame, dict]:
    """Per-utterance hypotheses and the summary (WER, accent accuracy, the decoding mode) of one (model, λC(i))
    pair."""
    s = settings
    utterances = read_data_dir(data_dir, s.limit, s.seed, s.composition)
    transcriber = load_transcriber(model_dir, ctc_weight, s.decoding, device)
    hyps = decode(transcriber, utterances, s.text_case, s.decoding_batch_size)
    refs = [normalize_transcript(u.reference, s.text_case) for u in utterances]
    frame = pd.DataFrame(
        {
            "utt_id": [u.utt_id for u in utterances],
            "reference": refs,
            "hypothesis": hyps,
            "accent_id": [u.accent_id for u in utterances],
        }
    )
    frame["wer"] = [corpus_wer([r], [h]) for r, h in zip(refs, hyps)]
    summary = {
        "lambda_c_infer": float(ctc_weight),
        "decoding": s.decoding,
        "n_utts": len(utterances),
        "wer": corpus_wer(refs, hyps),
    }
    mtl = load_mtl_model(model_dir, device)
    tasks = list(mtl.tasks) if mtl is not None else []
    preds = predict_tasks(mtl, utterances, device) if tasks else {}
    accs = {}
    for task in tasks:
        gold = list(frame["accent_id"]) if task == ACCENT else task_labels(data_dir, task, utterances)
        if task != ACCENT:
            frame[f"{task}_id"] = gold
        frame[f"{task}_pred"] = preds[task]
        accs[task] = _accuracy(preds[task], gold)
    summary["accent_acc"] = accs.get(ACCENT)
    if tasks and tasks != [ACCENT]:  # a model with other tasks: their accuracies and its tasks id (naming)
        summary["tasks"] = tasks_id({t: w for t, (_, w) in mtl.tasks.items()})
        summary["task_acc"] = accs
    return frame, summary
