"""What every model family's classifier offers: plain `nn.Module`s (no Lightning) from a waveform to probabilities.

    from genre_cnn.models.families.base import GenreClassifier     # subclassed by each family module; no CLI

Each classifier carries its front end, so training and prediction cannot drift apart, and says in `inputs`
what its training loaders yield: "windows" (random windows of the cached spectrogram; a track is every
window, its probabilities their mean, CLMR-style track-level evaluation) or "vectors" (one per clip).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from genre_cnn.audio.frontend import FrontEndConfig
from genre_cnn.models.networks import WIDTHS, DenseEnsemble, DenseNet

TRACK_BATCH = 16  # windows or patches per forward pass when a whole track is shown window by window


def in_batches(inputs: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor], batch: int,
               check: Callable[[], None] | None = None) -> torch.Tensor:
    """`run` over `inputs` (N, ...) `batch` rows at a time, concatenated; `check()` after every batch (it may
    raise to stop)."""
    out = []
    for start in range(0, len(inputs), batch):
        out.append(run(inputs[start:start + batch]))
        if check is not None:
            check()
    return torch.cat(out)


class GenreClassifier(nn.Module):
    """Logits for the family's training input, clip and window probabilities for a batch of evaluation inputs,
    and the same for a whole waveform."""

    inputs: ClassVar[Literal["windows", "vectors"]]
    cached: ClassVar[str]  # which array of the feature cache (`features`) the training inputs come from

    @staticmethod
    def features(frontend: FrontEndConfig):
        """The front end's settings -> the feature cache's extractor (genre_cnn.data.cache) this family trains on."""
        raise NotImplementedError

    @staticmethod
    def pool(cached: np.ndarray) -> np.ndarray:
        """Cached rows (N, ...) -> training inputs (N, ...); as cached unless a family says otherwise."""
        return cached

    def __init__(self, genres: list[str]):
        super().__init__()
        self.genres = list(genres)
        # divides every window's logits before the softmax (genre_cnn.training.calibration); 1 until fitted
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

    @torch.no_grad()
    def track_probs(self, waveform: torch.Tensor, batch: int = TRACK_BATCH,
                    check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """What `predict_waveform` and `window_probs` give, ((n,), (K, n)) on the CPU, with the network run on at
        most `batch` windows at a time, so that its activations take the same memory for a track of any length
        (the web page and the plots show every window of a file a user hands over; the front end still sees the
        whole waveform, which they cap); `check()` runs after each batch and may raise to stop."""
        window_probs = self.window_probs(waveform).cpu()  # (1, n): one clip-long vector
        if check is not None:
            check()
        return window_probs.mean(dim=0), window_probs

    def calibrated(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (..., n) -> probabilities (..., n), divided by the temperature as every answer is."""
        return (logits / self.temperature).softmax(-1)

    @classmethod
    def from_hparams(cls, hparams: dict) -> GenreClassifier:
        """The classifier from hyperparameters (those its `__init__` does not take are ignored)."""
        params = inspect.signature(cls.__init__).parameters
        return cls(**{k: v for k, v in hparams.items() if k in params and k != "self"})


class VectorClassifier(GenreClassifier):
    """`DenseNet` (or a `DenseEnsemble` of `members` of them) on a standardised per-clip vector; the scaler
    (training-split mean and std) is saved with the weights as buffers. Subclasses say where the vector comes from."""

    inputs = "vectors"

    def __init__(self, genres: list[str], in_features: int, widths: tuple[int, ...] = WIDTHS, dropout: float = 0.3,
                 members: int = 1):
        super().__init__(genres)
        self.net = (DenseNet(in_features, len(genres), tuple(widths), dropout) if members == 1
                    else DenseEnsemble(in_features, len(genres), tuple(widths), dropout, members))
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
