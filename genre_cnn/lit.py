"""LightningModules that train the networks of `models.py`, with one shared step and torchmetrics.

Each module carries the feature front end (non-persistent buffers) and the genre list, and the dense
model its training-split scaler, so a checkpoint alone rebuilds a model that predicts from a waveform
(see `genre_cnn.predict`). Log keys: `train/loss`, `train/acc`, `val/loss`, `val/acc` (clip level),
`val/window_acc`, `val/f1`, the same under `test/`. `train/acc` compares the predictions on augmented
(mixed-up, masked) windows with their original labels, so it runs below `val/acc`.
"""

from __future__ import annotations

import math

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics.classification import MulticlassAccuracy, MulticlassConfusionMatrix, MulticlassF1Score

from genre_cnn.features import N_CHROMA, LogMelChroma, extract, num_frames, windows
from genre_cnn.models import DenseNet, GenreCNN


class GenreClassifier(L.LightningModule):
    """Shared training, evaluation and prediction logic; subclasses define `net` and `clip_probs`.

    Args:
        genres: class names in label order (linked from the DataModule).
        sample_rate, n_fft, hop_length, n_mels: front-end settings (linked from the DataModule).
        window_seconds: the length of one input window (linked from the DataModule).
        lr: peak learning rate of Adam (warm-up then cosine). weight_decay: decoupled (AdamW).
        label_smoothing: of the cross-entropy loss.
    """

    input_kind = "spec"  # what the DataModule's training loader yields: "spec" windows or "hand" vectors

    def __init__(self, genres: list[str], sample_rate: int = 22050, n_fft: int = 2048, hop_length: int = 512,
                 n_mels: int = 128, window_seconds: float = 3.0, lr: float = 1e-3, weight_decay: float = 1e-2,
                 label_smoothing: float = 0.0):
        super().__init__()
        self.save_hyperparameters()  # this signature's values and the subclass's, defaults included
        self.frontend = LogMelChroma(sample_rate, n_fft, hop_length, n_mels)
        self.window = num_frames(int(window_seconds * sample_rate), hop_length)
        n = len(genres)
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
        return list(self.hparams.genres)

    def clip_probs(self, windows: torch.Tensor, hand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """windows (B, K, C, W), hand (B, D) -> clip probabilities (B, n), window probabilities (B, K', n)."""
        raise NotImplementedError

    def augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Training-time augmentation; returns inputs and soft targets (B, n)."""
        return x, F.one_hot(y, len(self.genres)).float()

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        x, target = self.augment(x, y)
        logits = self.net(x)  # (B, n)
        loss = F.cross_entropy(logits, target, label_smoothing=self.hparams.label_smoothing)
        self.train_acc(logits, y)
        self.log("train/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=len(y))
        self.log("train/acc", self.train_acc, on_step=False, on_epoch=True, batch_size=len(y))
        return loss

    def _eval_step(self, batch: tuple[torch.Tensor, torch.Tensor, torch.Tensor], stage: str) -> None:
        windows, hand, y = batch
        probs, window_probs = self.clip_probs(windows, hand)  # (B, n), (B, K, n)
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

    def on_test_epoch_end(self) -> None:
        """Keeps the test confusion matrix (rows: true genre) for the report and logs it as a figure."""
        self.test_confusion = self.test_metrics["confusion"].compute().cpu().numpy()
        self.test_metrics["confusion"].reset()
        experiment = getattr(self.logger, "experiment", None)
        if self.trainer.is_global_zero and hasattr(experiment, "add_figure"):
            from genre_cnn.report import confusion_figure

            experiment.add_figure("test/confusion_matrix", confusion_figure(self.test_confusion, self.genres),
                                  self.global_step)

    def configure_optimizers(self):
        """AdamW; the learning rate warms up linearly over the first 10% of steps, then follows a cosine to 0.

        The schedule is a function of the trainer's current max_epochs, so a run resumed with more epochs
        stretches it instead of stepping past its end.
        """
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)

        def factor(step: int) -> float:
            total = max(1, int(self.trainer.estimated_stepping_batches))
            warm = max(1, total // 10)
            if step < warm:
                return (step + 1) / warm
            return 0.5 * (1 + math.cos(math.pi * min(1.0, (step - warm) / max(1, total - warm))))

        sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["genre_cnn_class"] = type(self).__name__  # lets `load_model` rebuild it without pickle

    def windows_of(self, waveform: torch.Tensor) -> torch.Tensor:
        """Waveform (samples,) -> half-overlapping windows of front-end features (K, C, W)."""
        feats = self.frontend(waveform[None])[0]  # (C, T)
        if feats.shape[-1] < self.window:  # shorter than one window: loop it
            feats = feats.repeat(1, -(-self.window // feats.shape[-1]))  # (C, >= W)
        return windows(feats, self.window)  # (K, C, W)

    @torch.no_grad()
    def predict_waveform(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono waveform (samples,) at the model's sample rate -> genre probabilities (n,)."""
        raise NotImplementedError


class CNNClassifier(GenreClassifier):
    """Trains `GenreCNN` on random 3-s windows; evaluates a clip by averaging its windows' probabilities.

    Augmentation (training only, on the batch's device): a random gain of up to +-gain_db on the log-mel
    channels, one frequency mask of up to freq_mask mel bins and one time mask of up to time_mask frames
    (SpecAugment, Park et al. 2019), and mixup (Zhang et al. 2018) with Beta(mixup_alpha, mixup_alpha).
    """

    def __init__(self, genres: list[str], widths: tuple[int, ...] = (512, 256, 128, 64), kernel_size: int = 3,
                 dropout: float = 0.3, gain_db: float = 6.0, freq_mask: int = 16, time_mask: int = 20,
                 mixup_alpha: float = 0.2, **kwargs):
        """Network and augmentation settings; `kwargs` are GenreClassifier's (front end, optimiser)."""
        super().__init__(genres, **kwargs)
        self.net = GenreCNN(self.frontend.channels, len(genres), tuple(widths), kernel_size, dropout)

    def augment(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        hp = self.hparams
        b, c, t = x.shape
        x = x.clone()
        n_mels = c - N_CHROMA
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
        target = F.one_hot(y, len(self.genres)).float()  # (B, n)
        if hp.mixup_alpha > 0:
            lam = float(np.random.beta(hp.mixup_alpha, hp.mixup_alpha))
            perm = torch.randperm(b, device=x.device)
            x = lam * x + (1 - lam) * x[perm]  # (B, C, T)
            target = lam * target + (1 - lam) * target[perm]  # (B, n)
        return x, target

    def clip_probs(self, windows: torch.Tensor, hand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        b, k = windows.shape[:2]
        window_probs = self.net(windows.flatten(0, 1)).softmax(-1).view(b, k, -1)  # (B, K, n)
        return window_probs.mean(dim=1), window_probs

    @torch.no_grad()
    def predict_waveform(self, waveform: torch.Tensor) -> torch.Tensor:
        windows = self.windows_of(waveform.to(self.device))  # (K, C, W)
        return self.clip_probs(windows[None], torch.empty(0))[0][0]  # (n,)


class DenseClassifier(GenreClassifier):
    """Trains `DenseNet` on standardised hand-crafted vectors; the scaler is fitted on the training split
    only (in `setup`) and saved with the weights as buffers. `clip_seconds` (linked from the DataModule):
    prediction takes the same centred excerpt of a track that training took of each clip."""

    input_kind = "hand"

    def __init__(self, genres: list[str], in_features: int = 91, widths: tuple[int, ...] = (512, 256, 128, 64),
                 dropout: float = 0.3, clip_seconds: float = 30.0, **kwargs):
        """Network settings and the training clip length; `kwargs` are GenreClassifier's."""
        super().__init__(genres, **kwargs)
        self.net = DenseNet(in_features, len(genres), tuple(widths), dropout)
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))

    def setup(self, stage: str) -> None:
        dm = self.trainer.datamodule
        if stage == "fit" and dm is not None:
            train = torch.from_numpy(dm.hand[dm.train_idx]).double()  # (N_train, D)
            self.mean.copy_(train.mean(0).float())  # (D,)
            self.std.copy_(train.std(0).clamp_min(1e-6).float())  # (D,)

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return super().training_step(((x - self.mean) / self.std, y), batch_idx)  # x: (B, D)

    def clip_probs(self, windows: torch.Tensor, hand: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs = self.net((hand - self.mean) / self.std).softmax(-1)  # (B, n)
        return probs, probs[:, None]  # one "window": the whole clip

    @torch.no_grad()
    def predict_waveform(self, waveform: torch.Tensor) -> torch.Tensor:
        from genre_cnn.audio import fix_length

        sr = self.hparams.sample_rate
        y = fix_length(waveform.float().cpu().numpy(), int(round(self.hparams.clip_seconds * sr)))  # as in training
        _, hand = extract(y, self.frontend, sr)  # (D,)
        hand = torch.from_numpy(hand).to(self.device)[None]  # (1, D)
        return self.clip_probs(torch.empty(0), hand)[0][0]  # (n,)
