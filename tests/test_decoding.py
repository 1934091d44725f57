"""Exact Eq. 2 greedy decoding (``hne_core.decoding``) against an independent recomputation of Eq. 2.

The constructed-score tests run the tiny real ESPnet model with its two heads' outputs replaced by known ones: a
forward hook on the CTC head's linear layer returns a fixed (T, V) logit table, and the decoder's
``forward_one_step`` (which both our decoder and ESPnet's beam search call) returns log-softmaxed rows of a
fixed table indexed by the prefix length and its last token. The test then recomputes every step of Eq. 2 in
float64 numpy from the same tables: CTC prefix probabilities by the textbook forward recursion over the
blank-extended label sequence, the decoder's log-probabilities by a log-softmax, the weighted sum over the whole
vocabulary, and checks that every emitted token, and the final <eos>, is its arg-max.

Tolerance. The decoder computes in float32 (unit roundoff u = 2^-24). Its CTC term comes from a log-domain
recursion of T steps, each a logsumexp of at most 4 terms plus a log-probability, over values whose magnitude is
at most M (the largest |score| of the step); the decoder term is a log-softmax over V logits. The accumulated
absolute error is then below c·(T + V)·u·(1 + M) for a small constant c; c = 16 is generous. A step whose best
and second-best reference scores lie closer than that is a tie at float32 precision: the emitted token must then
only score within the tolerance of the best. Every test asserts that most steps are clear of ties, so the
arg-max check cannot pass vacuously.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from model_utils import TOKENS, build_tiny

from hne_core.decoding import (
    DECODING_MODES,
    LOGZERO,
    NEAR_TIE,
    CTCPrefixGreedy,
    Eq2GreedyDecoder,
    GreedyDecoder,
    Hypothesis,
    Mismatch,
    decoder_projections_once,
    eq2_greedy,
    make_decoder,
    mismatches,
)

V = len(TOKENS)
BLANK, EOS = 0, V - 1
U32 = 2.0**-24


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return build_tiny(1.0, 0.3)


def noise(n: int, seed: int) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def frames(model, wave: np.ndarray) -> int:
    with torch.no_grad():
        enc, lens = model.encode(torch.from_numpy(wave)[None], torch.tensor([len(wave)]))
    return int(lens[0])


# ------------------------------------------------------------------------------------------ constructed heads
@contextlib.contextmanager
def constructed(model, ctc_logits: np.ndarray | None, dec_table: np.ndarray | None) -> Iterator[None]:
    """The model's CTC head outputs ``ctc_logits`` (T, V) for every utterance of T frames; its decoder outputs
    log_softmax(dec_table[min(len(prefix), L-1), last token]) (the <sos> counts as the last token of the empty
    prefix). The encoder, frontend and everything else stay the real ESPnet modules."""
    handles, patched = [], False
    if ctc_logits is not None:
        table = torch.tensor(ctc_logits, dtype=torch.float32)

        def ctc_hook(module, args, out):
            assert out.shape[-2] == table.shape[0], "the table must have as many frames as the encoder output"
            return table.expand(out.shape[0], *table.shape).clone()

        handles.append(model.ctc.ctc_lo.register_forward_hook(ctc_hook))
    if dec_table is not None:
        dec = torch.tensor(dec_table, dtype=torch.float32)
        n_layers = len(model.decoder.decoders)

        def forward_one_step(tgt, tgt_mask, memory, memory_mask=None, *, cache=None, return_hs=False):
            step = min(tgt.shape[1] - 1, dec.shape[0] - 1)
            logp = torch.log_softmax(dec[step][tgt[:, -1]], dim=-1)
            return logp, [torch.zeros(tgt.shape[0], tgt.shape[1], 1) for _ in range(n_layers)]

        model.decoder.forward_one_step = forward_one_step
        patched = True
    try:
        yield
    finally:
        for h in handles:
            h.remove()
        if patched:
            del model.decoder.forward_one_step


def make_tables(T: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A CTC table peaked along a random label path (what a trained CTC head looks like) with noise, and a
    random decoder table whose <eos> grows likelier with the prefix length (so hypotheses end before T)."""
    rng = np.random.default_rng(seed)
    ctc = rng.normal(0.0, 1.0, (T, V))
    for t in range(T):
        ctc[t, rng.integers(1, EOS) if t % 2 else BLANK] += 4.0
    dec = rng.normal(0.0, 1.5, (T + 1, V, V))
    dec[:, :, BLANK] = -30.0  # the decoder never says blank (it would vanish from the output)
    dec[:, :, EOS] += np.linspace(-3.0, 3.0, T + 1)[:, None]
    return ctc, dec


# ------------------------------------------------------------------------------------------ the reference
def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def ctc_alpha(y: np.ndarray, g: list[int]) -> np.ndarray:
    """Forward variables α[t, s] over the blank-extended sequence (b, g1, b, g2, ..., b): the probability that the
    first t frames collapse to g's first labels ending in state s. y: (T, V) probabilities."""
    ext = [BLANK]
    for c in g:
        ext += [c, BLANK]
    T, S = len(y), len(ext)
    a = np.zeros((T + 1, S))
    a[0, 0] = 1.0
    for t in range(T):
        for s in range(S):
            p = a[t, s] + (a[t, s - 1] if s >= 1 else 0.0)
            if s >= 2 and ext[s] != BLANK and ext[s] != ext[s - 2]:
                p += a[t, s - 2]
            a[t + 1, s] = p * y[t, ext[s]]
    return a


def ctc_log_prefix(y: np.ndarray, g: list[int]) -> np.ndarray:
    """log p_CTC(g + c | x) for every token c: c = <eos> is the probability of exactly g, c = blank is -inf.
    The prefix probability of g + c sums, over the frame t at which c is first emitted, the probability that
    frames before t collapse to g (ending in blank when c repeats g's last label) times y[t, c]."""
    a = ctc_alpha(y, g)
    L = len(g)
    ends_blank = a[:-1, 2 * L]  # frames before t collapse to g, the last one blank (or g empty)
    ends_label = a[:-1, 2 * L - 1] if L else np.zeros(len(y))
    out = np.empty(V)
    for c in range(V):
        before = ends_blank + (ends_label if (not L or c != g[-1]) else 0.0)
        out[c] = np.sum(before * y[:, c])
    out[EOS] = a[-1, 2 * L] + (a[-1, 2 * L - 1] if L else 0.0)
    out[BLANK] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(out)


def dec_log_probs(dec: np.ndarray, g: list[int]) -> np.ndarray:
    return log_softmax(dec[min(len(g), len(dec) - 1), g[-1] if g else EOS])


def eq2_scores(y: np.ndarray | None, dec: np.ndarray | None, g: list[int], lam: float) -> np.ndarray:
    """Eq. 2's weighted score of every candidate c after prefix g (float64)."""
    score = np.zeros(V)
    if lam > 0:
        score += lam * ctc_log_prefix(y, g)
    if lam < 1:
        score += (1.0 - lam) * dec_log_probs(dec, g)
    return score


def check_argmax_path(tokens: list[int], T: int, score_fn) -> tuple[int, int]:
    """Every emitted token, and the <eos> after them when the hypothesis ended before T tokens, is the arg-max of
    ``score_fn(prefix)`` (up to the float32 tolerance of the module docstring). Returns (clear steps, steps)."""
    steps = [(tokens[:i], tokens[i]) for i in range(len(tokens))]
    assert len(tokens) <= T
    if len(tokens) < T:
        steps.append((tokens, EOS))
    clear = 0
    for prefix, emitted in steps:
        s = score_fn(prefix)
        finite = s[np.isfinite(s)]
        tol = 16 * (T + V) * U32 * (1.0 + np.abs(finite).max())
        top2 = np.sort(finite)[-2:]
        assert s[emitted] >= top2[-1] - tol, (prefix, emitted, s)
        if top2[-1] - top2[0] > tol:
            clear += 1
            assert emitted == int(np.argmax(s)), (prefix, emitted, s)
    return clear, len(steps)


def greedy_reference(T: int, score_fn) -> list[int]:
    """Eq. 2 greedy decoding done by hand: arg-max, stop at <eos> or after T tokens."""
    out: list[int] = []
    while len(out) < T:
        c = int(np.argmax(score_fn(out)))
        if c == EOS:
            break
        out.append(c)
    return out


# ------------------------------------------------------------------------------------------ tests
@pytest.mark.parametrize("lam", [0.3, 0.5, 0.7])
def test_every_token_is_the_argmax_of_the_weighted_sum(model, lam):
    clear = total = ended = 0
    for seed, n in enumerate([6000, 8000, 12000, 16000]):
        wave = noise(n, seed)
        T = frames(model, wave)
        ctc, dec = make_tables(T, seed)
        with constructed(model, ctc, dec):
            tokens = Eq2GreedyDecoder(model, lam)(wave)
        y = np.exp(log_softmax(ctc))
        c, s = check_argmax_path(tokens, T, lambda g: eq2_scores(y, dec, g, lam))
        clear, total, ended = clear + c, total + s, ended + (len(tokens) < T)
        assert tokens == greedy_reference(T, lambda g: eq2_scores(y, dec, g, lam))
    assert clear >= 0.9 * total and ended >= 2  # the check was not vacuous: few ties, and <eos> was chosen


def test_lambda_0_is_decoder_greedy_and_needs_no_ctc_head():
    decoder_only = build_tiny(1.0, 0.0)  # trained with λC(t) = 0: ESPnet drops the CTC head
    assert decoder_only.ctc is None
    for seed, n in enumerate([6000, 12000]):
        wave = noise(n, seed)
        T = frames(decoder_only, wave)
        _, dec = make_tables(T, seed)
        with constructed(decoder_only, None, dec):
            tokens = Eq2GreedyDecoder(decoder_only, 0.0)(wave)
            espnet = GreedyDecoder(decoder_only, 0.0)(wave)
        score = lambda g: dec_log_probs(dec, g)  # noqa: E731
        assert tokens == greedy_reference(T, score) == espnet
        clear, steps = check_argmax_path(tokens, T, score)
        assert clear == steps


def test_lambda_1_is_ctc_prefix_greedy_and_never_calls_the_decoder(model):
    def refuse(*args, **kwargs):
        raise AssertionError("λC(i) = 1 must not call the decoder")

    for seed, n in enumerate([6000, 12000, 16000]):
        wave = noise(n, seed)
        T = frames(model, wave)
        ctc, _ = make_tables(T, seed)
        y = np.exp(log_softmax(ctc))
        score = lambda g: ctc_log_prefix(y, g)  # noqa: E731
        with constructed(model, ctc, None):
            espnet = GreedyDecoder(model, 1.0)(wave)
            model.decoder.forward_one_step = refuse
            try:
                tokens = Eq2GreedyDecoder(model, 1.0)(wave)
            finally:
                del model.decoder.forward_one_step
        assert tokens == greedy_reference(T, score) == espnet
        clear, steps = check_argmax_path(tokens, T, score)
        assert clear >= 0.9 * steps


def test_exact_and_espnet_beam1_differ_where_the_decoders_top_token_is_not_the_joint_argmax(model):
    """The decoder always prefers A to B (log-probs -0.41 vs -1.41 of the first step); CTC hears B then silence.
    At λC(i) = 0.5 the joint score of B is far above A's, so exact Eq. 2 starts with B; ESPnet's beam 1 only
    scores the decoder's top token, A, and starts with it."""
    A, B = TOKENS.index("A"), TOKENS.index("B")
    wave = noise(8000, 0)
    T = frames(model, wave)
    ctc = np.zeros((T, V))
    ctc[:2, B] = 8.0
    ctc[2:, BLANK] = 8.0
    dec = np.zeros((T + 1, V, V))
    dec[:, :, A], dec[:, :, B], dec[:, :, BLANK] = 2.0, 1.0, -30.0
    dec[1:, :, EOS] = 2.5  # once something is said, the decoder wants to stop
    y = np.exp(log_softmax(ctc))
    with constructed(model, ctc, dec):
        exact = make_decoder(model, 0.5, "exact")(wave)
        beam1 = make_decoder(model, 0.5, "espnet_beam1")(wave)
    s0 = eq2_scores(y, dec, [], 0.5)
    assert int(np.argmax(dec_log_probs(dec, []))) == A and int(np.argmax(s0)) == B and s0[B] - s0[A] > 1.0
    assert exact[0] == B and beam1[0] == A
    assert exact == greedy_reference(T, lambda g: eq2_scores(y, dec, g, 0.5))
    check_argmax_path(exact, T, lambda g: eq2_scores(y, dec, g, 0.5))


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.5, 0.7, 1.0])
def test_exact_matches_espnets_own_search_over_the_whole_vocabulary(model, lam):
    """The real tiny model (random weights, no constructed scores): exact Eq. 2 gives the tokens of ESPnet's
    beam search with beam 1 and its pre-beam turned off (every token scored by both heads). ESPnet appends <eos>
    after the token of its last step even when that token is <eos>; that one <eos> is removed before comparing."""
    full = GreedyDecoder(model, lam, full_vocabulary=True)
    ours = Eq2GreedyDecoder(model, lam)
    for seed, n in enumerate([6000, 7000, 8000, 16000]):
        wave = noise(n, seed)
        reference = full(wave)
        if reference and reference[-1] == EOS:
            reference = reference[:-1]
        assert ours(wave) == reference
        if lam in (0.0, 1.0):  # no pre-beam in ESPnet's beam-1 search either: the two modes agree
            assert ours(wave) == GreedyDecoder(model, lam)(wave)


@pytest.fixture(scope="module")
def speech(tmp_path_factory) -> list[np.ndarray]:
    """Real espeak-ng speech of different lengths (0.7-2.5 s), rendered by the data stage's own function."""
    import soundfile as sf

    from hne_core.data.sources.synthetic import _render

    d = tmp_path_factory.mktemp("speech")
    sentences = ["a bad cab", "dead bee", "the cat sat on the mat by the door", "be"]
    out = []
    for k, (sentence, variant) in enumerate(zip(sentences, ["m1", "f2", "m3", "f1"])):
        path, _ = _render((str(d / f"s{k}.wav"), "en-us", variant, 160, 50, 1.0, sentence, 1, None))
        wave, rate = sf.read(path, dtype="float32")
        assert rate == 16000
        out.append(wave)
    assert len({len(w) for w in out}) == len(out)
    return out


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_exact_decoding_of_real_speech_returns_valid_ids_and_batches_as_one_at_a_time(speech, lam):
    m = build_tiny(1.0, 0.3) if lam < 1 else build_tiny(1.0, 1.0)
    dec = Eq2GreedyDecoder(m, lam)
    single = [dec(w) for w in speech]
    for w, ids in zip(speech, single):
        assert len(ids) <= frames(m, w)
        assert all(isinstance(t, int) and BLANK < t < EOS for t in ids)
    assert any(single)
    assert dec.batch(speech, batch_size=3) == single  # padded batches of 3 and 1, longest first
    assert dec.batch(speech, batch_size=len(speech)) == single


@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_batched_hypotheses_score_as_one_at_a_time_and_need_their_lengths(speech, lam):
    """Not only the tokens: each hypothesis' Eq. 2 score (which any change in either head's output would move)
    is the one-at-a-time score when the batch is encoded under ``batch_invariant`` and every row keeps its own
    frame count. Batched and single runs do the same arithmetic except the order of terms in reductions that
    the padding lengthens (with exact zeros); a float32 sum of n terms is off by at most n·u relative, the
    longest reduction of this model is the STFT's 512-point one, and ten such stages in a chain give the
    relative tolerance 10·512·u. Told that every row is as long as the longest, the short rows' CTC and
    decoder attend to padded frames, and the scores move far beyond it."""
    from hne_core.batching import batch_invariant
    from hne_core.heads import pad_waves

    m = build_tiny(1.0, 0.3)
    rtol = 10 * 512 * U32
    single_tokens, single_scores = [], []
    with torch.no_grad():
        for w in speech:
            enc, lens = m.encode(torch.from_numpy(w)[None], torch.tensor([len(w)]))
            tokens, scores = eq2_greedy(m, enc, lens, lam, return_scores=True)
            single_tokens += tokens
            single_scores += scores
        x, lens = pad_waves(speech, "cpu")
        with batch_invariant(m):
            enc, enc_lens = m.encode(x, lens)
        tokens, scores = eq2_greedy(m, enc, enc_lens, lam, return_scores=True)
        _, wrong = eq2_greedy(m, enc, torch.full_like(enc_lens, enc.shape[1]), lam, return_scores=True)
    assert tokens == single_tokens
    assert scores == pytest.approx(single_scores, rel=rtol)
    short = [k for k, w in enumerate(speech) if len(w) < x.shape[1]]
    assert all(abs(wrong[k] - single_scores[k]) > rtol * abs(single_scores[k]) * 100 for k in short)


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Path:
    """The tiny model exported by the project's own export step, with a char sentencepiece over its tokens."""
    import yaml
    from model_utils import tiny_config

    from hne_core.model.export import export_model
    from hne_core.tokenizer import train_sentencepiece

    d = tmp_path_factory.mktemp("export")
    (d / "text").write_text("".join(f"u{i} {s}\n" for i, s in enumerate(["ABC DE", "EDCBA", "BAD CAB", "DEAD BEE"])))
    train_sentencepiece(d / "text", d / "bpe.model", "char", 64)
    (d / "train").mkdir()
    cfg = {**tiny_config(1.0, 0.3), "bpemodel": str(d / "bpe.model")}
    (d / "train" / "config.yaml").write_text(yaml.safe_dump(cfg))
    torch.save(build_tiny(1.0, 0.3).state_dict(), d / "weights.pth")
    return export_model(d / "train", d / "weights.pth", d / "model")


@pytest.mark.parametrize("lam", [0.0, 0.3, 0.7, 1.0])
def test_transcriber_texts_are_speech2texts_in_both_modes(exported, lam):
    """What evaluation and the attack job write: ``espnet_beam1`` is Speech2Text's own text; ``exact`` is the text
    Speech2Text gives with its pre-beam off (ESPnet's search over the whole vocabulary, its trailing-<eos> quirk
    removed). At 0 < λC(i) < 1 the two modes differ on these inputs."""
    from hne_core.model.evaluate import load_speech2text, load_transcriber

    waves = [noise(n, seed) for seed, n in enumerate([6000, 7000, 8000, 16000])]
    s2t = load_speech2text(exported, lam)
    beam1 = [s2t(w)[0][0] for w in waves]
    s2t.beam_search.do_pre_beam = False
    full = [s2t(w)[0][0].removesuffix("<sos/eos>") for w in waves]
    exact = load_transcriber(exported, lam, "exact")
    assert [load_transcriber(exported, lam, "espnet_beam1")(w) for w in waves] == beam1
    assert [exact(w) for w in waves] == full == exact.batch(waves, batch_size=2)
    assert (full != beam1) == (0.0 < lam < 1.0)


def test_modes_and_weights_are_checked(model):
    assert DECODING_MODES == ("exact", "espnet_beam1")
    with pytest.raises(ValueError, match="decoding mode"):
        make_decoder(model, 0.3, "beam")
    from hne_core.heads import SetupError

    with pytest.raises(SetupError, match="needs the CTC head"):
        Eq2GreedyDecoder(build_tiny(1.0, 0.0), 0.3)
    with pytest.raises(SetupError, match="must lie in"):
        Eq2GreedyDecoder(model, 1.5)


@pytest.mark.slow
def test_decode_benchmark_prints_both_timings_and_the_summary_line():
    """``python -m hne_core.bench decode`` on a tiny setting: the one-at-a-time and batched timings side by side,
    the mismatch line, and a last line whose ratio is the printed timings' (one-at-a-time seconds over batched
    seconds) and whose batched tokens all equal the single ones."""
    import re
    import subprocess
    import sys

    repo = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "hne_core.bench",
            "decode",
            "--utts",
            "3",
            "--batch",
            "3",
            "--repeat",
            "1",
            "--threads",
            "1",
            "--trained",
            "no-such-dir",
        ],
        capture_output=True,
        text=True,
        cwd=repo,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = proc.stdout.strip().splitlines()
    assert "1 torch thread(s)" in lines[-8]
    single = float(re.search(r"one at a time: +([0-9.]+) s", lines[-7]).group(1))
    batched = float(re.search(r"batches of +3: +([0-9.]+) s", lines[-6]).group(1))
    # the encoder timed apart: its share of each decoding, and what batching divides it and the search by
    enc = re.fullmatch(
        r"encoder alone: one at a time +([0-9.]+) s \((\d+)% of that decoding\), in groups +([0-9.]+) s \((\d+)% of "
        r"the batched one\); batching divides the encoder's time by ([0-9.]+) and the search's by ([0-9.]+)",
        lines[-5],
    )
    assert enc, lines[-5]
    enc_single, enc_batched = float(enc.group(1)), float(enc.group(3))
    # printed to 2 decimals (±0.005) from timings printed to 3 (±0.0005 each, as for the summary's ratio below)
    slack = 0.005 + 0.0005 * (1 / enc_batched + enc_single / enc_batched**2)
    assert float(enc.group(5)) == pytest.approx(enc_single / enc_batched, abs=slack)
    assert re.match(r"top-two margin over all \d+ one-at-a-time steps: smallest [0-9.e+-]+$", lines[-3])
    assert lines[-2].startswith("batched hypotheses differing from one at a time: 0/3 ")
    summary = re.fullmatch(r"batched_over_single=([0-9.]+) token_equal=([0-9.]+)", lines[-1])
    assert summary, lines[-1]
    # all three are printed to 3 decimals (each off by at most h = 0.0005): the ratio of the printed timings is
    # within h·(1/batched + single/batched²) of the true ratio, and the printed ratio within h of that
    h = 0.0005
    assert float(summary.group(1)) == pytest.approx(single / batched, abs=h + h * (1 / batched + single / batched**2))
    assert float(summary.group(2)) == 1.0


# ------------------------------------------------------------------------------------------ the fast scorer
@pytest.mark.numeric
@pytest.mark.parametrize("batched", [False, True])
def test_ctc_prefix_scores_are_espnets_within_its_float32_roundoff(speech, batched):
    """``CTCPrefixGreedy`` (closed-form sums in float64) against ESPnet's ``CTCPrefixScoreTH`` (its frame loop in
    float32, margin 0) along the same greedy path, on the tiny model's real CTC posteriors of espeak-ng speech,
    alone and as one padded batch (each row its own length, so padded frames must not count).

    Bound. Each of ESPnet's float32 steps of the recursion r_t = logsumexp(r_{t-1}, φ_{t-1}) + x_t rounds six
    times (subtracting the max, exp, the 2-term sum, log, adding the max, adding x_t), each off by u = 2^-24
    relative to a value of magnitude at most 1 + M, with M the largest magnitude among the step's scores and
    the previous prefix score; logsumexp passes an input's error on with weight at most 1, and a chain of
    dependencies over frames has at most T links: r is off by at most 6T·u·(1 + M). The prefix score adds a
    logsumexp over at most T + 1 terms, (T + 5)·u·(1 + M), and ESPnet subtracts the previous prefix score, which
    carries the same error: 2·(7T + 5)·u·(1 + M). Ours is float64 (about T·2^-53·M) rounded once to float32:
    u·(1 + M). A candidate ESPnet gives log-zero must get log-zero here."""
    from espnet2.legacy.nets.ctc_prefix_score import CTCPrefixScoreTH

    from hne_core.batching import batch_invariant
    from hne_core.heads import pad_waves

    m = build_tiny(1.0, 0.3)
    groups = [speech] if batched else [[w] for w in speech]
    compared = 0
    for group in groups:
        with torch.no_grad(), batch_invariant(m):
            x, lens = pad_waves(group, "cpu")
            enc, enc_lens = m.encode(x, lens)
            logp = m.ctc.log_softmax(enc)
        T = enc.shape[1]
        ours = CTCPrefixGreedy(logp, enc_lens, BLANK, EOS)
        espnet = CTCPrefixScoreTH(logp.clone(), enc_lens, BLANK, EOS)
        ys = torch.full((len(group), 1), EOS, dtype=torch.long)
        state, s_prev = None, torch.zeros(len(group), 1)
        for step in range(int(enc_lens.min()) // 2):
            ref, full = espnet(ys, state)
            log_psi = full[1]
            got = ours.scores()
            impossible = log_psi < LOGZERO / 2
            M = float(torch.where(impossible, 0.0, log_psi.abs()).max().clamp(min=s_prev.abs().max()))
            tol = (2 * (7 * T + 5) + 1) * U32 * (1 + M)
            assert torch.equal(got[impossible], torch.full_like(got[impossible], LOGZERO))
            diff = (got - ref)[~impossible].abs()
            assert float(diff.max()) <= tol, (step, float(diff.max()), tol)
            compared += int((~impossible).sum())
            # walk on by the best label (not <eos>), so that prefixes grow and labels repeat
            best = ref.clone()
            best[:, EOS] = -math.inf
            best = best.argmax(-1)
            ours.advance(best)
            state = espnet.index_select_state(full, best[:, None])
            s_prev = log_psi.gather(1, best[:, None])
            ys = torch.cat([ys, best[:, None]], 1)
    assert compared >= 100  # the comparison was not vacuous


@pytest.mark.numeric
def test_decoder_projections_once_project_each_position_once_and_give_espnets_log_probs(speech):
    """Greedy decoder steps with ``decoder_projections_once`` against ESPnet's ``forward_one_step`` as is: the same
    log-probabilities up to summation order (a projected row alone or inside a larger product sums the same D
    terms, in possibly another grouping: |Δ| <= D·u relative per product; ten such stages in a chain, D <= 512
    for this model: 10·512·u relative), and each self-attention key/value projection sees one new position per
    step instead of the whole prefix."""
    from espnet2.legacy.nets.pytorch_backend.transformer.mask import subsequent_mask

    from hne_core.batching import batch_invariant
    from hne_core.heads import pad_waves

    m = build_tiny(1.0, 0.3)
    with torch.no_grad(), batch_invariant(m):
        x, lens = pad_waves(speech, "cpu")
        enc, enc_lens = m.encode(x, lens)
    mask = (torch.arange(enc.shape[1])[None, :] < enc_lens[:, None])[:, None, :]
    rows = []
    k_proj = m.decoder.decoders[0].self_attn.linear_k
    handle = k_proj.register_forward_hook(lambda mod, args, out: rows.append(args[0].shape[0] * args[0].shape[1]))
    steps, B = 8, len(speech)
    try:
        outs = {}
        for memo in (False, True):
            rows.clear()
            ys = torch.full((B, 1), EOS, dtype=torch.long)
            cache, logps = None, []
            with torch.no_grad(), decoder_projections_once(m.decoder) if memo else contextlib.nullcontext():
                for i in range(steps):
                    logp, cache = m.decoder.forward_one_step(
                        ys, subsequent_mask(i + 1).unsqueeze(0), enc, mask, cache=cache
                    )
                    logps.append(logp)
                    ys = torch.cat([ys, logp[:, 1:EOS].argmax(-1)[:, None] + 1], 1)
            outs[memo] = (torch.stack(logps), list(rows))
    finally:
        handle.remove()
    plain, memo = outs[False][0], outs[True][0]
    assert torch.allclose(memo, plain, rtol=0, atol=10 * 512 * U32 * (1 + float(plain.abs().max())))
    assert outs[False][1] == [B * (i + 1) for i in range(steps)]  # ESPnet: the whole prefix at every step
    assert outs[True][1] == [B] * steps  # here: the newest position only


def _adversarial(model, waves: list[np.ndarray], lam: float) -> list[np.ndarray]:
    """x + δ of a few native PGD steps (``run_attack``) towards fixed targets: audio the attack job decodes."""
    from hne_core.attack.run import run_attack

    targets = [[TOKENS.index(c) for c in t] for t in ["ABBA", "DEAD", "CAB", "BEAD"]][: len(waves)]
    result = run_attack("native", model, waves, targets, lam, 2.0, 0.05, 5, True, batch_size=len(waves), device="cpu")
    assert all(float(np.abs(d).max()) > 0 for d in result.deltas)
    return [(w + d).astype(np.float32) for w, d in zip(waves, result.deltas)]


@pytest.mark.numeric
@pytest.mark.parametrize("lam", [0.0, 0.3, 1.0])
def test_batched_tokens_are_one_at_a_times_on_benign_and_attacked_speech(speech, lam):
    """What evaluation and attack jobs decode (``decoding.batch_size``): real espeak-ng speech and the same speech
    with a PGD δ of the attack's own engine, in padded batches of every size from 2 to all, against one at a
    time. Rows end at different steps (they leave the batch then). Batching changes only float32 summation
    order, so a batched hypothesis may differ only where the one-at-a-time run itself nearly tied (top-two
    margin below ``NEAR_TIE``); any other difference fails."""
    m = build_tiny(1.0, 0.3) if lam < 1 else build_tiny(1.0, 1.0)
    dec = Eq2GreedyDecoder(m, lam)
    for waves in (speech, _adversarial(m, speech, lam)):
        single = dec.search(waves, 1, track=True)
        assert len({len(h.steps) for h in single}) > 1  # rows leave the batch at different steps
        for batch_size in range(2, len(waves) + 1):
            batched = dec.search(waves, batch_size, track=True)
            found = mismatches(single, batched)
            assert all(max(f.single_margin, f.batched_margin) < NEAR_TIE for f in found), found
            assert [h.score for h in batched] == pytest.approx([h.score for h in single], rel=10 * 512 * U32)
            assert dec.batch(waves, batch_size) == [h.tokens for h in batched]


def test_mismatches_locate_the_first_differing_step_and_its_margins():
    """The bench's and the tests' mismatch check: the step where two hypotheses part, each run's top-two margin
    there (a clear choice there is a bug, a near-tie is round-off); equal hypotheses give none; hypotheses decoded
    without ``track`` cannot be placed."""
    a = Hypothesis([3, 4, 5, EOS], 0.0, [2.0, 1.5, 1e-5, 0.7], eos=EOS)
    b = Hypothesis([3, 4, 6, 7, EOS], 0.0, [2.0, 1.5, 2e-5, 0.4, 0.3], eos=EOS)
    c = Hypothesis([3, 5, EOS], 0.0, [2.0, 0.9, 0.5], eos=EOS)
    assert mismatches([a, a], [a, b]) == [Mismatch(1, 2, 1e-5, 2e-5)]
    found = mismatches([a], [c])
    assert found == [Mismatch(0, 1, 1.5, 0.9)] and max(found[0].single_margin, found[0].batched_margin) >= NEAR_TIE
    assert a.tokens == [3, 4, 5] and Hypothesis([3, BLANK, 4], eos=EOS).tokens == [3, 4]
    with pytest.raises(ValueError, match="track"):
        mismatches([Hypothesis([3, EOS], eos=EOS)], [Hypothesis([4, EOS], eos=EOS)])


@pytest.mark.numeric
def test_evaluation_decodes_in_batches_what_it_decodes_one_at_a_time(exported, speech, tmp_path):
    """``hne_core.model.evaluate.decode`` (the evaluation job's decoding) with ``decoding.batch_size`` 16 and 1 on
    real speech files: the same texts, in the utterances' order."""
    import soundfile as sf

    from hne_core.model.evaluate import Utterance, decode, load_transcriber

    utts = []
    for k, w in enumerate(speech):
        sf.write(tmp_path / f"u{k}.wav", w, 16000, subtype="FLOAT")
        utts.append(Utterance(f"u{k}", str(tmp_path / f"u{k}.wav"), "", 0))
    transcriber = load_transcriber(exported, 0.3, "exact")
    one = decode(transcriber, utts, "upper", 1)
    assert decode(transcriber, utts, "upper", 16) == one == decode(transcriber, utts[::-1], "upper", 3)[::-1]
    assert any(one)
