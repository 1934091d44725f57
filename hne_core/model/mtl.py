"""The paper's multi-task model as an ESPnet2 model class, and the ESPnet2 task that trains it.

Shared encoder, three heads: CTC, the attention decoder, and an accent discriminator (5 fully connected
layers on the mean encoder embedding over valid frames). Loss, Eq. 1 and 3 of the paper:

    L = λA (λC L_CTC + (1 - λC) L_DEC) + (1 - λA) L_DIS

λC is handed to ESPnetASRModel as its ``ctc_weight``, so ESPnet's own edge cases hold: λC = 0 builds no CTC
loss, λC = 1 no decoder. λA = 1 builds no discriminator. Those corners are the paper's STL baselines.

Registering ``mtl`` in ESPnet's model registry lets ``model: mtl`` + ``model_conf`` work from a training
YAML, so ESPnet2's own Trainer (resume, AMP, multi-GPU, ``--init_param``) trains it unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import torch
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.legacy.nets.pytorch_backend.nets_utils import make_pad_mask
from espnet2.tasks.asr import ASRTask, model_choices
from espnet2.torch_utils.device_funcs import force_gatherable

# model_conf keys of MTLESPnetModel that ESPnetASRModel does not know (dropped on export).
MTL_ONLY_KEYS = (
    "lambda_a",
    "lambda_c",
    "num_accents",
    "dis_hidden",
    "dis_activation",
    "dis_lr_scale",
    "dis_input_norm",
)
ACTIVATIONS = {"relu": torch.nn.ReLU, "gelu": torch.nn.GELU, "tanh": torch.nn.Tanh, "swish": torch.nn.SiLU}


def mtl_loss(
    loss_ctc: torch.Tensor | None,
    loss_att: torch.Tensor | None,
    loss_dis: torch.Tensor | None,
    lambda_a: float,
    lambda_c: float,
) -> torch.Tensor:
    """Eq. 1 and 3. A head whose weight is zero must be absent (None), and a head with weight must be present,
    so that a misbuilt model fails here instead of silently training the wrong objective."""

    def term(weight: float, loss: torch.Tensor | None, name: str) -> torch.Tensor | float:
        if weight == 0.0:
            if loss is not None:
                raise ValueError(f"{name} has weight 0 and must not be computed")
            return 0.0
        if loss is None:
            raise ValueError(f"{name} has weight {weight} but was not computed")
        return weight * loss

    asr = term(lambda_c, loss_ctc, "L_CTC") + term(1.0 - lambda_c, loss_att, "L_DEC")
    return lambda_a * asr + term(1.0 - lambda_a, loss_dis, "L_DIS")


def masked_mean(enc: torch.Tensor, enc_lens: torch.Tensor) -> torch.Tensor:
    """Mean over each utterance's valid frames only: padding must not change an utterance's embedding."""
    valid = (~make_pad_mask(enc_lens, maxlen=enc.size(1))).to(enc.device, enc.dtype)
    return (enc * valid.unsqueeze(-1)).sum(1) / enc_lens.clamp(min=1).unsqueeze(-1).to(enc.dtype)


class PooledStandardizer(torch.nn.BatchNorm1d):
    """Parameter-free standardisation of the pooled embedding (batch statistics in training, running ones in
    eval, so a prediction never depends on batch-mates at inference).

    Why: the mean of layer-normalised encoder frames is nearly the same vector for every utterance; the accent
    lives in small deviations from it, which a plain 5-layer MLP fits only slowly. A one-utterance training
    batch (possible at the end of an epoch) falls back on the running statistics instead of failing.
    """

    def __init__(self, size: int):
        super().__init__(size, affine=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.size(0) < 2:
            return torch.nn.functional.batch_norm(x, self.running_mean, self.running_var, training=False, eps=self.eps)
        return super().forward(x)


INPUT_NORMS = ("none", "batch")


class AccentDiscriminator(torch.nn.Sequential):
    """len(hidden) + 1 fully connected layers (the paper: 5) from the mean embedding to accent logits."""

    def __init__(
        self,
        input_size: int,
        hidden: Sequence[int],
        num_classes: int,
        activation: str = "relu",
        input_norm: str = "none",
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(f"discriminator activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
        if input_norm not in INPUT_NORMS:
            raise ValueError(f"discriminator input_norm {input_norm!r} is not one of {INPUT_NORMS}")
        layers: list[torch.nn.Module] = [PooledStandardizer(input_size)] if input_norm == "batch" else []
        sizes = [input_size, *hidden]
        for i, o in zip(sizes[:-1], sizes[1:]):
            layers += [torch.nn.Linear(i, o), ACTIVATIONS[activation]()]
        layers.append(torch.nn.Linear(sizes[-1], num_classes))
        super().__init__(*layers)


class MTLESPnetModel(ESPnetASRModel):
    """ESPnetASRModel plus an accent discriminator head, trained with the paper's weighted loss."""

    def __init__(
        self,
        *args,
        lambda_a: float = 1.0,
        lambda_c: float = 0.3,
        num_accents: int = 2,
        dis_hidden: Sequence[int] = (256, 256, 256, 256),
        dis_activation: str = "relu",
        dis_lr_scale: float = 1.0,
        dis_input_norm: str = "none",
        **kwargs,
    ):
        if "ctc_weight" in kwargs:
            raise ValueError("MTLESPnetModel takes lambda_c, not ctc_weight")
        if not (0.0 <= lambda_a <= 1.0 and 0.0 <= lambda_c <= 1.0):
            raise ValueError(f"lambda_a={lambda_a} and lambda_c={lambda_c} must lie in [0, 1]")
        super().__init__(*args, ctc_weight=lambda_c, **kwargs)
        self.lambda_a = float(lambda_a)
        self.lambda_c = float(lambda_c)
        self.dis_lr_scale = float(dis_lr_scale)
        self.discriminator = (
            AccentDiscriminator(self.encoder.output_size(), dis_hidden, num_accents, dis_activation, dis_input_norm)
            if self.lambda_a < 1.0
            else None
        )

    def accent_logits(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> torch.Tensor:
        if self.discriminator is None:
            raise ValueError("this model has no discriminator (lambda_a = 1)")
        return self.discriminator(masked_mean(enc, enc_lens))

    def forward(
        self,
        speech: torch.Tensor,
        speech_lengths: torch.Tensor,
        text: torch.Tensor,
        text_lengths: torch.Tensor,
        accent: torch.Tensor,
        accent_lengths: torch.Tensor | None = None,
        **kwargs,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor | None], torch.Tensor]:
        """Returns (loss, stats, weight) like every ESPnet2 model; the Trainer also passes ``utt_id``."""
        batch_size = speech.shape[0]
        text[text == -1] = self.ignore_id
        text = text[:, : text_lengths.max()]
        enc, enc_lens = self.encode(speech, speech_lengths)
        if isinstance(enc, tuple):  # intermediate CTC outputs are not used here
            enc = enc[0]

        stats: dict[str, torch.Tensor | None] = {}
        loss_ctc = loss_att = loss_dis = None
        if self.ctc is not None:
            loss_ctc, stats["cer_ctc"] = self._calc_ctc_loss(enc, enc_lens, text, text_lengths)
        if self.decoder is not None:
            loss_att, stats["acc"], stats["cer"], stats["wer"] = self._calc_att_loss(enc, enc_lens, text, text_lengths)
        if self.discriminator is not None:
            logits = self.accent_logits(enc, enc_lens)
            target = accent[:, 0].long()
            loss_dis = torch.nn.functional.cross_entropy(logits, target)
            stats["acc_dis"] = (logits.argmax(-1) == target).float().mean().detach()
        loss = mtl_loss(loss_ctc, loss_att, loss_dis, self.lambda_a, self.lambda_c)
        stats.update(
            loss_ctc=None if loss_ctc is None else loss_ctc.detach(),
            loss_att=None if loss_att is None else loss_att.detach(),
            loss_dis=None if loss_dis is None else loss_dis.detach(),
            loss=loss.detach(),
        )  # "loss" in stats is what --best_model_criterion valid loss min reads
        return force_gatherable((loss, stats, batch_size), loss.device)


# Side effect on import: ESPnet's (module-level) ASR model registry learns "mtl".
model_choices.classes.setdefault("mtl", MTLESPnetModel)


class MTLASRTask(ASRTask):
    """ASRTask whose training data also carries ``accent`` (the class index, loaded as ``text_int``)."""

    @classmethod
    def required_data_names(cls, train: bool = True, inference: bool = False) -> tuple[str, ...]:
        names = super().required_data_names(train, inference)
        return names if inference else (*names, "accent")

    @classmethod
    def build_optimizers(cls, args, model: torch.nn.Module) -> list[torch.optim.Optimizer]:
        """ESPnet's optimiser, with the discriminator's learning rate scaled by ``dis_lr_scale``.

        Written here because ESPnet's ``build_optimizers`` knows one parameter group only. The loss stays Eq. 3;
        only the freshly initialised head (5 layers, a few hundred steps in a CPU fine-tune) moves faster, while
        the encoder and the ASR heads keep the configured rate.
        """
        scale = getattr(model, "dis_lr_scale", 1.0)
        if getattr(model, "discriminator", None) is None or scale == 1.0:
            return super().build_optimizers(args, model)
        from espnet2.tasks.abs_task import optim_classes

        head = list(model.discriminator.parameters())
        head_ids = {id(p) for p in head}
        rest = [p for p in model.parameters() if id(p) not in head_ids]
        conf = dict(args.optim_conf)
        return [optim_classes[args.optim]([{"params": rest}, {"params": head, "lr": conf["lr"] * scale}], **conf)]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m hne_core.model.mtl <espnet asr_train arguments>``: ESPnet2's trainer on the MTL task."""
    MTLASRTask.main(cmd=list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
