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
comparison (``Speech2Text`` itself, or ``hne_core.attack.decode.GreedyDecoder`` on a model in memory).

The CTC term is computed by ESPnet's vectorised prefix scorer (``CTCPrefixScoreTH``, the one its batched beam
search uses) for all tokens at once. It returns ``log p_CTC(g + c | x) - log p_CTC(g | x)``: the prefix score
minus that of the current prefix. That subtrahend is one number per step, the same for every candidate c, so
the arg-max is the one of Eq. 2 as written; we keep the difference (as ESPnet's beam search does) because it
stays small while the prefix score itself grows with the hypothesis' length, so adding the decoder's
log-probability to it loses fewer bits of float32. Blank is never a candidate when λC(i) > 0 (its prefix score
is ESPnet's log-zero, -1e10); at λC(i) = 0 the decoder alone decides, and blanks it emits are dropped from the
output as ``Speech2Text`` drops them. λC(i) = 1 never calls the decoder, λC(i) = 0 never touches CTC (a model
trained with λC(t) = 0 has no CTC head).

Length: ESPnet's ``maxlenratio = 0`` rule, at most as many tokens as the utterance has encoder frames; a hypothesis
that reaches it ends there. (ESPnet appends <eos> after the token chosen at its last step even when that token is
<eos>, which leaves an <eos> inside its output; here a chosen <eos> ends the hypothesis at any step.)

Batching: ``eq2_greedy`` works on a padded batch of encoder outputs, all utterances stepping together; each keeps
its own frame count (the CTC scorer's lengths, a memory mask for the decoder's cross-attention, its own
maximum length). ``Eq2GreedyDecoder.batch`` encodes padded batches under ``batch_invariant(model)`` (the STFT and
relative-position hooks that make a padded utterance encode as if alone), so a batch gives the tokens one-at-a-time decoding gives,
up to float32 summation order (the padded frames add exact zeros, but a longer reduction may group its terms
differently), which only matters at a near-tie between two candidates.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch

DECODING_MODES = ("exact", "espnet_beam1")
DEFAULT_MODE = "exact"
BLANK = 0  # ESPnet's CTC blank id (CTCPrefixScorer and Speech2Text assume 0)


def check_mode(mode: str) -> str:
    """``mode`` if it is one of ``DECODING_MODES``: a misspelt mode must fail before any decoding or attack runs."""
    if mode not in DECODING_MODES:
        raise ValueError(f"decoding mode must be one of {DECODING_MODES}, got {mode!r}")
    return mode


@torch.no_grad()
def eq2_greedy(model: torch.nn.Module, enc: torch.Tensor, enc_lens: torch.Tensor, lambda_c: float,
               return_scores: bool = False) -> list[list[int]] | tuple[list[list[int]], list[float]]:
    """Exact Eq. 2 greedy token ids (no <sos>/<eos>, blanks dropped) of a padded batch of encoder outputs.

    ``enc``: (B, T, D) encoder output, ``enc_lens``: (B,) valid frames of each row. All rows step together;
    a row that has ended keeps being fed (its further tokens are ignored) so that the CTC scorer, which
    assumes one prefix length for the whole batch, and the decoder cache keep their shapes.

    ``return_scores``: also each hypothesis' score, the sum of its steps' weighted scores up to and including
    the step that chose <eos> (ESPnet's hypothesis score). The CTC differences telescope, so for a hypothesis
    ended by <eos> it is λC(i)·log p_CTC(hypothesis | x) + (1-λC(i))·Σ log p_dec: a number that exposes a
    difference in any head's output that the arg-max would hide.
    """
    from espnet2.legacy.nets.ctc_prefix_score import CTCPrefixScoreTH
    from espnet2.legacy.nets.pytorch_backend.transformer.mask import subsequent_mask

    lam = float(lambda_c)
    if not 0.0 <= lam <= 1.0:
        raise ValueError(f"λC(i) = {lam} must lie in [0, 1]")
    use_ctc, use_dec = lam > 0.0, lam < 1.0
    B, T = enc.shape[:2]
    dev = enc.device
    lens = enc_lens.to(device=dev, dtype=torch.long)
    padded = bool((lens < T).any())
    eos, sos = int(model.eos), int(model.sos)

    if use_ctc:
        logp = model.ctc.log_softmax(enc)  # (B, T, V)
        ctc = CTCPrefixScoreTH(logp.clone(), lens, BLANK, eos)  # it writes log-zero into the padded frames
        ctc_state = None
    if use_dec:
        # None for an unpadded batch, as ESPnet's decoder scorer passes it (a batch of one is bit-identical)
        memory_mask = (torch.arange(T, device=dev)[None, :] < lens[:, None])[:, None, :] if padded else None
        cache = None

    ys = torch.full((B, 1), sos, dtype=torch.long, device=dev)
    out: list[list[int]] = [[] for _ in range(B)]
    totals = [0.0] * B
    done = [False] * B
    max_len = lens.tolist()  # maxlenratio = 0: at most one token per encoder frame
    for i in range(int(lens.max()) if B else 0):
        score = None
        if use_dec:
            ys_mask = subsequent_mask(i + 1, device=dev).unsqueeze(0)
            logp_dec, cache = model.decoder.forward_one_step(ys, ys_mask, enc, memory_mask, cache=cache)
            score = (1.0 - lam) * logp_dec
        if use_ctc:
            ctc_score, ctc_full = ctc(ys, ctc_state)  # (B, V): log p(g + c) - log p(g); <eos>: log p(g) - log p(g)
            score = lam * ctc_score if score is None else score + lam * ctc_score
        best = score.argmax(dim=-1)  # (B,)
        if use_ctc:
            ctc_state = ctc.index_select_state(ctc_full, best[:, None])
        ys = torch.cat([ys, best[:, None]], dim=1)
        chosen = score.gather(1, best[:, None])[:, 0].tolist() if return_scores else [0.0] * B
        for b, token in enumerate(best.tolist()):
            if done[b]:
                continue
            totals[b] += chosen[b]
            if token == eos:
                done[b] = True
                continue
            out[b].append(token)
            if len(out[b]) >= max_len[b]:
                done[b] = True
        if all(done):
            break
    tokens = [[t for t in row if t != BLANK] for row in out]
    return (tokens, totals) if return_scores else tokens


class Eq2GreedyDecoder:
    """``decoder(wave) -> token ids`` (exact Eq. 2, one utterance); ``decoder.batch(waves)`` for padded batches."""

    def __init__(self, model: torch.nn.Module, lambda_c: float):
        from hne_core.attack.loss import check_heads

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
    def __call__(self, wave: np.ndarray | torch.Tensor) -> list[int]:
        dev = self._device()
        speech = torch.as_tensor(np.asarray(wave, dtype=np.float32)).reshape(1, -1).to(dev)
        enc, enc_lens = self._encode(speech, torch.tensor([speech.size(1)], device=dev))
        return eq2_greedy(self.model, enc, enc_lens, self.lambda_c)[0]

    @torch.no_grad()
    def batch(self, waves: Sequence[np.ndarray | torch.Tensor], batch_size: int = 16) -> list[list[int]]:
        """Token ids of every wave, decoded ``batch_size`` at a time (longest first, to pad least), in the
        order given. Padding is made harmless by ``batch_invariant(model)``; see the module docstring."""
        from hne_core.attack.batching import batch_invariant
        from hne_core.attack.loss import pad_waves

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        dev = self._device()
        order = sorted(range(len(waves)), key=lambda k: -len(waves[k]))
        out: list[list[int] | None] = [None] * len(waves)
        with batch_invariant(self.model):
            for start in range(0, len(order), batch_size):
                rows = order[start:start + batch_size]
                speech, lengths = pad_waves([np.asarray(waves[k], dtype=np.float32).reshape(-1) for k in rows], dev)
                enc, enc_lens = self._encode(speech, lengths)
                for k, ids in zip(rows, eq2_greedy(self.model, enc, enc_lens, self.lambda_c)):
                    out[k] = ids
        return out  # type: ignore[return-value]


def make_decoder(model: torch.nn.Module, lambda_c: float,
                 mode: str = DEFAULT_MODE) -> Callable[[np.ndarray], list[int]]:
    """A ``wave -> token ids`` greedy decoder of ``model`` at λC(i) in ``mode`` (see ``DECODING_MODES``)."""
    if check_mode(mode) == "exact":
        return Eq2GreedyDecoder(model, lambda_c)
    from hne_core.attack.decode import GreedyDecoder

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
