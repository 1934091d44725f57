"""The paper's multi-task model as an ESPnet2 model class, and the ESPnet2 task that trains it.

Shared encoder, three heads: CTC, the attention decoder, and an accent discriminator (5 fully connected
layers on the mean encoder embedding over valid frames). Loss, Eq. 1 and 3 of the paper:

    L = λA (λC L_CTC + (1 - λC) L_DEC) + (1 - λA) L_DIS

Auxiliary tasks are data (``tasks``: a name, its number of classes and its weight w_k, Σ w_k = 1), one
discriminator head per task, each with its own cross-entropy: L_DIS = Σ_k w_k L_k. The default, the accent alone
with w = 1, is the paper's model: its head is ``discriminator`` (the weights file the paper's model writes), other
tasks' heads are ``task_heads.<name>``. A label of -1 (an utterance without that task's label) is left out of that
task's loss only: the utterance still trains ASR and the other heads.

λC is handed to ESPnetASRModel as its ``ctc_weight``, so ESPnet's own edge cases hold: λC = 0 builds no CTC
loss, λC = 1 no decoder. λA = 1 builds no discriminator. Those corners are the paper's STL baselines.

Registering ``mtl`` in ESPnet's model registry lets ``model: mtl`` + ``model_conf`` work from a training
YAML, so ESPnet2's own Trainer (resume, AMP, multi-GPU, ``--init_param``) trains it unchanged.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence

import torch
from espnet2.asr.espnet_model import ESPnetASRModel
from espnet2.legacy.nets.pytorch_backend.nets_utils import make_pad_mask
from espnet2.tasks.asr import ASRTask, model_choices
from espnet2.torch_utils.device_funcs import force_gatherable

from hne_core.naming import ACCENT_TASK

# model_conf keys of MTLESPnetModel that ESPnetASRModel does not know (dropped on export).
MTL_ONLY_KEYS = (
    "lambda_a",
    "lambda_c",
    "num_accents",
    "dis_hidden",
    "dis_activation",
    "dis_lr_scale",
    "dis_input_norm",
    "tasks",
)
ACCENT = ACCENT_TASK  # the paper's task: its labels are the ``accent`` data, its head ``discriminator``
MISSING_LABEL = -1
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


def task_weights(tasks: Mapping[str, Mapping] | None, num_accents: int) -> dict[str, tuple[int, float]]:
    """name -> (classes, weight) of the auxiliary tasks, in order; None: the accent alone (the paper's model). The
    weights are positive and sum to 1, so that 1 - λA stays the share of the discriminators in Eq. 3."""
    if tasks is None:
        return {ACCENT: (int(num_accents), 1.0)}
    out = {str(name): (int(spec["classes"]), float(spec["weight"])) for name, spec in tasks.items()}
    if not out:
        raise ValueError("tasks: at least one auxiliary task, or none given for the accent alone")
    for name, (classes, weight) in out.items():
        if classes < 2 or not weight > 0:
            raise ValueError(f"task {name!r}: needs at least 2 classes and a positive weight, got {classes}, {weight}")
    total = sum(w for _, w in out.values())
    if abs(total - 1.0) > 1e-9:
        raise ValueError(f"task weights must sum to 1, got {total} ({out})")
    return out


def masked_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the utterances with a label (``MISSING_LABEL`` left out); 0 (with a gradient path)
    for a batch without any, so that a task absent from a batch neither fails nor moves its head."""
    if bool((labels == MISSING_LABEL).all()):
        return logits.sum() * 0.0
    return torch.nn.functional.cross_entropy(logits, labels, ignore_index=MISSING_LABEL)


class MTLESPnetModel(ESPnetASRModel):
    """ESPnetASRModel plus one discriminator head per auxiliary task, trained with the paper's weighted loss."""

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
        tasks: Mapping[str, Mapping] | None = None,
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
        self.tasks = task_weights(tasks, num_accents) if self.lambda_a < 1.0 else {}

        def head(classes: int) -> AccentDiscriminator:
            return AccentDiscriminator(self.encoder.output_size(), dis_hidden, classes, dis_activation, dis_input_norm)

        self.discriminator = head(self.tasks[ACCENT][0]) if ACCENT in self.tasks else None
        others = {name: head(classes) for name, (classes, _) in self.tasks.items() if name != ACCENT}
        self.task_heads = torch.nn.ModuleDict(others) if others else None

    def task_head(self, name: str) -> torch.nn.Module:
        if name not in self.tasks:
            raise ValueError(f"this model has no {name!r} head (its tasks: {sorted(self.tasks) or 'none, λA = 1'})")
        return self.discriminator if name == ACCENT else self.task_heads[name]

    def task_logits(self, name: str, enc: torch.Tensor, enc_lens: torch.Tensor) -> torch.Tensor:
        return self.task_head(name)(masked_mean(enc, enc_lens))

    def accent_logits(self, enc: torch.Tensor, enc_lens: torch.Tensor) -> torch.Tensor:
        if self.discriminator is None:
            raise ValueError("this model has no accent discriminator (lambda_a = 1, or no accent task)")
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
        if self.tasks:
            loss_dis = self._task_losses(enc, enc_lens, {ACCENT: accent, **kwargs}, stats)
        loss = mtl_loss(loss_ctc, loss_att, loss_dis, self.lambda_a, self.lambda_c)
        stats.update(
            loss_ctc=None if loss_ctc is None else loss_ctc.detach(),
            loss_att=None if loss_att is None else loss_att.detach(),
            loss_dis=None if loss_dis is None else loss_dis.detach(),
            loss=loss.detach(),
        )  # "loss" in stats is what --best_model_criterion valid loss min reads
        return force_gatherable((loss, stats, batch_size), loss.device)

    def _task_losses(
        self, enc: torch.Tensor, enc_lens: torch.Tensor, data: Mapping[str, torch.Tensor], stats: dict
    ) -> torch.Tensor:
        """Σ_k w_k L_k over the tasks; the accent's stats keep the paper model's names (``acc_dis``)."""
        total = None
        for name, (_, weight) in self.tasks.items():
            if name not in data:
                raise ValueError(f"the batch has no {name!r} labels (the training data must carry them)")
            logits = self.task_logits(name, enc, enc_lens)
            labels = data[name][:, 0].long()
            loss = masked_cross_entropy(logits, labels)
            labelled = labels != MISSING_LABEL
            acc = (logits.argmax(-1) == labels)[labelled].float().mean() if bool(labelled.any()) else None
            key = "acc_dis" if name == ACCENT else f"acc_{name}"
            stats[key] = None if acc is None else acc.detach()
            if name != ACCENT:
                stats[f"loss_{name}"] = loss.detach()
            total = weight * loss if total is None else total + weight * loss
        return total


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
        if not getattr(model, "tasks", None) or scale == 1.0:
            return super().build_optimizers(args, model)
        from espnet2.tasks.abs_task import optim_classes

        head = [p for name in model.tasks for p in model.task_head(name).parameters()]
        head_ids = {id(p) for p in head}
        rest = [p for p in model.parameters() if id(p) not in head_ids]
        conf = dict(args.optim_conf)
        return [optim_classes[args.optim]([{"params": rest}, {"params": head, "lr": conf["lr"] * scale}], **conf)]


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m hne_core.model.mtl <espnet asr_train arguments>``: ESPnet2's trainer on the MTL task."""
    MTLASRTask.main(cmd=list(sys.argv[1:] if argv is None else argv))


if __name__ == "__main__":
    main()
