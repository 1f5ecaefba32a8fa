"""A fourth model family in one module, as a plugin would add one: a toy network on each window's mean frame.

    from genre_cnn.models import families
    families.register(FAMILY)       # then: python train.py --config configs/demo.yaml --config tests/fixtures/toy.yaml

Everything the family is lives here: its classifier (settings, ranges, features, inputs), and its record. Nothing
else of genre_cnn changes to train, test, export, choose and predict with it (tests/test_families.py does).
"""

from __future__ import annotations

import torch
from torch import nn

from genre_cnn.audio.features import SpectralFeatures
from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig, track_windows
from genre_cnn.bounds import SECONDS
from genre_cnn.models.families import Family
from genre_cnn.models.families.base import FrontEndInput, GenreClassifier


class ToyClassifier(FrontEndInput, GenreClassifier):
    """Each window's mean log-mel + chroma frame through one hidden layer.

    Args:
        genres: class names in label order.
        frontend: the front end's settings.
        window_seconds: input length.
        hidden: units of its hidden layer.
    """

    inputs = "windows"
    cached = "spec"
    bounds = {"window_seconds": SECONDS["window_seconds"], "hidden": (1, 1024)}

    @staticmethod
    def features(frontend: FrontEndConfig) -> SpectralFeatures:
        return SpectralFeatures(frontend)

    def __init__(self, genres: list[str], frontend: FrontEndConfig | dict | None = None, window_seconds: float = 3.0,
                 hidden: int = 16):
        super().__init__(genres)
        self.frontend = FrontEnd(frontend)
        self.window = self.frontend.config.window_frames(window_seconds)
        self.net = nn.Sequential(nn.Linear(self.frontend.config.channels, hidden), nn.ReLU(),
                                 nn.Linear(hidden, len(genres)))

    @property
    def window_samples(self) -> int:
        return (self.window - 1) * self.frontend.config.hop_length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.mean(dim=-1) / 10)  # (B, C, W) -> (B, n)

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x.flatten(0, 1)).view(x.shape[0], x.shape[1], -1)  # (B, K, C, W) -> (B, K, n)

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        return track_windows(self.frontend(waveform[None])[0], self.window)  # (K, C, W)


FAMILY = Family("toy", f"{__name__}:ToyClassifier", exportable=True, preference=50)
