"""Target transcriptions of the targeted attack (paper §4.3).

"We generate a fixed set of adversarial transcriptions having varying lengths. For each sample, the target
transcription is chosen in a deterministic manner by finding the adversarial transcription from the fixed set
having the closest length to the original transcription. [...] we use a lorem-ipsum generator."

The generator is ours (no network, no third-party package): words drawn with a seeded ``random.Random`` from
the classic lorem ipsum vocabulary, word counts spread evenly over a range so that the set covers short and
long references, each target normalised by the same ``normalize_transcript`` as the corpus transcripts.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from pathlib import Path

from hne_core.atomic import write_text_atomic
from hne_core.text import normalize_transcript

# The words of the classic "Lorem ipsum dolor sit amet ..." passage and its usual generator word list.
LOREM_WORDS: tuple[str, ...] = tuple(
    dict.fromkeys(
        """
lorem ipsum dolor sit amet consectetur adipiscing elit sed do eiusmod tempor incididunt ut labore et dolore
magna aliqua enim ad minim veniam quis nostrud exercitation ullamco laboris nisi aliquip ex ea commodo
consequat duis aute irure in reprehenderit voluptate velit esse cillum eu fugiat nulla pariatur excepteur sint
occaecat cupidatat non proident sunt culpa qui officia deserunt mollit anim id est laborum
curabitur pretium tincidunt lacus nunc pulvinar sapien ligula ornare vitae suspendisse potenti mauris
vestibulum morbi tristique senectus netus malesuada fames ac turpis egestas integer quam nibh ultrices
feugiat etiam porta donec vel neque aliquam erat volutpat phasellus viverra fermentum leo praesent semper
felis libero accumsan cras pellentesque habitant dignissim nam at lectus urna massa placerat orci
sagittis purus gravida arcu dictum varius vivamus faucibus scelerisque eleifend quisque risus ultricies
mi mattis rhoncus venenatis tellus cursus euismod fusce hendrerit augue interdum posuere lobortis justo
maecenas blandit convallis tortor condimentum iaculis nisl mus mauris sodales bibendum odio facilisis
commodo imperdiet proin nec metus vulputate sollicitudin aenean molestie diam luctus accumsan
""".split()
    )
)


class SpellingError(ValueError):
    """A target transcription contains a piece that the model's token set maps to <unk>."""


def make_targets(
    n: int,
    seed: int,
    text_case: str = "upper",
    min_words: int = 1,
    max_words: int = 20,
    words: Sequence[str] = LOREM_WORDS,
) -> list[str]:
    """``n`` distinct lorem-ipsum targets, deterministic in ``seed``.

    The word counts are spread evenly from ``min_words`` to ``max_words`` (shortest first), so the set has
    varying lengths whatever ``n`` is; each word is drawn uniformly from ``words`` (duplicates of the
    vocabulary are ignored, its order is not). A target equal to an earlier one is redrawn.
    """
    if n < 1:
        raise ValueError(f"make_targets: n must be positive, got {n}")
    if not 1 <= min_words <= max_words:
        raise ValueError(f"make_targets: need 1 <= min_words <= max_words, got {min_words}, {max_words}")
    vocab = sorted({normalize_transcript(w, text_case) for w in words} - {""})
    if not vocab:
        raise ValueError("make_targets: the word list is empty")
    rng = random.Random(seed)
    out: list[str] = []
    seen: set[str] = set()
    for i in range(n):
        count = min_words + round(i * (max_words - min_words) / (n - 1)) if n > 1 else min_words
        for _ in range(1000):
            target = normalize_transcript(" ".join(rng.choice(vocab) for _ in range(count)), text_case)
            if target not in seen:
                break
        else:
            raise ValueError(f"make_targets: cannot draw {n} distinct targets from {len(vocab)} words")
        seen.add(target)
        out.append(target)
    return out


TARGET_LENGTHS = ("chars", "words")


def text_length(text: str, measure: str = "chars") -> int:
    """The length ``assign_targets`` compares: characters of the string as given, or its word count."""
    if measure == "chars":
        return len(text)
    if measure == "words":
        return len(text.split())
    raise ValueError(f"attack.target_length must be one of {TARGET_LENGTHS}, got {measure!r}")


def assign_targets(references: Sequence[str], targets: Sequence[str], measure: str = "chars") -> list[str]:
    """For each reference, the target whose length is closest to it (paper §4.3: "the adversarial transcription
    from the fixed set having the closest length to the original transcription").

    The paper does not say how length is measured; ``measure`` (``attack.target_length``) is ``chars``
    (characters) or ``words`` (word count). Ties go to the shorter target, then to the earlier one in
    ``targets``. Lengths are those of the strings as given: pass normalised references
    (``normalize_transcript``), as the targets are.
    """
    if not targets:
        raise ValueError("assign_targets: no targets")
    ranked = [(text_length(t, measure), k, t) for k, t in enumerate(targets)]

    def closest(ref: str) -> str:
        n = text_length(ref, measure)
        return min(ranked, key=lambda r: (abs(r[0] - n), r[0], r[1]))[2]

    return [closest(ref) for ref in references]


def _text_tokens(bpe_model: str | Path | None, token_type: str):
    from espnet2.text.build_tokenizer import build_tokenizer

    if token_type == "bpe" and bpe_model is None:
        raise ValueError("a bpe token set needs its sentencepiece model (bpe_model)")
    return build_tokenizer(token_type=token_type, bpemodel=None if bpe_model is None else str(bpe_model))


def _token_list(token_list: Sequence[str] | str | Path) -> list[str]:
    if isinstance(token_list, (str, Path)):
        return [line.strip() for line in Path(token_list).read_text(encoding="utf-8").splitlines() if line.strip()]
    return list(token_list)


class TargetEncoder:
    """Text <-> token ids of a model's token set, as ESPnet's preprocessor and ``Speech2Text`` do it
    (``build_tokenizer`` + ``TokenIDConverter``). ``encode`` refuses text the token set cannot spell."""

    def __init__(self, token_list: Sequence[str] | str | Path, bpe_model: str | Path | None, token_type: str = "bpe"):
        from espnet2.text.token_id_converter import TokenIDConverter

        self.token_list = _token_list(token_list)
        self.tokenizer = _text_tokens(bpe_model, token_type)
        self.converter = TokenIDConverter(token_list=self.token_list)
        self._known = set(self.token_list) - {"<unk>"}

    def unknown_pieces(self, text: str) -> list[str]:
        return [p for p in self.tokenizer.text2tokens(text) if p not in self._known]

    def check(self, text: str) -> None:
        missing = self.unknown_pieces(text)
        if missing:
            raise SpellingError(
                f"target {text!r} cannot be spelled by the model's token set: the pieces "
                f"{sorted(set(missing))} map to <unk>"
            )
        if not text.strip():
            raise SpellingError("an empty target cannot be attacked")

    def encode(self, text: str) -> list[int]:
        self.check(text)
        return self.converter.tokens2ids(self.tokenizer.text2tokens(text))

    def decode(self, ids: Iterable[int]) -> str:
        return self.tokenizer.tokens2text(self.converter.ids2tokens([i for i in ids if i != 0]))


def check_spellable(
    target: str, token_list: Sequence[str] | str | Path, bpe_model: str | Path | None, token_type: str = "bpe"
) -> None:
    """Raise ``SpellingError`` naming ``target`` if any of its pieces is not in ``token_list`` (an <unk>)."""
    TargetEncoder(token_list, bpe_model, token_type).check(target)


def spellable_words(
    words: Iterable[str],
    token_list: Sequence[str] | str | Path,
    bpe_model: str | Path | None,
    text_case: str = "upper",
    token_type: str = "bpe",
) -> list[str]:
    """The words (normalised) that the token set can spell: a word list for ``make_targets`` on a model whose
    token set lacks some letters (a char model trained on a small corpus)."""
    enc = TargetEncoder(token_list, bpe_model, token_type)
    return [w for w in (normalize_transcript(w, text_case) for w in words) if w and not enc.unknown_pieces(w)]


def write_targets(path: str | Path, targets: Sequence[str]) -> None:
    """One target per line (UTF-8), written atomically."""
    if any("\n" in t for t in targets):
        raise ValueError("a target contains a newline")
    write_text_atomic(path, "".join(f"{t}\n" for t in targets))


def read_targets(path: str | Path) -> list[str]:
    targets = [line.strip() for line in Path(path).read_text(encoding="utf-8").splitlines() if line.strip()]
    if not targets:
        raise ValueError(f"{path}: no targets")
    return targets


def select_utterances(accent_file: str | Path, n: int, seed: int, composition: str = "balanced") -> list[str]:
    """The attacked test subset: exactly ``n`` utterance ids, seeded, composed as ``attack.composition`` says
    (``hne_core.data.corpus.sample_utterances``); more than the split holds is an error naming both numbers."""
    from hne_core.data.corpus import sample_utterances

    return sample_utterances(accent_file, n, seed, composition, what="attack.n_utterances")
