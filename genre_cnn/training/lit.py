"""LightningModules that train the model families' classifiers (genre_cnn.models.families), with one shared step and
torchmetrics.

    python train.py --models [cnn]        # trains LitCNN (see genre_cnn/training/train.py); this module has no CLI

One LightningModule per model family, each holding a plain classifier (`self.model`, which carries the front
end, the genre list and, for vector models, the training-split scaler). A checkpoint's hyperparameters and
state dict rebuild that classifier for prediction without Lightning (`genre_cnn.inference.predict.load_model`).
Log keys: `train/loss`, `train/acc`, `val/loss`, `val/acc` (clip level), `val/window_acc`, `val/f1`, the
same under `test/`. `train/acc` compares the predictions on augmented (mixed-up, masked) windows with their
original labels, so it runs below `val/acc`.
"""

from __future__ import annotations

import functools
import math
from typing import ClassVar, Literal

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from genre_cnn.audio.frontend import FrontEndConfig
from genre_cnn.bounds import MAX_WEIGHTS, implied_shapes, problem, weight_count
from genre_cnn.errors import SettingsError
from genre_cnn.models import families
from genre_cnn.models.families.base import GenreClassifier
from genre_cnn.models.networks import WIDTHS


def mixup(x: torch.Tensor, target: torch.Tensor, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """mixup (Zhang et al. 2018): each example blended with another of the batch, weight ~ Beta(alpha, alpha).
    x (B, ...), target (B, n) -> the same shapes; alpha <= 0 leaves both as they are."""
    if alpha <= 0:
        return x, target
    lam = float(np.random.beta(alpha, alpha))
    perm = torch.randperm(len(x), device=x.device)
    return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]


@functools.cache
def mel_centres(n_mels: int, sample_rate: int) -> torch.Tensor:
    """The centre frequencies (Hz) of the front end's Slaney mel bands (n_mels,): the peaks of
    librosa.filters.mel's triangles."""
    import librosa

    return torch.from_numpy(librosa.mel_frequencies(n_mels + 2, fmax=sample_rate / 2)[1:-1]).float()


def shift_pitch(x: torch.Tensor, semitones: torch.Tensor, config: FrontEndConfig) -> torch.Tensor:
    """Features (B, C, T) of `config`'s front end with each example's pitch moved by `semitones` (B,): the log-mel
    resampled along frequency (band i takes the input's level at f_i / 2**(s/12), linear between band centres,
    the edge bands repeated) and the chroma rolled by the nearest whole semitone. Pitch shifting by stretching
    the spectrogram along frequency, as in Schlueter & Grill (ISMIR 2015). Returns (B, C, T) in x's dtype."""
    n, t = config.n_mels, x.shape[-1]
    if n < 2:  # no frequency axis to move along
        return x
    centres = mel_centres(n, config.sample_rate).to(x.device)  # (n,)
    wanted = centres[None] / 2 ** (semitones.float()[:, None] / 12)  # (B, n): the input frequency each band shows
    hi = torch.searchsorted(centres, wanted.contiguous()).clamp(1, n - 1)  # (B, n)
    lo = hi - 1
    w = ((wanted - centres[lo]) / (centres[hi] - centres[lo])).clamp(0, 1)[..., None].to(x.dtype)  # (B, n, 1)
    mel = x[:, :n]  # (B, n, T)
    below, above = (mel.gather(1, i[..., None].expand(-1, -1, t)) for i in (lo, hi))  # (B, n, T) each
    out = [below * (1 - w) + above * w]
    if x.shape[1] > n:
        bins = x.shape[1] - n  # 12 chroma bins, C first: rolling by k moves every pitch class k semitones up
        source = (torch.arange(bins, device=x.device) - semitones.round().long()[:, None]) % bins  # (B, 12)
        out.append(x[:, n:].gather(1, source[..., None].expand(-1, -1, t)))  # (B, 12, T)
    return torch.cat(out, dim=1)


class LitGenre(L.LightningModule):
    """Shared training and evaluation; subclasses name their `family` (genre_cnn.models.families) and may augment.

    Args:
        genres: class names in label order (from the DataModule).
        frontend: the front-end settings (the CLI's `--frontend` group; saved as a plain dict).
        lr: peak learning rate of Adam (warm-up then cosine). weight_decay: decoupled (AdamW).
        label_smoothing: of the cross-entropy loss.
    """

    family: ClassVar[str]  # its genre_cnn.models.families name, also the option group of train.py (--cnn.kernel_size)

    def __init__(self, genres: list[str], frontend: FrontEndConfig | dict | None = None, lr: float = 1e-3,
                 weight_decay: float = 1e-2, label_smoothing: float = 0.0):
        super().__init__()
        self.save_hyperparameters()  # this signature's values and the subclass's, defaults included
        self.hparams["frontend"] = FrontEndConfig.of(frontend).as_dict()  # plain types: loads with weights_only
        self.check_settings(self.hparams)
        self.model: GenreClassifier = families.get(self.family).build(self.hparams)

        n = len(genres)
        for stage in ("val", "test"):
            setattr(self, f"{stage}_metrics", torch.nn.ModuleDict({
                "acc": MulticlassAccuracy(n, average="micro"),
                "window_acc": MulticlassAccuracy(n, average="micro"),
                "f1": MulticlassF1Score(n, average="macro"),
                "confusion": MulticlassConfusionMatrix(n),
            }))
        self.train_acc = MulticlassAccuracy(n, average="micro")


    @classmethod
    def check_settings(cls, settings: dict) -> None:
        """Raises SettingsError, naming the option (e.g. "--dense.lr"), for a setting outside the ranges a
        checkpoint is held to when loaded (genre_cnn.bounds), for settings the network refuses (its ValueError
        names the setting first, "widths: ..."), or for settings that imply more weights than a checkpoint may
        hold; nothing is allocated. `settings` are this family's hyperparameters, with `genres`
        and `frontend` when known (else GTZAN's 10 genres and the default front end are assumed)."""
        for key, value in settings.items():
            why = problem(key, value)
            if why:
                raise SettingsError(f"--{cls.family}.{key} {why}")
        hp = {"genres": [str(i) for i in range(10)], **settings}
        hp["frontend"] = FrontEndConfig.of(hp.get("frontend")).as_dict()
        try:
            weights = weight_count(implied_shapes(families.get(cls.family), hp))
        except ValueError as err:
            raise SettingsError(f"--{cls.family}.{err}") from None
        if weights > MAX_WEIGHTS:
            shown = ", ".join(f"--{cls.family}.{k} {settings[k]}" for k in ("widths", "kernel_size") if k in settings)
            raise SettingsError(f"{shown or f'--{cls.family}'}: {weights:,} weights, more than the {MAX_WEIGHTS:,} "
                                "a checkpoint may hold")

    @property
    def genres(self) -> list[str]:
        return self.model.genres

    def augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-time augmentation; returns inputs and soft targets (B, n)."""
        return x, F.one_hot(y, len(self.genres)).float()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        x, target = self.augment(x, y)
        logits = self.model(x)  # (B, n)
        loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        self.train_acc(logits, y)
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
        """AdamW; the learning rate warms up linearly over the first 10% of steps, then follows a cosine to 0.

        The schedule is a function of the trainer's current max_epochs, so a run resumed with more epochs
        stretches it instead of stepping past its end.
        """
        params = [p for p in self.parameters() if p.requires_grad]  # a frozen backbone is not optimised
        opt = torch.optim.AdamW(params, lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

        def factor(step: int) -> float:
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


class LitCNN(LitGenre):
    """Trains `WindowClassifier` (the CNN) on random windows; evaluates a clip by averaging its windows'
    probabilities.

    Augmentation (training only, on the batch's device): a random pitch shift of up to +-pitch_shift semitones
    (`shift_pitch`), a random gain of up to +-gain_db on the log-mel channels, one frequency mask of up to
    freq_mask mel bins and one time mask of up to time_mask frames (SpecAugment, Park et al. 2019), and mixup
    (Zhang et al. 2018) with Beta(mixup_alpha, mixup_alpha).
    """

    family = "cnn"

    def __init__(self, genres: list[str], window_seconds: float = 3.0, widths: tuple[int, ...] = WIDTHS,
                 kernel_size: int = 3, dropout: float = 0.3, gain_db: float = 6.0, freq_mask: int = 16,
                 time_mask: int = 20, mixup_alpha: float = 0.2, band_norm: Literal["none", "mean", "instance"] = "mean",
                 stem: int = 8, pitch_shift: float = 3.0, **kwargs):
        """Input length (s, linked from the DataModule), network and augmentation settings (band_norm and stem:
        see GenreCNN; band_norm "mean", stem 8 and pitch_shift 3 by default, BENCHMARKS.md says why); `kwargs`
        are LitGenre's (front end, optimiser)."""
        super().__init__(genres, **kwargs)

    def augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hp = self.hparams
        b, c, t = x.shape
        x = x.clone()
        n_mels = self.model.frontend.config.n_mels
        if hp.pitch_shift > 0:
            x = shift_pitch(x, (torch.rand(b, device=x.device) * 2 - 1) * hp.pitch_shift, self.model.frontend.config)
        x[:, :n_mels] += (torch.rand(b, 1, 1, device=x.device) * 2 - 1) * hp.gain_db
        fill = x.mean(dim=2, keepdim=True)  # (B, C, 1)
        for size, length, axis in ((hp.freq_mask, n_mels, 1), (hp.time_mask, t, 2)):
            if size <= 0:
                continue
            width = torch.randint(0, size + 1, (b, 1, 1), device=x.device)  # (B, 1, 1)
            start = (torch.rand(b, 1, 1, device=x.device) * (length - width + 1)).long()  # (B, 1, 1)
            pos = torch.arange(c if axis == 1 else t, device=x.device).view((1, -1, 1) if axis == 1 else (1, 1, -1))
            mask = (pos >= start) & (pos < start + width)  # (B, C, 1) or (B, 1, T)
            if axis == 1:
                mask = mask & (pos < n_mels)
            x = torch.where(mask, fill, x)  # (B, C, T)
        return mixup(x, F.one_hot(y, len(self.genres)).float(), hp.mixup_alpha)  # (B, C, T), (B, n)


class LitDense(LitGenre):
    """Trains `HandcraftedClassifier` (the dense baseline) on hand-crafted vectors. Its scaler is the training
    split's statistics, handed over by the trainer (`model.model.set_scaler(*dm.vector_stats())`) before the fit
    and saved with the weights. `clip_seconds` (linked from the DataModule): prediction takes the same centred
    excerpt of a track that training took of each clip."""

    family = "dense"

    def __init__(self, genres: list[str], clip_seconds: float = 30.0, widths: tuple[int, ...] = WIDTHS,
                 dropout: float = 0.3, **kwargs):
        """The training clip length and network settings; `kwargs` are LitGenre's."""
        super().__init__(genres, **kwargs)


class LitMusicnn(LitGenre):
    """Trains the genre head of `MusicnnClassifier` on the cached clip embeddings of the pretrained musicnn tagger
    (the mean of its patches' tag logits by default; each clip crops_per_clip times an epoch, optional mixup).
    The frozen backbone starts from the musicnn wheel's weights (genre_cnn.models.musicnn). The defaults are the best of
    six heads compared in benchmarks/musicnn_heads.py (BENCHMARKS.md)."""

    family = "musicnn"

    def __init__(self, genres: list[str], embedding: Literal["tags", "penultimate", "both"] = "tags",
                 widths: tuple[int, ...] = WIDTHS, dropout: float = 0.5, mixup_alpha: float = 0.0,
                 **kwargs):
        """What the head sees, its network settings and mixup; `kwargs` are LitGenre's."""
        super().__init__(genres, **kwargs)
        from genre_cnn.models.musicnn import load_pretrained

        self.model.backbone.load_state_dict(load_pretrained().state_dict())

    def augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return mixup(x, F.one_hot(y, len(self.genres)).float(), self.hparams.mixup_alpha)
