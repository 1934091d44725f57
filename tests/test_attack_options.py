"""Attack settings the paper leaves open, each a config key: how the closest-length target is measured
(``attack.target_length``) and the label smoothing of the attack's decoder loss (``attack.label_smoothing``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from model_utils import build_tiny

from hne_core.attack.loss import AttackSetupError, decoder_losses, pad_targets, set_label_smoothing
from hne_core.attack.targets import assign_targets, text_length
from hne_core.heads import pad_waves

TARGETS = [[3, 4, 5], [4, 5, 6, 7]]


def test_target_length_in_chars_or_words_picks_different_targets():
    reference = "ABCDEFGH IJ"  # 11 characters, 2 words
    targets = ["LOREM IPSUM DOLOR", "CONSECTETUR", "SED DO"]  # 17 / 11 / 6 characters; 3 / 1 / 2 words
    assert assign_targets([reference], targets) == ["CONSECTETUR"]  # chars: the default, as before
    assert assign_targets([reference], targets, "chars") == ["CONSECTETUR"]
    assert assign_targets([reference], targets, "words") == ["SED DO"]
    # ties still go to the shorter target, then to the earlier one, in the chosen measure
    assert assign_targets(["A B C"], ["X Y Z W", "P Q"], "words") == ["P Q"]
    assert text_length("A  B C", "words") == 3 and text_length("A  B C", "chars") == 6
    with pytest.raises(ValueError, match="attack.target_length must be one of"):
        assign_targets([reference], targets, "tokens")


@pytest.fixture(scope="module")
def model():
    torch.set_num_threads(1)
    return build_tiny(1.0, 0.3)


def _decoder_losses(model):
    rng = np.random.default_rng(0)
    waves = [(0.1 * rng.standard_normal(n)).astype(np.float32) for n in (8000, 6000)]
    x, lens = pad_waves(waves, "cpu")
    ys, ys_lens = pad_targets(TARGETS, "cpu")
    with torch.no_grad():
        enc, enc_lens = model.encode(x, lens)
        losses = decoder_losses(model, enc, enc_lens, ys, ys_lens)
        # the same decoder pass, for references computed here independently of the criterion
        from espnet2.legacy.nets.pytorch_backend.transformer.add_sos_eos import add_sos_eos

        ys_in, ys_out = add_sos_eos(ys, model.sos, model.eos, model.ignore_id)
        dec_out, _ = model.decoder(enc, enc_lens, ys_in, ys_lens + 1)
    return losses, dec_out, ys_out


def _smoothed(dec_out, ys_out, smoothing: float) -> torch.Tensor:
    """Per row, the label-smoothed loss written out: sum over target positions of KL(q || p), q putting
    1 - s on the target token and s / (V - 1) on every other one (ESPnet's LabelSmoothingLoss, not normalised
    by length), padding (-1) left out."""
    logp = torch.log_softmax(dec_out, dim=2).double()
    vocab = logp.size(-1)
    rows = []
    for i in range(logp.size(0)):
        keep = ys_out[i] != -1
        q = torch.full((int(keep.sum()), vocab), smoothing / (vocab - 1), dtype=torch.double)
        q[torch.arange(q.size(0)), ys_out[i][keep]] = 1.0 - smoothing
        rows.append(torch.sum(torch.where(q > 0, q * (q.clamp_min(1e-300).log() - logp[i][keep]), 0.0)))
    return torch.stack(rows).float()


def test_label_smoothing_is_set_on_the_decoder_loss(model):
    crit = model.criterion_att
    own = float(crit.smoothing)
    assert not crit.normalize_length
    try:
        assert set_label_smoothing(model, "model") == own and crit.smoothing == own  # "model": left as it is
        with_model, dec_out, ys_out = _decoder_losses(model)
        assert torch.allclose(with_model, _smoothed(dec_out, ys_out, own), rtol=1e-5)

        for value in (0.0, 0.2):
            assert set_label_smoothing(model, value) == value
            losses, dec_out, ys_out = _decoder_losses(model)
            assert torch.allclose(losses, _smoothed(dec_out, ys_out, value), rtol=1e-5)
            assert torch.allclose(losses, with_model, rtol=1e-6) == (value == own)
    finally:
        crit.smoothing, crit.confidence = own, 1.0 - own


@pytest.mark.parametrize("bad", [1.0, -0.1, "none", True])
def test_label_smoothing_out_of_range_is_an_error(model, bad):
    with pytest.raises(AttackSetupError, match="attack.label_smoothing"):
        set_label_smoothing(model, bad)
