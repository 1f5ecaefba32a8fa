"""The one LightningModule: it trains any model family's classifier (genre_cnn.models.families), handed to it built,
with the augmentation of the classifier's input kind (genre_cnn.training.augment), one shared step and torchmetrics.

    module = build_module(families.get("cnn"), genres, frontend, {"widths": [256, 128], "lr": 1e-3})
    python train.py --models [cnn]        # builds one per family this way (genre_cnn/training/train.py); no CLI here

A family's options are one flat group of train.py (`--cnn.widths`, `--cnn.gain_db`, `--cnn.lr`): the classifier's
`__init__` arguments, its augmentation's, and GenreModule's own training settings, each name in exactly one of the
three (`option_sources`). A checkpoint's hyperparameters are the classifier's settings with the training ones, and
its state dict the classifier's weights under `model.`: `genre_cnn.inference.predict.load_model` rebuilds the
plain classifier from them without Lightning. Log keys: `train/loss`, `train/acc`, `val/loss`, `val/acc` (clip
level), `val/window_acc`, `val/f1`, the same under `test/`. `train/acc` compares the predictions on augmented
(mixed-up, masked) windows with their original labels, so it runs below `val/acc`.
"""

from __future__ import annotations

import inspect
import math
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from genre_cnn.audio.frontend import FrontEndConfig
from genre_cnn.bounds import MAX_WEIGHTS, TRAINING, check, implied_shapes, weight_count
from genre_cnn.errors import SettingsError
from genre_cnn.models.families import Family
from genre_cnn.models.families.base import GenreClassifier
from genre_cnn.training.augment import VectorAugment, for_inputs


class GenreModule(L.LightningModule):
    """Trains and evaluates `classifier`; evaluates a clip by averaging its windows' probabilities.

    Args:
        classifier: the family's plain classifier, built (`GenreClassifier.from_hparams`), genres included.
        augment: training-time augmentation of its inputs (none: the batch as it is).
        lr: the learning rate of AdamW (its peak, with the cosine schedule).
        weight_decay: AdamW's decoupled weight decay.
        label_smoothing: of the cross-entropy loss.
        balanced: weigh each genre's loss by 1 / its share of the training clips (`set_class_counts`), so that
            every genre counts the same however many clips it has.
        schedule: of the learning rate: "cosine" (warm-up, then a cosine to 0 over the trainer's budget) or
            "constant" (lr throughout).
    """

    def __init__(self, classifier: GenreClassifier, augment: VectorAugment | None = None, lr: float = 1e-3,
                 weight_decay: float = 1e-2, label_smoothing: float = 0.0, balanced: bool = False,
                 schedule: Literal["cosine", "constant"] = "cosine"):
        super().__init__()
        self.model, self.augment = classifier, augment or VectorAugment()
        # the checkpoint's hyperparameters: what rebuilds the classifier, and how it was trained
        self.save_hyperparameters({**classifier.hparams, **self.augment.hparams, "lr": lr,
                                   "weight_decay": weight_decay, "label_smoothing": label_smoothing,
                                   "balanced": balanced, "schedule": schedule})
        n = len(classifier.genres)
        self.register_buffer("class_weights", torch.ones(n), persistent=False)
        for stage in ("val", "test"):
            setattr(self, f"{stage}_metrics", torch.nn.ModuleDict({
                "acc": MulticlassAccuracy(n, average="micro"),
                "window_acc": MulticlassAccuracy(n, average="micro"),
                "f1": MulticlassF1Score(n, average="macro"),
                "confusion": MulticlassConfusionMatrix(n),
            }))
        self.train_acc = MulticlassAccuracy(n, average="micro")

    @property
    def genres(self) -> list[str]:
        return self.model.genres

    def set_class_counts(self, counts: torch.Tensor) -> None:
        """Training clips per genre (n,): with `balanced`, genre g's loss weighs N / (n * counts[g])."""
        if self.hparams.balanced:
            counts = counts.float().clamp_min(1)
            self.class_weights.copy_(counts.sum() / (len(counts) * counts))

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        x, target = self.augment(x, y, len(self.genres))  # target: labels (B,), or soft targets (B, n) once mixed
        logits = self.model.member_logits(x)  # (M, B, n): each member of an ensemble learns on its own
        weight = self.class_weights if self.hparams.balanced else None
        loss = sum(F.cross_entropy(member, target, weight=weight, label_smoothing=self.hparams.label_smoothing)
                   for member in logits)
        self.train_acc(logits.mean(dim=0), y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor], stage: str) -> None:
        x, y = batch  # x: the model's evaluation inputs, e.g. windows (B, K, C, W) or vectors (B, D)
        probs, window_probs = self.model.clip_probs(x)  # (B, n), (B, K, n)
        loss = F.nll_loss(probs.clamp_min(1e-8).log(), y)
        metrics = getattr(self, f"{stage}_metrics")
        for name in ("acc", "f1", "confusion"):
            metrics[name].update(probs, y)
        k = window_probs.shape[1]
        metrics["window_acc"].update(window_probs.flatten(0, 1), y.repeat_interleave(k))  # (B*K, n), (B*K,)
        self.log(f"{stage}/loss", loss, batch_size=len(y), sync_dist=True, prog_bar=stage == "val")
        for name in ("acc", "window_acc", "f1"):
            self.log(f"{stage}/{name}", metrics[name], batch_size=len(y), prog_bar=name == "acc")

    def validation_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def on_validation_epoch_end(self) -> None:
        self.val_metrics["confusion"].reset()

    def on_test_epoch_end(self) -> None:  # genre_cnn.training.fitting.TestConfusion has read it
        self.test_metrics["confusion"].reset()

    def configure_optimizers(self):
        """AdamW; with the cosine schedule the learning rate warms up linearly over the first 10% of steps, then
        follows a cosine to 0; with the constant one it stays at lr.

        The schedule is a function of the trainer's current step budget (max_epochs, or max_steps), so a run
        resumed with more epochs stretches it instead of stepping past its end.
        """
        params = [p for p in self.parameters() if p.requires_grad]  # a frozen backbone is not optimised
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

        def factor(step: int) -> float:
            if self.hparams.schedule == "constant":
                return 1.0
            total = max(1, int(self.trainer.estimated_stepping_batches))
            warm = max(1, total // 10)
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        # lets `genre_cnn.inference.predict.load_model` rebuild the plain classifier, without pickle or Lightning
        checkpoint["genre_cnn_class"] = type(self.model).__name__


def module_settings() -> dict[str, inspect.Parameter]:
    """GenreModule's own training settings (its `__init__` arguments but the classifier and augmentation)."""
    return {k: p for k, p in inspect.signature(GenreModule.__init__).parameters.items()
            if k not in ("self", "classifier", "augment")}


def option_sources(family: Family) -> dict[str, type]:
    """Where each `--<family>.*` option goes: its name -> the classifier class, its augmentation class or
    GenreModule. The arguments every family is given (genres, frontend) and the settings training sets once it has
    fitted them (the classifier's `fitted`) are not options."""
    classifier = family.classifier()
    augment = for_inputs(classifier.inputs)
    sources: dict[str, type] = {}
    for cls, names in ((classifier, classifier.settings()), (augment, inspect.signature(augment).parameters),
                       (GenreModule, module_settings())):
        for name in names:
            if name in ("genres", "frontend") or name in classifier.fitted:
                continue
            if name in sources:
                raise TypeError(f"{family.name}: setting {name!r} of {cls.__name__} is also {sources[name].__name__}'s")
            sources[name] = cls
    return sources


def legacy_settings(family: Family) -> dict:
    """The values runs saved before a setting of this family existed were trained with."""
    classifier = family.classifier()
    return {**classifier.legacy, **for_inputs(classifier.inputs).legacy}


def check_settings(family: Family, settings: dict, frontend: FrontEndConfig | None = None) -> None:
    """Raises SettingsError, naming the option (e.g. "--dense.lr"), for a setting outside the ranges a
    checkpoint is held to when loaded (the family's `bounds` and genre_cnn.bounds.TRAINING), for settings the
    network refuses (its ValueError names the setting first, "widths: ..."), or for settings that imply more
    weights than a checkpoint may hold; nothing is allocated. `settings` are the family's options (GTZAN's 10
    genres and `frontend`, default the default front end, are assumed)."""
    classifier = family.classifier()
    if why := check(settings, {**TRAINING, **classifier.bounds}):
        raise SettingsError(f"--{family.name}.{why[0]} {why[1]}")
    hp = {"genres": [str(i) for i in range(10)], "frontend": FrontEndConfig.of(frontend), **settings}
    try:
        weights = weight_count(implied_shapes(family, hp))
    except ValueError as err:
        raise SettingsError(f"--{family.name}.{err}") from None
    if weights > MAX_WEIGHTS:
        shown = ", ".join(f"--{family.name}.{k} {settings[k]}" for k in ("widths", "kernel_size") if k in settings)
        raise SettingsError(f"{shown or f'--{family.name}'}: {weights:,} weights, more than the {MAX_WEIGHTS:,} "
                            "a checkpoint may hold")


def build_module(family: Family, genres: list[str], frontend: FrontEndConfig, settings: dict) -> GenreModule:
    """A fresh GenreModule for `family`'s classifier of `genres`, from its options `settings` (checked first)."""
    check_settings(family, settings, frontend)
    sources = option_sources(family)
    part = {cls: {k: v for k, v in settings.items() if sources.get(k) is cls} for cls in set(sources.values())}
    unknown = sorted(set(settings) - set(sources))
    if unknown:
        raise SettingsError(f"--{family.name}.{unknown[0]}: not a setting of the {family.name} family")
    classifier_cls = family.classifier()
    classifier = family.build({"genres": list(genres), "frontend": frontend, **part.get(classifier_cls, {})})
    augment_cls = for_inputs(classifier_cls.inputs)
    augment_args = part.get(augment_cls, {})
    if "frontend" in inspect.signature(augment_cls).parameters:
        augment_args = {"frontend": frontend, **augment_args}
    return GenreModule(classifier, augment_cls(**augment_args), **part.get(GenreModule, {}))
