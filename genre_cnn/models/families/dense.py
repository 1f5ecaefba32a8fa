"""The dense baseline: the write-up's dense network on the hand-crafted vector of a clip.

    python -m genre_cnn.models.families         # lists every family with its size
    python train.py --models [dense] --dense.widths [64]      # its settings are HandcraftedClassifier's

The vector (spectral centroid, bandwidth, roll-off, zero-crossing rate, RMS, MFCCs, chroma, ...: see
genre_cnn.audio.features) is computed with librosa, so this family does not export to ONNX. Training and
prediction both take the track's centred `clip_seconds`.
"""

from __future__ import annotations

import torch

from genre_cnn.audio.features import HANDCRAFTED_SIZE, SpectralFeatures, extract
from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig
from genre_cnn.bounds import SECONDS, widths
from genre_cnn.models.families.base import FrontEndInput, VectorClassifier
from genre_cnn.models.networks import WIDTHS


class HandcraftedClassifier(FrontEndInput, VectorClassifier):
    """`DenseNet` on the standardised hand-crafted vector of the track's centred `clip_seconds`.

    Args:
        genres: class names in label order.
        frontend: the front end's settings (train.py's `--frontend` group).
        clip_seconds: the centred excerpt heard (train.py links it to `--data.features.clip_seconds`).
        widths: units of each dense layer (none: a linear classifier).
        dropout: after each dense layer.
    """

    cached = "hand"  # the feature cache's hand-crafted vector (D,) of each clip
    bounds = {"clip_seconds": SECONDS["clip_seconds"], "widths": widths, "dropout": (0.0, 1.0)}

    @staticmethod
    def features(frontend: FrontEndConfig) -> SpectralFeatures:
        """The feature cache's extractor for this family."""
        return SpectralFeatures(frontend)

    def __init__(self, genres: list[str], frontend: FrontEndConfig | dict | None = None, clip_seconds: float = 30.0,
                 widths: tuple[int, ...] = WIDTHS, dropout: float = 0.3):
        super().__init__(genres, HANDCRAFTED_SIZE, widths, dropout)
        self.frontend = FrontEnd(frontend)
        self._clip_samples = int(round(clip_seconds * self.frontend.config.sample_rate))

    @property
    def clip_samples(self) -> int:
        return self._clip_samples

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        from genre_cnn.audio.decode import fix_length

        y = fix_length(waveform.float().cpu().numpy(), self.clip_samples)  # (clip_samples,), as in training
        _, hand = extract(y, self.frontend)  # (D,)
        return torch.from_numpy(hand).to(self.mean.device)  # (D,)
