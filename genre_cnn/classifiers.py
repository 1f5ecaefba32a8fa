"""The models as prediction uses them: plain `nn.Module`s (no Lightning) from a waveform to genre probabilities.

    python -m genre_cnn.classifiers      # prints each family's classifier for GTZAN's genres and its size

Each classifier carries its front end, so training and prediction cannot drift apart, and declares in
`inputs` what the DataModule serves it for training and evaluation:
- `WindowClassifier` ("windows"): the write-up's CNN (`GenreCNN`) on half-overlapping windows of log-mel +
  chroma; a track's probabilities are the mean of its windows' (CLMR-style track-level evaluation).
- `HandcraftedClassifier` ("handcrafted"): the write-up's dense network (`DenseNet`) on the standardised
  hand-crafted vector of the track's centred `clip_seconds`, as in training.
- `MusicnnClassifier` ("musicnn"): the same dense network on the clip's mean embedding (tag logits) of the
  pretrained musicnn tagger (genre_cnn.musicnn) over its 3-s patches.

The LightningModules of `genre_cnn.lit` train these; `genre_cnn.predict.load_model` rebuilds one from a
checkpoint's hyperparameters and state dict without importing Lightning.
"""

from __future__ import annotations

import inspect
from typing import ClassVar, Literal

import torch
from torch import nn

from genre_cnn.features import HANDCRAFTED_SIZE, extract
from genre_cnn.frontend import FrontEnd, FrontEndConfig, track_windows
from genre_cnn.models import DenseNet, GenreCNN
from genre_cnn.musicnn import EMBEDDING_SIZE, FRONTEND, Musicnn, patch_embeddings


class GenreClassifier(nn.Module):
    """What every family offers: logits for its training input, clip and window probabilities for a batch of
    evaluation inputs, and the same for a whole waveform."""

    inputs: ClassVar[str]  # what the DataModule serves: "windows" or a per-clip vector ("handcrafted", ...)

    def __init__(self, genres: list[str]):
        super().__init__()
        self.genres = list(genres)
        # divides every window's logits before the softmax (genre_cnn.calibration); 1 until fitted
        self.register_buffer("temperature", torch.ones(()))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args) -> None:
        state_dict.setdefault(prefix + "temperature", torch.ones(()))  # saved before models carried one: T = 1
        super()._load_from_state_dict(state_dict, prefix, *args)

    @property
    def sample_rate(self) -> int:
        return self.frontend.config.sample_rate

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of evaluation inputs -> the logits of each of their windows (B, K, n), before the temperature."""
        raise NotImplementedError

    def clip_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of evaluation inputs -> clip probabilities (B, n), the mean of the window probabilities
        (B, K, n), each the softmax of the window's logits divided by the temperature."""
        window_probs = (self.window_logits(x) / self.temperature).softmax(-1)  # (B, K, n)
        return window_probs.mean(dim=1), window_probs

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono waveform (samples,) at `sample_rate` -> this model's evaluation input for the track (unbatched)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict_waveform(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono waveform (samples,) at `sample_rate` -> genre probabilities (n,)."""
        return self.clip_probs(self.track_inputs(waveform)[None])[0][0]  # (n,)

    @torch.no_grad()
    def window_probs(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono waveform (samples,) -> probabilities of each window along the track (K, n) (K = 1 for a
        model that sees the track as one vector)."""
        return self.clip_probs(self.track_inputs(waveform)[None])[1][0]  # (K, n)

    @classmethod
    def from_hparams(cls, hparams: dict) -> GenreClassifier:
        """The classifier from a LightningModule's hyperparameters (training-only ones are ignored)."""
        params = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in hparams.items() if k in params and k != "self"})


class WindowClassifier(GenreClassifier):
    """The CNN family: `GenreCNN` on half-overlapping `window_seconds` windows of the front end's features.

    Args: genres (class names in label order), frontend (its settings), window_seconds (input length), and
    GenreCNN's widths, kernel_size, dropout, band_norm (per-band normalisation of the log-mel) and stem (2-D
    filters shared along frequency; 0, none, is what checkpoints from before the option mean).
    """

    inputs = "windows"

    def __init__(self, genres: list[str], frontend: FrontEndConfig | dict | None = None, window_seconds: float = 3.0,
                 widths: tuple[int, ...] = (512, 256, 128, 64), kernel_size: int = 3, dropout: float = 0.3,
                 band_norm: Literal["none", "mean", "instance"] = "mean", stem: int = 0):
        super().__init__(genres)
        self.frontend = FrontEnd(frontend)
        self.window = self.frontend.config.window_frames(window_seconds)
        c = self.frontend.config
        self.net = GenreCNN(c.channels, len(genres), tuple(widths), kernel_size, dropout, band_norm, c.n_mels, stem)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Windows (B, C, W) -> logits (B, n)."""
        return self.net(x)

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        b, k = x.shape[:2]  # x: (B, K, C, W)
        return self.net(x.flatten(0, 1)).view(b, k, -1)  # (B, K, n)

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        feats = self.frontend(waveform.to(self.frontend.hann.device)[None])[0]  # (C, T)
        return track_windows(feats, self.window)  # (K, C, W)


class VectorClassifier(GenreClassifier):
    """`DenseNet` on a standardised per-clip vector; the scaler (training-split mean and std) is saved with
    the weights as buffers. Subclasses say where the vector comes from."""

    def __init__(self, genres: list[str], in_features: int, widths: tuple[int, ...] = (512, 256, 128, 64),
                 dropout: float = 0.3):
        super().__init__(genres)
        self.net = DenseNet(in_features, len(genres), tuple(widths), dropout)
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))

    def set_scaler(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The training split's per-feature mean and standard deviation, (D,) each."""
        self.mean.copy_(mean.float())
        self.std.copy_(std.clamp_min(1e-6).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw vectors (B, D) -> logits (B, n)."""
        return self.net((x - self.mean) / self.std)

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)[:, None]  # (B, 1, n): one "window", the whole clip


class HandcraftedClassifier(VectorClassifier):
    """The dense baseline: the hand-crafted vector of the track's centred `clip_seconds` (as in training).

    Args: genres, frontend (its settings), clip_seconds, and DenseNet's widths and dropout.
    """

    inputs = "handcrafted"

    def __init__(self, genres: list[str], frontend: FrontEndConfig | dict | None = None, clip_seconds: float = 30.0,
                 widths: tuple[int, ...] = (512, 256, 128, 64), dropout: float = 0.3):
        super().__init__(genres, HANDCRAFTED_SIZE, widths, dropout)
        self.frontend = FrontEnd(frontend)
        self.clip_samples = int(round(clip_seconds * self.frontend.config.sample_rate))

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        from genre_cnn.audio import fix_length

        y = fix_length(waveform.float().cpu().numpy(), self.clip_samples)  # (clip_samples,), as in training
        _, hand = extract(y, self.frontend)  # (D,)
        return torch.from_numpy(hand).to(self.mean.device)  # (D,)


EMBEDDING_PARTS = {"penultimate": slice(0, 200), "tags": slice(200, EMBEDDING_SIZE), "both": slice(0, EMBEDDING_SIZE)}


class MusicnnClassifier(VectorClassifier):
    """Transfer learning: the pretrained musicnn tagger (frozen; Pons & Serra 2019) turns each 3-s patch into an
    embedding (its 50 tag logits and/or its 200-unit penultimate layer); `DenseNet` classifies the mean embedding of
    the clip's patches, as in training and evaluation; the whole track is its one "window" (`window_probs` (1, n)), so
every engine and every caller averaging windows gives the answer that was measured.

    Args: genres, embedding ("tags" (50 logits), "penultimate" (200) or "both" (250)), and DenseNet's widths and
    dropout. The backbone's weights travel in the checkpoint (loaded from the musicnn wheel for a new model).
    """

    inputs = "musicnn"

    def __init__(self, genres: list[str], embedding: Literal["tags", "penultimate", "both"] = "tags",
                 widths: tuple[int, ...] = (512, 256, 128, 64), dropout: float = 0.5):
        self.part = EMBEDDING_PARTS[embedding]
        super().__init__(genres, self.part.stop - self.part.start, widths, dropout)
        self.frontend = FrontEnd(FRONTEND)
        self.backbone = Musicnn().eval().requires_grad_(False)

    def train(self, mode: bool = True) -> MusicnnClassifier:
        super().train(mode)
        self.backbone.eval()  # frozen: its batch norms keep their pretrained statistics
        return self

    def set_scaler(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-dimension mean and std (EMBEDDING_SIZE,) of the training clips' embeddings."""
        super().set_scaler(mean[self.part], std[self.part])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Clip embeddings (B, EMBEDDING_SIZE) -> logits (B, n)."""
        return super().forward(x[:, self.part])

    def patches(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono waveform (samples,) at 16 kHz -> embeddings of its 3-s patches (P, EMBEDDING_SIZE)."""
        wave = waveform.to(self.frontend.hann.device)[None]  # (1, samples)
        return patch_embeddings(self.backbone, self.frontend, wave)[0]  # (P, 250)

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.patches(waveform).mean(dim=0)  # (250,): the clip's mean embedding, as cached for training


if __name__ == "__main__":
    from genre_cnn.audio import GTZAN_GENRES

    for family, settings in ((WindowClassifier, {"stem": 8}), (HandcraftedClassifier, {}), (MusicnnClassifier, {})):
        model = family(list(GTZAN_GENRES), **settings)  # as train.py builds them by default
        print(f"{family.__name__} ({family.inputs}): {sum(p.numel() for p in model.parameters()):,} parameters")
