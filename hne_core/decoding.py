"""Greedy decoding as the paper's Eq. 2, exactly: every step takes the arg-max over the whole vocabulary.

Eq. 2 joins the two heads with the inference weight λC(i). Greedily, step i of the hypothesis ``g`` (the tokens
chosen so far) picks

    c* = argmax_c  λC(i) · log p_CTC(g + c | x) + (1 - λC(i)) · log p_dec(c | g, x)

over every token c of the vocabulary, <eos> included, and stops at <eos>. ``log p_CTC(g + c | x)`` is the CTC
*prefix* probability (every label sequence that starts with g + c); for c = <eos> it is the probability of the
whole sequence g. ``Eq2GreedyDecoder`` (mode ``exact``, the workflow's default) does exactly that.

ESPnet's ``Speech2Text(beam_size=1, ctc_weight=λC(i))`` does not: its pre-beam keeps ``int(1.5 × beam) = 1``
candidate, the decoder's top token, and scores CTC for that token only (and for <eos>, whose CTC score ESPnet's
prefix scorer fills in for every hypothesis; every other token gets CTC's log-zero). Each step is then a choice
between the decoder's top token and <eos>: the output is the decoder's greedy hypothesis, which CTC can only cut
short (when the top token's CTC prefix score falls far enough that <eos> wins); CTC never picks a token. At
λC(i) = 1 (no decoder) ESPnet has no pre-beam and scores CTC over the whole vocabulary, and at λC(i) = 0 only the
decoder is scored, so there the two modes pick the same tokens. Mode ``espnet_beam1`` keeps ESPnet's behaviour for
comparison: ``Speech2Text`` itself, or ``GreedyDecoder``, which builds the same ``BatchBeamSearch`` (scorers decoder
1-λC(i), CTC prefix λC(i), length bonus 0) around a model already in memory, so predictions need no second copy of
the weights (``tests/test_attack.py`` checks it against ``Speech2Text`` on an exported model); with
``full_vocabulary=True`` it turns the pre-beam off, a beam-1 Eq. 2 that the tests use as an independent reference.

The CTC term is the quantity of ESPnet's vectorised prefix scorer (``CTCPrefixScoreTH``, the one its batched
beam search uses), for all tokens at once, computed by ``CTCPrefixGreedy`` without ESPnet's Python loop over frames
(see its docstring; a test bounds the difference by ESPnet's own float32 round-off). It returns
``log p_CTC(g + c | x) - log p_CTC(g | x)``: the prefix score minus that of the current prefix. That subtrahend
is one number per step, the same for every candidate c, so the arg-max is the one of Eq. 2 as written; we keep
the difference (as ESPnet's beam search does) because it stays small while the prefix score itself grows with
the hypothesis' length, so adding the decoder's log-probability to it loses fewer bits of float32. Blank is never
a candidate when λC(i) > 0 (its prefix score is ESPnet's log-zero, -1e10); at λC(i) = 0 the decoder alone decides,
and blanks it emits are dropped from the output as ``Speech2Text`` drops them. λC(i) = 1 never calls the decoder,
λC(i) = 0 never touches CTC (a model trained with λC(t) = 0 has no CTC head).

Length: ESPnet's ``maxlenratio = 0`` rule, at most as many tokens as the utterance has encoder frames; a hypothesis
that reaches it ends there. (ESPnet appends <eos> after the token chosen at its last step even when that token is
<eos>, which leaves an <eos> inside its output; here a chosen <eos> ends the hypothesis at any step.)

Batching: ``eq2_search`` works on a padded batch of encoder outputs, all utterances stepping together; each keeps
its own frame count (the CTC scorer's lengths, a memory mask for the decoder's cross-attention, its own
maximum length), and a row that ends leaves the batch. The decoder keeps ESPnet's cache and, within
``decoder_projections_once``, also projects each key and value once instead of at every step.
``Eq2GreedyDecoder.batch`` encodes padded batches (in groups of similar length) under ``batch_invariant(model)``
(the STFT and relative-position hooks that make a padded utterance encode as if alone), so a batch gives the
tokens one-at-a-time decoding gives, up to float32 summation order (the padded frames add exact zeros, but a
longer reduction may group its terms differently), which only matters at a near-tie between two candidates:
``Hypothesis.margins`` and ``mismatches`` show where.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

from hne_core.batching import batch_invariant
from hne_core.heads import check_heads, pad_waves

DECODING_MODES = ("exact", "espnet_beam1")
DEFAULT_MODE = "exact"
DEFAULT_BATCH_SIZE = 16  # decoding.batch_size's default: utterances decoded together in mode exact
BLANK = 0  # ESPnet's CTC blank id (CTCPrefixScorer and Speech2Text assume 0)


def check_mode(mode: str) -> str:
    """``mode`` if it is one of ``DECODING_MODES``: a misspelt mode must fail before any decoding or attack runs."""
    if mode not in DECODING_MODES:
        raise ValueError(f"decoding mode must be one of {DECODING_MODES}, got {mode!r}")
    return mode


LOGZERO = -1e10  # ESPnet's CTC log-zero: what an impossible candidate scores (blank included), as in its scorer


class CTCPrefixGreedy:
    """Exact CTC prefix scores of one growing hypothesis per row, every candidate token at once, no loop over frames.

    The quantities are ESPnet's (``CTCPrefixScoreTH`` with ``margin = 0``, Watanabe et al.'s Algorithm 2): for the
    prefix g, r^n_t(g) and r^b_t(g), the probabilities that frames 0..t collapse to g with frame t emitting g's last
    label (n) or blank (b), and their sum φ_t(g) (r^b_t(g) alone for a candidate c equal to g's last label, which
    may only repeat after a blank). The prefix probability of g + c sums, over the frame t at which c is first
    emitted, φ_{t-1}(g)·y_t(c); for c = <eos> it is φ at the row's last frame, the probability of exactly g.

    ESPnet walks the frames in a Python loop on every output step, for every candidate: O(T) small tensor
    operations per token, which on a CPU costs more than the arithmetic and does not shrink with batching. Here
    the candidates' sum is one ``logsumexp`` over frames, and only the chosen token's forward variables are carried
    to the next step. Those obey first-order linear recurrences, R^n_t = y_t(c)·(R^n_{t-1} + Φ_{t-1}) and
    R^b_t = y_t(blank)·(R^n_{t-1} + R^b_{t-1}), whose closed forms are cumulative sums: with A_t = Σ_{k≤t} log y_k(c),
    log R^n_t = A_t + log Σ_{s≤t} exp(log Φ_{s-1} - A_{s-1}) (``logcumsumexp``), and likewise for R^b with blank's
    cumulative log-probabilities. The same sums as ESPnet's loop, grouped differently; computed in float64, where
    the cancellation A_t - A_{s-1} costs about T·2^-53·max|A| (below 1e-10 for any realistic T and log-probability),
    so the returned float32 scores are ESPnet's up to ESPnet's own float32 round-off (``tests/test_decoding.py``
    bounds the difference).

    Frames past a row's length are blank with probability 1 and every label with probability 0, ESPnet's
    convention for a padded batch, so a padded row scores as if alone; its <eos> reads its own last frame. A label
    c can first be emitted at frame t >= len(g) only, so frames before that are skipped, as ESPnet skips them.
    Impossible candidates get ``LOGZERO`` (as ESPnet's scores): with softmax posteriors every prefix that fits the
    frames has a finite score, and <eos> after a possible prefix always does, so no arg-max ever picks one.
    """

    def __init__(self, logp: torch.Tensor, lens: torch.Tensor, blank: int, eos: int):
        B, T, _ = logp.shape
        dev = logp.device
        self.blank, self.eos, self.i = blank, eos, 0
        self.valid = torch.arange(T, device=dev)[None, :] < lens.to(dev)[:, None]  # (B, T)
        x = logp.to(torch.float64)
        self.x = x.masked_fill(~self.valid[:, :, None], -math.inf)  # (B, T, V): no label past the end
        xb = x[:, :, blank].masked_fill(~self.valid, 0.0)  # blank is certain past the end
        self.cb = torch.cumsum(xb, 1)  # (B, T): log Π_{k<=t} y_k(blank)
        self.cb_prev = F.pad(self.cb[:, :-1], (1, 0))  # the same up to t - 1
        self.end = (lens.to(dev) - 1).clamp(min=0)[:, None]
        # the empty prefix: never a label, all blank so far
        self.rn = torch.full_like(self.cb, -math.inf)
        self.rb = self.cb.clone()
        self.s = torch.zeros(B, dtype=torch.float64, device=dev)  # log p_CTC(g...) of the current prefix
        self.last = torch.zeros(B, dtype=torch.long, device=dev)
        self._phi = self._psi = None

    def scores(self) -> torch.Tensor:
        """(B, V) float32: log p_CTC(g + c | x) - log p_CTC(g | x) for every c (<eos>: log p(exactly g) - log p(g))."""
        i = self.i
        s0 = i  # the first frame at which a new label can start
        B, T, V = self.x.shape
        psi = torch.full((B, V), -math.inf, dtype=torch.float64, device=self.x.device)
        phi = torch.logaddexp(self.rn, self.rb)
        self._phi = phi
        if s0 < T:
            before = F.pad(phi[:, :-1], (1, 0)) if s0 == 0 else phi[:, s0 - 1 : -1]  # (B, T - s0)
            xs = self.x[:, s0:]
            psi = torch.logsumexp(before[:, :, None] + xs, dim=1)
            if i > 0:  # g's last label again: only after a blank
                xl = xs.gather(2, self.last[:, None, None].expand(B, T - s0, 1))[:, :, 0]
                psi.scatter_(1, self.last[:, None], torch.logsumexp(self.rb[:, s0 - 1 : -1] + xl, 1)[:, None])
        psi[:, self.eos] = phi.gather(1, self.end)[:, 0]
        psi[:, self.blank] = -math.inf
        self._psi = psi
        return (psi - self.s[:, None]).clamp(min=LOGZERO).to(torch.float32)

    def advance(self, best: torch.Tensor) -> None:
        """Extend every row's prefix by its chosen token ``best`` (B,) (after ``scores``). A row that chose
        <eos> is finished: its state is garbage from here on and it should be dropped (``select``)."""
        i = self.i
        s0 = i
        B, T, _ = self.x.shape
        rn = torch.full_like(self.cb, -math.inf)
        rb = torch.full_like(self.cb, -math.inf)
        if s0 < T:
            phi = self._phi
            before = F.pad(phi[:, :-1], (1, 0)) if s0 == 0 else phi[:, s0 - 1 : -1]
            if i > 0:
                before = torch.where((best == self.last)[:, None], self.rb[:, s0 - 1 : -1], before)
            valid = self.valid[:, s0:]
            xc = self.x[:, s0:].gather(2, best[:, None, None].expand(B, T - s0, 1))[:, :, 0].masked_fill(~valid, 0.0)
            a = torch.cumsum(xc, 1)  # log Π_{k=s0..t} y_k(c)
            a_prev = F.pad(a[:, :-1], (1, 0))
            n = (a + torch.logcumsumexp(before - a_prev, 1)).masked_fill(~valid, -math.inf)
            # R^b_t = y_t(b)·(R^n_{t-1} + R^b_{t-1}), R^b = 0 before s0 (and R^n_{s0-1} = 0)
            n_prev = F.pad(n[:, :-1], (1, 0), value=-math.inf)
            cb = self.cb[:, s0:]
            b = cb + torch.logcumsumexp(n_prev - self.cb_prev[:, s0:], 1)
            rn[:, s0:], rb[:, s0:] = n, b
        self.s = self._psi.gather(1, best[:, None])[:, 0]
        self.rn, self.rb, self.last, self.i = rn, rb, best, i + 1

    def select(self, keep: torch.Tensor) -> None:
        """Keep only rows ``keep`` (indices), in that order."""
        for name in ("valid", "x", "cb", "cb_prev", "end", "rn", "rb", "s", "last"):
            setattr(self, name, getattr(self, name).index_select(0, keep))


class _MemoLinear(torch.nn.Module):
    """A linear layer that returns its previous output again when called on the very same tensor object."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self._x: torch.Tensor | None = None
        self._y: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x is not self._x:
            self._x, self._y = x, self.inner(x)
        return self._y

    def select(self, keep: torch.Tensor) -> None:
        """Rows dropped: the next memory is a new tensor, projected again."""
        self._x = self._y = None


class _PrefixMemoLinear(torch.nn.Module):
    """A linear layer over a growing prefix (B, L, D) that projects only the newest position when the previous
    call saw the same rows with one position fewer, and appends it to the previous output."""

    def __init__(self, inner: torch.nn.Module):
        super().__init__()
        self.inner = inner
        self._y: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self._y
        if y is not None and x.dim() == 3 and x.shape[0] == y.shape[0] and x.shape[1] == y.shape[1] + 1:
            y = torch.cat([y, self.inner(x[:, -1:])], dim=1)
        else:
            y = self.inner(x)
        self._y = y
        return y

    def select(self, keep: torch.Tensor) -> None:
        if self._y is not None:
            self._y = self._y.index_select(0, keep)


@contextlib.contextmanager
def decoder_projections_once(decoder: torch.nn.Module) -> Iterator[list[torch.nn.Module]]:
    """Within the block, the decoder projects every key and value once: ``eq2_search``'s decoder cache.

    ESPnet's ``forward_one_step`` does use its cache, but only for queries: each layer computes the newest
    position's query, then projects the whole prefix (self-attention) and the whole encoder output (source
    attention) to keys and values again at every step, the bulk of a batched step's arithmetic. Here the source
    attention's ``linear_k``/``linear_v`` return their first result for the same memory tensor (the same
    operation on the same input), and the self-attention's project only the newest position and append it (the
    earlier positions' inputs are the cached layer outputs, unchanged from step to step: a row of a matrix product
    is the product of that row, so the numbers are those of a full projection up to the order of the multiply's
    summation). The attention itself runs through ESPnet's own ``use_sdpa`` branch (torch's fused
    ``scaled_dot_product_attention``: the same softmax-weighted sum in one kernel instead of five small
    operations, the same numbers up to summation order; on this CPU a step took about a quarter less). Yields
    the wrappers; ``select(keep)`` on each when rows leave the batch. Only while decoding greedily step by step:
    a call that does not extend the prefix by one position projects it whole."""
    swapped = []
    for layer in getattr(decoder, "decoders", []):
        for attn_name, memo in (("self_attn", _PrefixMemoLinear), ("src_attn", _MemoLinear)):
            att = getattr(layer, attn_name, None)
            if att is not None and hasattr(att, "use_sdpa"):
                swapped.append((att, "use_sdpa", att.use_sdpa))
                att.use_sdpa = True
            for name in ("linear_k", "linear_v"):
                inner = getattr(att, name, None)
                if isinstance(inner, torch.nn.Linear):
                    setattr(att, name, memo(inner))
                    swapped.append((att, name, inner))
    try:
        yield [getattr(att, name) for att, name, _ in swapped if name != "use_sdpa"]
    finally:
        for att, name, inner in swapped:
            setattr(att, name, inner)


@dataclass
class Hypothesis:
    """One utterance's greedy decoding. ``steps``: the token chosen at every step (<eos> included when chosen,
    blanks kept); ``score``: the sum of the chosen steps' weighted scores (ESPnet's hypothesis score; with
    ``track``); ``margins``: per step, the best weighted score minus the second best (with ``track``), how near a
    tie each choice was: two runs whose float32 round-off differs can only choose differently at a near-tie."""

    steps: list[int] = field(default_factory=list)
    score: float = 0.0
    margins: list[float] = field(default_factory=list)
    eos: int = -1  # the model's <eos> id, to leave out of ``tokens``

    @property
    def tokens(self) -> list[int]:
        """The output token ids: no <eos>, no blank (dropped as ``Speech2Text`` drops them)."""
        return [t for t in self.steps if t != BLANK and t != self.eos]


@torch.inference_mode()
def eq2_search(
    model: torch.nn.Module, enc: torch.Tensor, enc_lens: torch.Tensor, lambda_c: float, track: bool = False
) -> list[Hypothesis]:
    """Exact Eq. 2 greedy decoding of a padded batch of encoder outputs, one ``Hypothesis`` per row.

    ``enc``: (B, T, D) encoder output, ``enc_lens``: (B,) valid frames of each row. The rows step together; a
    row that chose <eos> or reached its length limit leaves the batch (its CTC state, decoder cache and memory
    rows are dropped), so a batch costs what its remaining rows cost. Each row keeps its own frame count: CTC's
    frames past it are blank-certain, and the decoder's cross-attention masks them (no mask in an unpadded batch,
    as ESPnet's scorer passes none: a batch of one is ESPnet's own arithmetic). ``track``: also record each
    step's top-two margin and the hypothesis score (one more small reduction and host copy per step).
    """
    from espnet2.legacy.nets.pytorch_backend.transformer.mask import subsequent_mask

    lam = float(lambda_c)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"λC(i) = {lam} must lie in [0, 1]")
    use_ctc, use_dec = lam > 0.0, lam < 1.0
    B, T = enc.shape[:2]
    dev = enc.device
    lens = enc_lens.to(device=dev, dtype=torch.long)
    eos, sos = int(model.eos), int(model.sos)
    hyps = [Hypothesis(eos=eos) for _ in range(B)]
    max_len = lens.tolist()  # maxlenratio = 0: at most one token per encoder frame
    if use_ctc:
        ctc = CTCPrefixGreedy(model.ctc.log_softmax(enc), lens, BLANK, eos)
    memory, memory_mask, cache = enc, None, None
    if use_dec and bool((lens < T).any()):
        memory_mask = (torch.arange(T, device=dev)[None, :] < lens[:, None])[:, None, :]
    ys = torch.full((B, 1), sos, dtype=torch.long, device=dev)
    rows = list(range(B))  # the original row of each row still decoding
    with decoder_projections_once(model.decoder) if use_dec else contextlib.nullcontext() as memos:
        for i in range(max(max_len, default=0)):
            score = None
            if use_dec:
                ys_mask = subsequent_mask(i + 1, device=dev).unsqueeze(0)
                logp_dec, cache = model.decoder.forward_one_step(ys, ys_mask, memory, memory_mask, cache=cache)
                score = (1.0 - lam) * logp_dec
            if use_ctc:
                ctc_score = ctc.scores()
                score = lam * ctc_score if score is None else score + lam * ctc_score
            best = score.argmax(dim=-1)  # (b,)
            if use_ctc:
                ctc.advance(best)
            top = score.topk(min(2, score.size(-1)), dim=-1).values.tolist() if track else None
            keep = []
            for k, (b, token) in enumerate(zip(rows, best.tolist())):
                h = hyps[b]
                h.steps.append(token)
                if top is not None:
                    h.score += top[k][0]
                    h.margins.append(top[k][0] - top[k][-1])
                if token != eos and len(h.steps) < max_len[b]:
                    keep.append(k)
            if not keep:
                break
            ys = torch.cat([ys, best[:, None]], dim=1)
            if len(keep) < len(rows):
                idx = torch.tensor(keep, device=dev)
                rows = [rows[k] for k in keep]
                ys = ys.index_select(0, idx)
                if use_ctc:
                    ctc.select(idx)
                if use_dec:
                    memory = memory.index_select(0, idx)
                    memory_mask = None if memory_mask is None else memory_mask.index_select(0, idx)
                    cache = [c.index_select(0, idx) for c in cache]
                    for memo in memos:
                        memo.select(idx)
    return hyps


def eq2_greedy(
    model: torch.nn.Module, enc: torch.Tensor, enc_lens: torch.Tensor, lambda_c: float, return_scores: bool = False
) -> list[list[int]] | tuple[list[list[int]], list[float]]:
    """Exact Eq. 2 greedy token ids (no <sos>/<eos>, blanks dropped) of a padded batch of encoder outputs
    (``eq2_search``). ``return_scores``: also each hypothesis' score, the sum of its steps' weighted scores up to
    and including the step that chose <eos> (ESPnet's hypothesis score). The CTC differences telescope, so for a
    hypothesis ended by <eos> it is λC(i)·log p_CTC(hypothesis | x) + (1-λC(i))·Σ log p_dec: a number that exposes
    a difference in any head's output that the arg-max would hide."""
    hyps = eq2_search(model, enc, enc_lens, lambda_c, track=return_scores)
    tokens = [h.tokens for h in hyps]
    return (tokens, [h.score for h in hyps]) if return_scores else tokens


ENCODE_MIN_FILL = 0.8  # an encoder group's shortest utterance is at least this share of its longest


class Eq2GreedyDecoder:
    """``decoder(wave) -> token ids`` (exact Eq. 2, one utterance); ``decoder.batch(waves)`` for padded batches."""

    def __init__(self, model: torch.nn.Module, lambda_c: float):
        check_heads(model, lambda_c)
        self.model = model
        self.lambda_c = float(lambda_c)

    def _device(self) -> torch.device:
        return next(self.model.parameters()).device

    def _encode(self, speech: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        enc, enc_lens = self.model.encode(speech, lengths)
        if isinstance(enc, tuple):  # intermediate CTC outputs ride along: the final layer is first
            enc = enc[0]
        return enc, enc_lens

    @torch.no_grad()
    def search(
        self, waves: Sequence[np.ndarray | torch.Tensor], batch_size: int = 1, track: bool = False
    ) -> list[Hypothesis]:
        """One ``Hypothesis`` per wave, in the order given. ``batch_size`` 1: each wave encoded and decoded alone
        (no padding, no hooks: ESPnet's own arithmetic); larger: padded batches of that many, longest first (to pad
        least), encoded under ``batch_invariant(model)`` (see the module docstring). ``track``: ``eq2_search``'s."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        dev = self._device()
        flat = [np.asarray(w, dtype=np.float32).reshape(-1) for w in waves]
        out: list[Hypothesis | None] = [None] * len(flat)
        if batch_size == 1:
            for k, w in enumerate(flat):
                speech = torch.from_numpy(w).reshape(1, -1).to(dev)
                enc, enc_lens = self._encode(speech, torch.tensor([speech.size(1)], device=dev))
                out[k] = eq2_search(self.model, enc, enc_lens, self.lambda_c, track)[0]
            return out  # type: ignore[return-value]
        order = sorted(range(len(flat)), key=lambda k: -len(flat[k]))
        with batch_invariant(self.model):
            for start in range(0, len(order), batch_size):
                rows = order[start : start + batch_size]
                enc, enc_lens = self._encode_grouped([flat[k] for k in rows])
                for k, h in zip(rows, eq2_search(self.model, enc, enc_lens, self.lambda_c, track)):
                    out[k] = h
        return out  # type: ignore[return-value]

    def _encode_grouped(self, waves: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder outputs of ``waves`` (longest first) as one zero-padded batch with their lengths. The encoder
        runs on groups of similar length (each at least ``ENCODE_MIN_FILL`` of its group's longest), under the
        caller's ``batch_invariant``: a padded encoder frame costs as much as a real one, so one group of all
        lengths wastes work where a decoding step, whose cost barely grows with the batch, does not (16 espeak-ng
        utterances of 1.4-3.4 s: 0.32 s in groups, 0.43 s as one batch, 0.49 s one at a time, one CPU thread).
        The padded frames between groups are never read: the CTC scorer and the decoder's memory mask stop at
        each row's length."""
        dev = self._device()
        groups: list[list[np.ndarray]] = []
        for w in waves:
            if groups and len(w) >= ENCODE_MIN_FILL * len(groups[-1][0]):
                groups[-1].append(w)
            else:
                groups.append([w])
        encs, lens = [], []
        for group in groups:
            speech, lengths = pad_waves(group, dev)
            enc, enc_lens = self._encode(speech, lengths)
            encs += list(enc)
            lens.append(enc_lens)
        return torch.nn.utils.rnn.pad_sequence(encs, batch_first=True), torch.cat(lens)

    def __call__(self, wave: np.ndarray | torch.Tensor) -> list[int]:
        return self.search([wave])[0].tokens

    def batch(self, waves: Sequence[np.ndarray | torch.Tensor], batch_size: int = 16) -> list[list[int]]:
        """Token ids of every wave, decoded ``batch_size`` at a time (``search``), in the order given."""
        return [h.tokens for h in self.search(waves, batch_size)]


NEAR_TIE = 1e-4  # a top-two margin below this is a near-tie (the bench's criterion for a batched mismatch)


@dataclass(frozen=True)
class Mismatch:
    """Where a batched hypothesis first leaves its one-at-a-time twin: utterance ``index``, decoding ``step``,
    and the top-two margin there in each run (the prefixes agree up to that step, so both runs scored the same
    candidates there, up to round-off)."""

    index: int
    step: int
    single_margin: float
    batched_margin: float


def mismatches(single: Sequence[Hypothesis], batched: Sequence[Hypothesis]) -> list[Mismatch]:
    """Every utterance whose batched steps differ from its one-at-a-time steps (both decoded with ``track``)."""
    found = []
    for k, (a, b) in enumerate(zip(single, batched, strict=True)):
        if a.steps == b.steps:
            continue
        step = next((i for i, (x, y) in enumerate(zip(a.steps, b.steps)) if x != y), min(len(a.steps), len(b.steps)))
        if step >= min(len(a.margins), len(b.margins)):
            raise ValueError(f"utterance {k}: hypotheses differ at step {step} but were not decoded with track")
        found.append(Mismatch(k, step, a.margins[step], b.margins[step]))
    return found


class GreedyDecoder:
    """Mode ``espnet_beam1`` on a model in memory: ``Speech2Text``'s beam-1 search, ``decoder(wave) -> token ids``
    (no <sos>/<eos>, blanks removed), one utterance at a time."""

    def __init__(
        self, model, lambda_c: float, maxlenratio: float = 0.0, minlenratio: float = 0.0, full_vocabulary: bool = False
    ):
        from espnet2.legacy.nets.batch_beam_search import BatchBeamSearch
        from espnet2.legacy.nets.beam_search import BeamSearch
        from espnet2.legacy.nets.scorers.ctc import CTCPrefixScorer
        from espnet2.legacy.nets.scorers.length_bonus import LengthBonus

        check_heads(model, lambda_c)
        self.model = model
        token_list = model.token_list
        scorers = {
            "decoder": model.decoder,
            "ctc": CTCPrefixScorer(ctc=model.ctc, eos=model.eos) if model.ctc is not None else None,
            "length_bonus": LengthBonus(len(token_list)),
        }
        weights = {"decoder": 1.0 - lambda_c, "ctc": lambda_c, "lm": 0.0, "ngram": 0.0, "length_bonus": 0.0}
        search = BeamSearch(
            beam_size=1,
            weights=weights,
            scorers=scorers,
            sos=model.sos,
            eos=model.eos,
            vocab_size=len(token_list),
            token_list=token_list,
            pre_beam_score_key=None if lambda_c == 1.0 or full_vocabulary else "full",
            normalize_length=False,
        )
        search.__class__ = BatchBeamSearch
        self.search = search.eval()
        self.maxlenratio, self.minlenratio = maxlenratio, minlenratio

    @torch.no_grad()
    def __call__(self, wave: np.ndarray | torch.Tensor) -> list[int]:
        import logging

        device = next(self.model.parameters()).device
        speech = torch.as_tensor(np.asarray(wave, dtype=np.float32)).reshape(1, -1).to(device)
        enc, _ = self.model.encode(speech, torch.tensor([speech.size(1)], device=device))
        if isinstance(enc, tuple):
            enc = enc[0]
        level = logging.getLogger().level
        logging.getLogger().setLevel(max(level, logging.WARNING))  # BeamSearch logs every hypothesis
        try:
            hyps = self.search(x=enc[0], maxlenratio=self.maxlenratio, minlenratio=self.minlenratio)
        finally:
            logging.getLogger().setLevel(level)
        if not hyps:
            return []
        return [int(t) for t in hyps[0].yseq[1:-1].tolist() if int(t) != 0]


def make_decoder(
    model: torch.nn.Module, lambda_c: float, mode: str = DEFAULT_MODE
) -> Callable[[np.ndarray], list[int]]:
    """A ``wave -> token ids`` greedy decoder of ``model`` at λC(i) in ``mode`` (see ``DECODING_MODES``)."""
    if check_mode(mode) == "exact":
        return Eq2GreedyDecoder(model, lambda_c)
    return GreedyDecoder(model, lambda_c)


class Transcriber:
    """``transcriber(wave) -> text`` with a loaded ``Speech2Text``: its model, token list and tokenizer, and the
    decoding ``mode``. ``espnet_beam1`` is ``Speech2Text`` itself; ``exact`` decodes the same model with
    ``Eq2GreedyDecoder`` and turns ids into text the way ``Speech2Text`` does (ids -> tokens -> tokenizer)."""

    def __init__(self, speech2text, lambda_c: float, mode: str = DEFAULT_MODE):
        self.speech2text = speech2text
        self.lambda_c = float(lambda_c)
        self.mode = check_mode(mode)
        self.decoder = Eq2GreedyDecoder(speech2text.asr_model, lambda_c) if mode == "exact" else None

    @property
    def asr_model(self) -> torch.nn.Module:
        return self.speech2text.asr_model

    def text(self, ids: Sequence[int]) -> str:
        s2t = self.speech2text
        if s2t.tokenizer is None:
            return ""
        return s2t.tokenizer.tokens2text(s2t.converter.ids2tokens([int(t) for t in ids]))

    def __call__(self, wave: np.ndarray) -> str:
        if self.decoder is None:
            results = self.speech2text(wave)
            return (results[0][0] or "") if results else ""
        return self.text(self.decoder(wave))

    def batch(self, waves: Sequence[np.ndarray], batch_size: int = 16) -> list[str]:
        """Texts of ``waves``; batched in mode ``exact``, one at a time through ``Speech2Text`` otherwise."""
        if self.decoder is None:
            return [self(w) for w in waves]
        return [self.text(ids) for ids in self.decoder.batch(waves, batch_size)]
