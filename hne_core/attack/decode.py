"""Greedy inference on an in-memory model, the way ``espnet2.bin.asr_inference.Speech2Text`` decodes.

``Speech2Text(beam_size=1, ctc_weight=λC(i), lm_weight=0, penalty=0)`` builds a ``BeamSearch`` over the scorers
decoder (weight 1-λC(i)), CTC prefix (λC(i)) and length bonus (0), turns it into a ``BatchBeamSearch`` and runs
it on one utterance's encoder output: ESPnet's beam-1 reading of the paper's Eq. 2. ``GreedyDecoder`` builds the
same search around a model object we already hold (the attack's model), so predictions need no second copy of the
weights. ``tests/test_attack.py`` checks it against ``Speech2Text`` on an exported model.

This is the workflow's ``decoding: {mode: espnet_beam1}``, kept for comparison: with beam 1 ESPnet's pre-beam keeps
one candidate, the decoder's top token, and scores CTC for it alone (and for <eos>, which ESPnet's CTC scorer
always fills in), so it is not Eq. 2's arg-max over the vocabulary (``hne_core.decoding.Eq2GreedyDecoder``, mode
``exact``, is). ``full_vocabulary=True`` turns the pre-beam off: ESPnet's own search then scores every token with
both heads, a beam-1 Eq. 2 that the tests use as an independent reference for the exact decoder.
"""

from __future__ import annotations

import numpy as np
import torch


class GreedyDecoder:
    """``decoder(wave) -> token ids`` (no <sos>/<eos>, blanks removed), one utterance at a time."""

    def __init__(
        self, model, lambda_c: float, maxlenratio: float = 0.0, minlenratio: float = 0.0, full_vocabulary: bool = False
    ):
        from espnet2.legacy.nets.batch_beam_search import BatchBeamSearch
        from espnet2.legacy.nets.beam_search import BeamSearch
        from espnet2.legacy.nets.scorers.ctc import CTCPrefixScorer
        from espnet2.legacy.nets.scorers.length_bonus import LengthBonus

        from hne_core.attack.loss import check_heads

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
