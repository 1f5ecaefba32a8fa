"""Knowing what the model does not know: is an input music of the kind the genre head learnt, other music, or no music?

    from genre_cnn.models.openset import fit_detector, verdict_names
    detector = fit_detector(music, labels, negatives)       # clip embeddings (N, 250), genres (N,), non-music (K, 250)
    familiarity, music_probability, verdict = detector(x)   # clip embeddings (B, 250) -> (B,), (B,), (B,) int64
    verdict_names(verdict)                                  # ["music", "not music", ...]

The detector sits beside the genre head on the same input, the clip's mean musicnn embedding (genre_cnn.models.musicnn:
the 200-unit penultimate layer and the 50 tag logits), and holds only buffers, so it travels in the model's state dict
and exports to ONNX with it (plain matrix arithmetic and comparisons). Two scores:

- **familiarity**: how typical the clip is of the training music. Its distance is the smallest class-conditional
  Mahalanobis distance to a genre's mean under one covariance shared by the genres (Lee et al., "A Simple Unified
  Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks", NeurIPS 2018), the covariance shrunk
  towards a scaled identity by the Ledoit-Wolf rule (more dimensions than clips). Familiarity is that distance as a
  conformal p-value: the share of the training clips (each scored by a detector fitted without it, `folds`-fold) that
  lie at least as far, so 0.3 reads "30% of the music it learnt from is less typical than this". A clip is familiar
  when its distance is within the `keep` quantile of those out-of-fold distances (keep 0.975: 97.5% of the training
  music passes).
- **music probability**: a logistic regression of music (the training clips) against non-music recordings on the
  standardised embedding. It names what an unfamiliar input is; with `music_floor` > 0 it also gates (see below).

Verdict (`VERDICTS`): 0 "music" (familiar, and music probability >= music_floor), 1 "unfamiliar" (rejected, but music
probability >= 0.5: music unlike the training genres), 2 "not music" (rejected, music probability < 0.5). Only
"music" should get a genre; the split of the rest is a hint (BENCHMARKS.md: most rejected game music reads "not music").

In a model: a submodule beside the head (its buffers then travel in the checkpoint's state dict under its name), rebuilt
by `OpenSetDetector(classes, references, part)` before `load_state_dict`; in the exported graph, `detector(embedding)`
on the clip-mean embedding that the head also reads gives three more outputs (familiarity, music probability, verdict).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

VERDICTS = ("music", "unfamiliar", "not music")
PARTS = {"penultimate": (0, 200), "tags": (200, 250), "both": (0, 250)}  # columns of the clip embedding


class OpenSetDetector(nn.Module):
    """Familiarity, music probability and verdict of clip embeddings; every number is a buffer set by `fit_detector`.

    Args: classes (the genres), references (how many out-of-fold training distances are kept), part ("both",
    "penultimate" or "tags": which columns of the clip embedding it reads).
    """

    def __init__(self, classes: int = 10, references: int = 1, part: str = "both"):
        super().__init__()
        start, stop = PARTS[part]
        self.part = part
        self.columns = slice(start, stop)
        width = stop - start
        self.register_buffer("mean", torch.zeros(width))  # scaler of the training music (D,)
        self.register_buffer("std", torch.ones(width))
        self.register_buffer("class_means", torch.zeros(classes, width))  # (n, D), standardised
        self.register_buffer("precision", torch.eye(width))  # (D, D): inverse of the shared, shrunk covariance
        self.register_buffer("references", torch.zeros(references))  # sorted out-of-fold distances of training music
        self.register_buffer("max_distance", torch.tensor(float("inf")))  # familiar when distance <= this
        self.register_buffer("music_weight", torch.zeros(width))  # logistic regression, music = 1 (D,)
        self.register_buffer("music_bias", torch.tensor(0.0))
        self.register_buffer("music_floor", torch.tensor(0.0))  # verdict "music" also needs music probability >= this

    def standardise(self, x: torch.Tensor) -> torch.Tensor:
        """Clip embeddings (B, 250) -> the detector's standardised columns (B, D)."""
        return (x[:, self.columns] - self.mean) / self.std

    def distance(self, x: torch.Tensor) -> torch.Tensor:
        """Clip embeddings (B, 250) -> the smallest Mahalanobis distance to a genre mean (B,)."""
        diff = self.standardise(x)[:, None, :] - self.class_means[None]  # (B, n, D)
        squared = ((diff @ self.precision) * diff).sum(-1)  # (B, n)
        return squared.min(dim=1).values.clamp_min(0).sqrt()  # (B,)

    def familiarity(self, distance: torch.Tensor) -> torch.Tensor:
        """Distances (B,) -> conformal p-values (B,) in (0, 1]: (1 + #references >= d) / (1 + #references)."""
        farther = (self.references[None, :] >= distance[:, None]).to(distance.dtype).sum(1)  # (B,)
        return (farther + 1) / (self.references.numel() + 1)

    def music_probability(self, x: torch.Tensor) -> torch.Tensor:
        """Clip embeddings (B, 250) -> P(music) of the logistic regression (B,)."""
        return torch.sigmoid(self.standardise(x) @ self.music_weight + self.music_bias)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Clip embeddings (B, 250) -> familiarity (B,), music probability (B,), verdict (B,) int64 (`VERDICTS`)."""
        distance = self.distance(x)
        music = self.music_probability(x)
        accepted = (distance <= self.max_distance) & (music >= self.music_floor)  # (B,)
        verdict = torch.where(accepted, 0, torch.where(music >= 0.5, 1, 2))  # (B,)
        return self.familiarity(distance), music, verdict.to(torch.int64)


def verdict_names(verdict: torch.Tensor | np.ndarray) -> list[str]:
    """Verdict codes (B,) -> their words, e.g. ["music", "not music"]."""
    return [VERDICTS[int(v)] for v in np.asarray(verdict).reshape(-1)]


def fold_of(labels: np.ndarray, folds: int) -> np.ndarray:
    """Deterministic stratified folds (N,): the i-th clip of each genre, in the given order, goes to fold i % folds."""
    out = np.zeros(len(labels), dtype=np.int64)
    for c in np.unique(labels):
        rows = np.flatnonzero(labels == c)
        out[rows] = np.arange(len(rows)) % folds
    return out


def gaussian_fit(z: np.ndarray, labels: np.ndarray, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Standardised embeddings (N, D), genres (N,) -> class means (n, D) and the precision (D, D) of the within-genre
    covariance shared by the genres, Ledoit-Wolf shrunk (a genre without clips keeps a mean of +inf: never nearest)."""
    from sklearn.covariance import ledoit_wolf

    means = np.full((classes, z.shape[1]), np.inf)
    centred = np.zeros_like(z)
    for c in range(classes):
        rows = labels == c
        if rows.any():
            means[c] = z[rows].mean(0)
            centred[rows] = z[rows] - means[c]
    cov, _ = ledoit_wolf(centred, assume_centered=True)  # (D, D)
    return means, np.linalg.inv(cov)


def _distances(z: np.ndarray, means: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """(N, D) -> (N,) smallest Mahalanobis distance, the same arithmetic as `OpenSetDetector.distance` in float64."""
    finite = np.isfinite(means).all(1)
    diff = z[:, None, :] - means[None, finite]  # (N, n', D)
    return np.sqrt(np.maximum(np.einsum("bnd,de,bne->bn", diff, precision, diff).min(1), 0))


def _logistic(z_music: np.ndarray, z_other: np.ndarray) -> tuple[np.ndarray, float]:
    """Weights (D,) and bias of a class-balanced L2 logistic regression, music = 1 (lbfgs: deterministic)."""
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([z_music, z_other])
    y = np.r_[np.ones(len(z_music)), np.zeros(len(z_other))]
    reg = LogisticRegression(C=1.0, class_weight="balanced", max_iter=5000).fit(x, y)
    return reg.coef_[0], float(reg.intercept_[0])


def fit_detector(music: np.ndarray, labels: np.ndarray, negatives: np.ndarray | None = None, classes: int | None = None,
                 part: str = "both", keep: float = 0.975, folds: int = 5, music_gate: bool = False) -> OpenSetDetector:
    """An `OpenSetDetector` fitted to the training music's clip embeddings.

    Args:
        music: the genre head's training clips, clip embeddings (N, 250); labels: their genres (N,).
        negatives: non-music clip embeddings (K, 250) for the music probability; None leaves it at 0.5 everywhere
            (every rejected input is then "unfamiliar").
        classes: the number of genres (default: max label + 1).
        part: which columns the detector reads (`PARTS`).
        keep: the share of the training music, scored out of fold, that the familiarity rule lets through.
        folds: the out-of-fold scoring's folds (stratified by `fold_of`; deterministic).
        music_gate: also require the music probability to reach the `1 - keep` quantile of the training music's
            out-of-fold music probabilities (a second rule of the same kind).
    Deterministic: the same inputs give the same buffers.
    """
    labels = np.asarray(labels, dtype=np.int64)
    classes = int(labels.max()) + 1 if classes is None else classes
    start, stop = PARTS[part]
    x = np.asarray(music, dtype=np.float64)[:, start:stop]  # (N, D)
    mean, std = x.mean(0), np.maximum(x.std(0), 1e-6)
    z = (x - mean) / std
    z_neg = None if negatives is None else (np.asarray(negatives, np.float64)[:, start:stop] - mean) / std
    fold = fold_of(labels, folds)
    oof_distance, oof_music = np.zeros(len(z)), np.zeros(len(z))
    for f in range(folds):
        held = fold == f
        means, precision = gaussian_fit(z[~held], labels[~held], classes)
        oof_distance[held] = _distances(z[held], means, precision)
        if z_neg is not None:
            w, b = _logistic(z[~held], z_neg)
            oof_music[held] = 1 / (1 + np.exp(-(z[held] @ w + b)))
    means, precision = gaussian_fit(z, labels, classes)
    det = OpenSetDetector(classes, len(z), part)
    det.mean.copy_(torch.from_numpy(mean))
    det.std.copy_(torch.from_numpy(std))
    det.class_means.copy_(torch.from_numpy(np.where(np.isfinite(means), means, 1e6)))  # finite: ONNX-safe
    det.precision.copy_(torch.from_numpy(precision))
    det.references.copy_(torch.from_numpy(np.sort(oof_distance)))
    det.max_distance.fill_(float(np.quantile(oof_distance, keep, method="higher")))
    if z_neg is not None:
        w, b = _logistic(z, z_neg)
        det.music_weight.copy_(torch.from_numpy(w))
        det.music_bias.fill_(b)
        if music_gate:
            det.music_floor.fill_(float(np.quantile(oof_music, 1 - keep, method="lower")))
    return det.eval()
