"""The CNN family: the write-up's convolutional network on half-overlapping windows of log-mel + chroma.

    python -m genre_cnn.models.families         # lists every family with its size
    python train.py --models [cnn] --cnn.widths [256,128] --cnn.stem 8    # its settings are WindowClassifier's

Training (with the augmentation of window inputs: pitch shifts, gain, SpecAugment masks, mixup) draws random
`window_seconds` windows from each clip's cached spectrogram; a track is every window along it, its probabilities
their mean (CLMR-style track-level evaluation).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch

from genre_cnn.audio.features import SpectralFeatures
from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig, track_windows
from genre_cnn.bounds import SECONDS, widths
from genre_cnn.models.families.base import TRACK_BATCH, FrontEndInput, GenreClassifier, in_batches
from genre_cnn.models.networks import WIDTHS, GenreCNN


class WindowClassifier(FrontEndInput, GenreClassifier):
    """`GenreCNN` on half-overlapping `window_seconds` windows of the front end's features.

    Args:
        genres: class names in label order.
        frontend: the front end's settings (train.py's `--frontend` group).
        window_seconds: input length (train.py links it to `--data.window_seconds`).
        widths: channels of each convolutional block (at least one).
        kernel_size: of the 1-D convolutions.
        dropout: before the output layer (half of it after each block).
        band_norm: per-band normalisation of the log-mel ("mean" removes each band's mean over the window, the
            recording's colour; see GenreCNN and BENCHMARKS.md).
        stem: 2-D filters shared along frequency before the 1-D blocks (0: none).
    """

    inputs = "windows"
    cached = "spec"  # the feature cache's log-mel + chroma (C, T) of each clip
    bounds = {"window_seconds": SECONDS["window_seconds"], "widths": widths, "kernel_size": (1, 63),
              "dropout": (0.0, 1.0), "stem": (0, 64)}
    legacy = {"stem": 0}  # runs from before the 2-D stem had none

    @staticmethod
    def features(frontend: FrontEndConfig) -> SpectralFeatures:
        """The feature cache's extractor for this family."""
        return SpectralFeatures(frontend)

    def __init__(self, genres: list[str], frontend: FrontEndConfig | dict | None = None, window_seconds: float = 3.0,
                 widths: tuple[int, ...] = WIDTHS, kernel_size: int = 3, dropout: float = 0.3,
                 band_norm: Literal["none", "mean", "instance"] = "mean", stem: int = 8):
        super().__init__(genres)
        self.frontend = FrontEnd(frontend)
        self.window = self.frontend.config.window_frames(window_seconds)
        c = self.frontend.config
        self.net = GenreCNN(c.channels, len(genres), tuple(widths), kernel_size, dropout, band_norm, c.n_mels, stem)

    @property
    def window_samples(self) -> int:
        return (self.window - 1) * self.frontend.config.hop_length  # 1 + samples // hop == window frames

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Windows (B, C, W) -> logits (B, n)."""
        return self.net(x)

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        b, k = x.shape[:2]  # x: (B, K, C, W)
        return self.net(x.flatten(0, 1)).view(b, k, -1)  # (B, K, n)

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        feats = self.frontend(waveform.to(self.frontend.hann.device)[None])[0]  # (C, T)
        return track_windows(feats, self.window)  # (K, C, W)

    @torch.no_grad()
    def track_probs(self, waveform: torch.Tensor, batch: int = TRACK_BATCH,
                    check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        windows = self.track_inputs(waveform)  # (K, C, W)
        window_probs = in_batches(windows, lambda x: self.calibrated(self(x)), batch, check).cpu()  # (K, n)
        return window_probs.mean(dim=0), window_probs
