"""The dense baseline: the write-up's dense network on the hand-crafted vector of a clip.

    python -m genre_cnn.models.families         # lists every family with its size

The vector (spectral centroid, bandwidth, roll-off, zero-crossing rate, RMS, MFCCs, chroma, ...: see
genre_cnn.audio.features) is computed with librosa, so this family does not export to ONNX. Training
(genre_cnn.training.lit.LitDense) and prediction both take the track's centred `clip_seconds`.
"""

from __future__ import annotations

import torch

from genre_cnn.audio.features import HANDCRAFTED_SIZE, SpectralFeatures, extract
from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig
from genre_cnn.models.families.base import VectorClassifier
from genre_cnn.models.networks import WIDTHS


class HandcraftedClassifier(VectorClassifier):
    """`DenseNet` on the standardised hand-crafted vector of the track's centred `clip_seconds`.

    Args: genres, frontend (its settings), clip_seconds, and DenseNet's widths and dropout.
    """

    cached = "hand"  # the feature cache's hand-crafted vector (D,) of each clip

    @staticmethod
    def features(frontend: FrontEndConfig) -> SpectralFeatures:
        """The feature cache's extractor for this family."""
        return SpectralFeatures(frontend)

    def __init__(self, genres: list[str], frontend: FrontEndConfig | dict | None = None, clip_seconds: float = 30.0,
                 widths: tuple[int, ...] = WIDTHS, dropout: float = 0.3):
        super().__init__(genres, HANDCRAFTED_SIZE, widths, dropout)
        self.frontend = FrontEnd(frontend)
        self.clip_samples = int(round(clip_seconds * self.frontend.config.sample_rate))

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        from genre_cnn.audio.decode import fix_length

        y = fix_length(waveform.float().cpu().numpy(), self.clip_samples)  # (clip_samples,), as in training
        _, hand = extract(y, self.frontend)  # (D,)
        return torch.from_numpy(hand).to(self.mean.device)  # (D,)

