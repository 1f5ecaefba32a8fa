"""A dataset's cached features, indexed by clip: a plain torch Dataset, without Lightning.

    from genre_cnn.data.store import FeatureStore
    clips = FeatureStore().clipset(Folder(data_dir), SpectralFeatures(), "hand")   # after FeatureStore().prepare
    x, y = clips[0]                        # the first clip's features and label
    python -m genre_cnn.data.store DATA_DIR     # builds and loads one: a folder-per-genre dataset's vectors

The feature store (genre_cnn.data.store) makes one over the clips the DataModule serves; benchmarks use it directly.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from genre_cnn.data.cache import cached_clips, entry_path, load_cache
from genre_cnn.data.layout import Clip, DataError
from genre_cnn.data.ondisk import OnDisk, keep_in_memory


class ClipSet(Dataset):
    """Every cached clip of a dataset: `keys` (N,), `labels` (N,) int64 indices into `genres`, and `features`,
    the array `name` of each clip's cache entry stacked, e.g. (N, C, T) float16 or (N, D) float32, after `pool`
    (e.g. the mean over a clip's patches). Item i is (features[i] as a tensor, labels[i]).

    `in_memory`: hold the stacked features in RAM (True), read each clip's entry when it is indexed (False,
    genre_cnn.data.ondisk.OnDisk: memory stays flat however many clips there are), or choose by their size
    (None). Pooled features are always held: one vector per clip."""

    def __init__(self, clips: list[Clip], genres: list[str], cache_dir: Path, name: str,
                 pool: Callable[[np.ndarray], np.ndarray] | None = None, in_memory: bool | None = None):
        self.clips = cached_clips(clips, cache_dir)
        if not self.clips:
            raise DataError(f"no cached features in {cache_dir}: build the cache first (FeatureStore.prepare)")
        self.genres, self.keys = list(genres), [c.key for c in self.clips]
        self.labels = np.array([self.genres.index(c.genre) for c in self.clips], dtype=np.int64)  # (N,)
        on_disk = OnDisk([entry_path(cache_dir, c) for c in self.clips], name)
        self.in_memory = pool is not None or keep_in_memory(on_disk.nbytes, in_memory)
        if not self.in_memory:
            self.features: np.ndarray | OnDisk = on_disk
            return
        features = load_cache(self.clips, cache_dir, (name,))[0]
        self.features = pool(features) if pool is not None else features

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        return torch.from_numpy(np.asarray(self.features[i], dtype=np.float32)), int(self.labels[i])
