"""The models' token set: a sentencepiece model plus ESPnet's token list.

The self-made corpus trains its own sentencepiece model (``model_type: char`` by default: a small model learns
characters in minutes where BPE-200 did not, docs/design-notes.md §4); the paper config reuses
the pre-trained model's BPE and token list unchanged, because the fine-tuned heads share its output layer.
The token list is written by ESPnet's own ``tokenize_text`` (the same call as its asr.sh recipe), so the
symbols ``<blank>``, ``<unk>`` and ``<sos/eos>`` sit where ESPnet expects them.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hne_core.atomic import atomic_path
from hne_core.data.errors import DataError


def read_kaldi_text(path: str | Path) -> list[str]:
    """Transcripts of a Kaldi ``text`` file (``utt_id transcript``), naming the file and line of a bad row."""
    out = []
    for n, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        parts = line.split(maxsplit=1)
        if len(parts) != 2:
            raise DataError(f"{path}:{n}: expected 'utt_id transcript', got {line!r}")
        out.append(parts[1])
    return out


def train_sentencepiece(text_file: str | Path, model_out: str | Path, model_type: str, vocab_size: int) -> None:
    """Train a sentencepiece model on the transcripts of ``text_file``, deterministically (one thread, no
    sentence sampling), and write it atomically to ``model_out``."""
    import sentencepiece as spm

    sentences = read_kaldi_text(text_file)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text("\n".join(sentences) + "\n", encoding="utf-8")
        prefix = Path(tmp) / "spm"
        spm.SentencePieceTrainer.train(
            input=str(corpus),
            model_prefix=str(prefix),
            model_type=model_type,
            vocab_size=vocab_size,
            character_coverage=1.0,
            input_sentence_size=0,
            shuffle_input_sentence=False,
            num_threads=1,
            # A char model's size is the alphabet's: let sentencepiece stop there instead of failing.
            hard_vocab_limit=model_type != "char",
            minloglevel=2,
        )
        with atomic_path(model_out) as out:
            shutil.copyfile(f"{prefix}.model", out)


def write_token_list(text_file: str | Path, bpe_model: str | Path, tokens_out: str | Path) -> None:
    """ESPnet's token list for ``bpe_model`` over the transcripts of ``text_file`` (asr.sh stage 5)."""
    from espnet2.bin.tokenize_text import tokenize

    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "text.txt"
        plain.write_text("\n".join(read_kaldi_text(text_file)) + "\n", encoding="utf-8")
        with atomic_path(tokens_out) as out:
            tokenize(
                input=str(plain),
                output=str(out),
                field=None,
                delimiter=None,
                token_type="bpe",
                space_symbol="<space>",
                non_linguistic_symbols=None,
                bpemodel=str(bpe_model),
                log_level="WARNING",
                write_vocabulary=True,
                vocabulary_size=0,
                remove_non_linguistic_symbols=False,
                cutoff=0,
                add_symbol=["<blank>:0", "<unk>:1", "<sos/eos>:-1"],
                cleaner=None,
                g2p=None,
                add_nonsplit_symbol=[],
            )


def copy_pretrained_tokenizer(
    bpe_model: str | Path, tokens: str | Path, model_out: str | Path, tokens_out: str | Path
) -> None:
    for src, dst in ((bpe_model, model_out), (tokens, tokens_out)):
        if not Path(src).is_file():
            raise DataError(f"pre-trained model lacks its tokenizer file {src}")
        with atomic_path(dst) as out:
            shutil.copyfile(src, out)


def unknown_token_rate(text_file: str | Path, bpe_model: str | Path, tokens: str | Path) -> tuple[float, str]:
    """Share of tokens of the transcripts that the token list maps to ``<unk>``, with an example sentence.

    A transcript the model cannot spell can never be recognised (nor be an attack target), so the data stage
    reports this for the paper config, where the token set was fixed by someone else.
    """
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(bpe_model))
    vocab = set(Path(tokens).read_text(encoding="utf-8").split())
    total = unknown = 0
    example = ""
    for sentence in read_kaldi_text(text_file):
        pieces = sp.encode(sentence, out_type=str)
        missing = [p for p in pieces if p not in vocab]
        total += len(pieces)
        unknown += len(missing)
        if missing and not example:
            example = sentence
    return (unknown / total if total else 0.0), example
