"""Transfer learning: a dense genre head on the embeddings of the pretrained musicnn tagger (Pons & Serra 2019).

    python -m genre_cnn.models.families         # lists every family with its size

The frozen tagger (genre_cnn.models.musicnn, the MSD_musicnn weights of the musicnn wheel) turns each 3-s patch into
its 50 tag logits and 200-unit penultimate layer; the head classifies the mean embedding of a clip's patches,
in training (genre_cnn.training.lit.LitMusicnn, on cached embeddings) and in prediction alike.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from genre_cnn.audio.frontend import FrontEnd
from genre_cnn.models.families.base import TRACK_BATCH, VectorClassifier, in_batches
from genre_cnn.models.musicnn import (
    EMBEDDING_SIZE,
    FRONTEND,
    PATCH_FRAMES,
    Musicnn,
    MusicnnEmbeddings,
    cut_patches,
    embed_patches,
    patch_embeddings,
)
from genre_cnn.models.networks import WIDTHS

EMBEDDING_PARTS = {"penultimate": slice(0, 200), "tags": slice(200, EMBEDDING_SIZE), "both": slice(0, EMBEDDING_SIZE)}


class MusicnnClassifier(VectorClassifier):
    """`DenseNet` on the mean embedding of the clip's patches; the whole track is its one "window"
    (`window_probs` (1, n)), so every engine and every caller averaging windows gives the answer that was measured.

    Args: genres, embedding ("tags" (50 logits), "penultimate" (200) or "both" (250)), DenseNet's widths and
    dropout, and members (more than one: an ensemble of dense heads whose logits are averaged).
    The backbone's weights travel in the checkpoint (loaded from the musicnn wheel for a new model).
    """

    window = PATCH_FRAMES  # what one input of the backbone spans, in frames (non-overlapping patches)
    cached = "embedding"  # the feature cache's embeddings (P, 250) of each clip's patches

    @staticmethod
    def features(frontend: object) -> MusicnnEmbeddings:
        """The feature cache's extractor: the tagger's own front end (16 kHz log-mel), whatever the run's."""
        return MusicnnEmbeddings()

    @staticmethod
    def pool(cached: np.ndarray) -> np.ndarray:
        """Cached patch embeddings (N, P, D) -> each clip's mean embedding (N, D), this model's input."""
        return cached.mean(axis=1)

    def __init__(self, genres: list[str], embedding: Literal["tags", "penultimate", "both"] = "tags",
                 widths: tuple[int, ...] = WIDTHS, dropout: float = 0.5, members: int = 1):
        self.part = EMBEDDING_PARTS[embedding]
        super().__init__(genres, self.part.stop - self.part.start, widths, dropout, members)
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
        return patch_embeddings(self.backbone, self.frontend, wave)[0]  # (P, 250), as the feature cache computes

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.patches(waveform).mean(dim=0)  # (250,): the clip's mean embedding, as cached for training

    @torch.no_grad()
    def track_probs(self, waveform: torch.Tensor, batch: int = TRACK_BATCH,
                    check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The track's probabilities (n,) from its mean patch embedding, and each patch's own (P, n)."""
        patches = cut_patches(self.frontend(waveform.to(self.frontend.hann.device)[None]))[0]  # (P, 187, 96)
        emb = in_batches(patches, lambda x: embed_patches(self.backbone, x), batch, check)  # (P, 250)
        return self.calibrated(self(emb.mean(dim=0, keepdim=True)))[0].cpu(), self.calibrated(self(emb)).cpu()

