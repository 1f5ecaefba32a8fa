"""The torch Datasets of `genre_cnn.training.datamodule`: random training windows, every window of a clip, and a
sampler that evaluates each clip exactly once across processes.

    from genre_cnn.training.loaders import RandomWindows      # used by GenreDataModule; this module has no CLI
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset, DistributedSampler

from genre_cnn.audio.frontend import track_windows


class RandomWindows(Dataset):
    """`crops_per_clip` random windows of each clip per epoch: (C, W) float32 and the label."""

    def __init__(self, spec: np.ndarray, labels: np.ndarray, window: int, crops_per_clip: int):
        self.spec, self.labels, self.window, self.crops = spec, labels, window, crops_per_clip

    def __len__(self) -> int:
        return len(self.labels) * self.crops

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        clip = i // self.crops
        start = int(torch.randint(0, self.spec.shape[-1] - self.window + 1, ()))
        x = torch.from_numpy(self.spec[clip, :, start:start + self.window].astype(np.float32))  # (C, W)
        return x, int(self.labels[clip])


class ClipWindows(Dataset):
    """Every window of a clip, half-overlapping (`track_windows`): windows (K, C, W) and the label."""

    def __init__(self, spec: np.ndarray, labels: np.ndarray, window: int):
        self.spec, self.labels, self.window = spec, labels, window

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        spec = torch.from_numpy(self.spec[i].astype(np.float32))  # (C, T)
        return track_windows(spec, self.window).contiguous(), int(self.labels[i])


class EveryClipOnce(DistributedSampler):
    """Evaluation across processes without the repeats a DistributedSampler pads with: process r takes
    clips r, r + world, ..., so clip-level metrics count each clip exactly once (ranks may differ by one)."""

    def __init__(self, dataset: Dataset, num_replicas: int, rank: int):
        super().__init__(dataset, num_replicas, rank, shuffle=False)
        self.num_samples = len(range(rank, len(dataset), num_replicas))

    def __iter__(self):
        return iter(range(self.rank, len(self.dataset), self.num_replicas))
