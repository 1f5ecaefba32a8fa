"""Transfer learning: a dense genre head on the embeddings of the pretrained musicnn tagger (Pons & Serra 2019).

    python -m genre_cnn.models.families         # lists every family with its size
    python train.py --models [musicnn] --musicnn.embedding both --musicnn.widths []   # MusicnnClassifier's settings

The frozen tagger (genre_cnn.models.musicnn, the MSD_musicnn weights of the musicnn wheel) turns each 3-s patch into
its 50 tag logits and 200-unit penultimate layer; the head classifies the mean embedding of a clip's patches, in
training (on cached embeddings) and in prediction alike. The tagger's weights
are referenced by id and digest (`backbone`), not saved with the head: a checkpoint holds the head alone, and the
weights are loaded from the wheel once per process. Checkpoints of earlier versions, which carry the tagger's
weights, load and answer with those.

With `openset` (`--musicnn.openset true`), training also fits an open-set detector beside the head
(genre_cnn.models.openset: is the input music of the kind the head learnt, other music, or no music?) on the same
clip-mean embedding; it is saved in the checkpoint (`detector.*` buffers, rebuilt from `openset_references`, the
number of training clips its familiarity refers to) and every prediction then gives its verdict. Off by default:
its rule turns away 1 in 40 of the training music by design, and it needs non-music recordings to tell speech and
noise from music (`--data.negatives`); the ready model's recipe turns it on with them.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from genre_cnn.audio.frontend import FrontEnd
from genre_cnn.bounds import widths
from genre_cnn.models.families.base import TRACK_BATCH, FrontEndInput, VectorClassifier, in_batches
from genre_cnn.models.musicnn import (
    EMBEDDING_SIZE,
    FRONTEND,
    MSD_MUSICNN,
    PATCH_FRAMES,
    Musicnn,
    MusicnnEmbeddings,
    backbone_state,
    cut_patches,
    embed_patches,
    patch_embeddings,
)
from genre_cnn.models.networks import WIDTHS
from genre_cnn.models.openset import OpenSetDetector

MAX_REFERENCES = 2**20  # training clips a detector's familiarity may refer to

EMBEDDING_PARTS = {"penultimate": slice(0, 200), "tags": slice(200, EMBEDDING_SIZE), "both": slice(0, EMBEDDING_SIZE)}


def known_backbone(value: object) -> str | None:
    """The `backbone` rule: a reference this version knows."""
    return None if value == MSD_MUSICNN else f"must be {MSD_MUSICNN}, got {value!r:.60}"


def flag(value: object) -> str | None:
    """The rule of a yes/no setting."""
    return None if isinstance(value, bool) else f"must be true or false, got {value!r:.40}"


class MusicnnClassifier(FrontEndInput, VectorClassifier):
    """`DenseNet` on the mean embedding of the clip's patches; the whole track is its one "window"
    (`window_probs` (1, n)), so every engine and every caller averaging windows gives the answer that was measured.

    Args:
        genres: class names in label order.
        embedding: what the head sees of each clip: "tags" (the 50 tag logits), "penultimate" (200) or "both" (250).
        widths: units of each dense layer (none: a linear head).
        dropout: after each dense layer.
        members: more than one: an ensemble of dense heads, each trained on its own, their logits averaged.
        backbone: the pretrained tagger's weights, "MODEL@sha256:DIGEST" (genre_cnn.models.musicnn.backbone_state).
        openset: after the head, fit the open-set detector (genre_cnn.models.openset) on the training clips and the
            run's non-music recordings (`--data.negatives`, if any), and answer with its verdict.
        openset_keep: the detector's rule: the share of the training music, scored out of fold, it lets through.
        openset_references: set by training once the detector is fitted (its training clips; 0: none yet), not an
            option: what rebuilds the detector from a checkpoint.
    """

    window = PATCH_FRAMES  # what one input of the backbone spans, in frames (non-overlapping patches)
    cached = "embedding"  # the feature cache's embeddings (P, 250) of each clip's patches
    bounds = {"widths": widths, "dropout": (0.0, 1.0), "members": (1, 16), "backbone": known_backbone,
              "openset": flag, "openset_keep": (0.5, 1.0), "openset_references": (0, MAX_REFERENCES)}
    fitted = ("openset_references",)  # set by training, never an option
    # what a checkpoint's detector buffers may hold (genre_cnn.models.checkpoint checks them before loading); fitting
    # floors std at 1e-6, which float32 stores just below 1e-6
    value_bounds = {"detector.std": (1e-7, float("inf")), "detector.references": (0.0, float("inf")),
                    "detector.max_distance": (0.0, float("inf")), "detector.music_floor": (0.0, 1.0)}

    @staticmethod
    def features(frontend: object) -> MusicnnEmbeddings:
        """The feature cache's extractor: the tagger's own front end (16 kHz log-mel), whatever the run's."""
        return MusicnnEmbeddings()

    @staticmethod
    def pool(cached: np.ndarray) -> np.ndarray:
        """Cached patch embeddings (N, P, D) -> each clip's mean embedding (N, D), this model's input."""
        return cached.mean(axis=1)

    def __init__(self, genres: list[str], embedding: Literal["tags", "penultimate", "both"] = "tags",
                 widths: tuple[int, ...] = WIDTHS, dropout: float = 0.5, members: int = 1,
                 backbone: str = MSD_MUSICNN, openset: bool = False, openset_keep: float = 0.975,
                 openset_references: int = 0):
        self.part = EMBEDDING_PARTS[embedding]
        super().__init__(genres, self.part.stop - self.part.start, widths, dropout, members)
        self.frontend = FrontEnd(FRONTEND)
        self.backbone = Musicnn().eval().requires_grad_(False)
        self.backbone_reference, self.backbone_loaded = backbone, False
        self.register_state_dict_post_hook(_without_backbone)  # referenced, not saved
        # beside the head, on the same clip-mean embedding (B, 250); None until fitted, or without `openset`
        self.detector = OpenSetDetector(len(genres), openset_references) if openset and openset_references else None

    def set_detector(self, detector: OpenSetDetector) -> None:
        """Attaches a fitted detector (genre_cnn.models.openset.fit_detector on the clip-mean embeddings, all 250
        columns) and records what rebuilds it in `hparams`."""
        self.detector = detector.to(self.temperature.device)
        self.hparams = {**getattr(self, "hparams", {}), "openset": True,
                        "openset_references": int(detector.references.numel())}

    @classmethod
    def legacy_state(cls) -> dict[str, tuple[int, ...]]:
        """Checkpoints of earlier versions carry the tagger's weights (`backbone.*`); they load and are used."""
        with torch.device("meta"):
            return {f"backbone.{k}": tuple(v.shape) for k, v in Musicnn().state_dict().items()}

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args) -> None:
        own = [f"{prefix}backbone.{k}" for k in self.backbone.state_dict()]
        if not any(k in state_dict for k in own):  # a checkpoint of this version: the referenced weights
            weights = {**self.backbone.state_dict(), **backbone_state(self.backbone_reference)}  # BN step counts too
            state_dict.update({f"{prefix}backbone.{k}": v for k, v in weights.items()})
        self.backbone_loaded = True
        super()._load_from_state_dict(state_dict, prefix, *args)

    def load_backbone(self) -> None:
        """Loads the referenced weights into a model built without a checkpoint (done once, on first use)."""
        if not self.backbone_loaded:
            self.backbone.load_state_dict(backbone_state(self.backbone_reference))
            self.backbone_loaded = True

    @property
    def window_samples(self) -> int:
        return (self.window - 1) * self.frontend.config.hop_length  # one 3-s patch

    def train(self, mode: bool = True) -> MusicnnClassifier:
        super().train(mode)
        self.backbone.eval()  # frozen: its batch norms keep their pretrained statistics
        return self

    def set_scaler(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Per-dimension mean and std (EMBEDDING_SIZE,) of the training clips' embeddings."""
        super().set_scaler(mean[self.part], std[self.part])

    def select(self, x: torch.Tensor) -> torch.Tensor:
        """Clip embeddings (B, EMBEDDING_SIZE) -> the part the head sees (B, D)."""
        return x[:, self.part]

    def patches(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono waveform (samples,) at 16 kHz -> embeddings of its 3-s patches (P, EMBEDDING_SIZE)."""
        self.load_backbone()
        wave = waveform.to(self.frontend.hann.device)[None]  # (1, samples)
        return patch_embeddings(self.backbone, self.frontend, wave)[0]  # (P, 250), as the feature cache computes

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.patches(waveform).mean(dim=0)  # (250,): the clip's mean embedding, as cached for training

    @torch.no_grad()
    def track_probs(self, waveform: torch.Tensor, batch: int = TRACK_BATCH,
                    check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """The track's probabilities (n,) from its mean patch embedding, and each patch's own (P, n)."""
        self.load_backbone()
        patches = cut_patches(self.frontend(waveform.to(self.frontend.hann.device)[None]))[0]  # (P, 187, 96)
        emb = in_batches(patches, lambda x: embed_patches(self.backbone, x), batch, check)  # (P, 250)
        return self.calibrated(self(emb.mean(dim=0, keepdim=True)))[0].cpu(), self.calibrated(self(emb)).cpu()


def _without_backbone(module: MusicnnClassifier, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """state_dict hook: the frozen tagger's weights are referenced by `backbone`, not saved."""
    for key in [k for k in state_dict if k.startswith(f"{prefix}backbone.")]:
        del state_dict[key]
