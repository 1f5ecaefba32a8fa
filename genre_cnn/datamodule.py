"""The Lightning DataModule: finds (or downloads) the clips, caches their features, splits by track.

    python -m genre_cnn.datamodule --dataset demo     # builds the demo cache and prints the split sizes

It serves what the model `family` trains on (genre_cnn.families: its classifier's `features`, `cached` array,
`pool` and `inputs`), and nothing else (C = the front end's channels, W = frames of one window, K = windows of
one clip, D = vector length):
- "windows" (the CNN): training yields random windows, x (B, C, W) float32, y (B,) int64; validation and test
  yield every window of each whole clip, so a model can average over the track: x (B, K, C, W), y (B,);
- "vectors" (the dense baseline's hand-crafted vector, musicnn's mean patch embedding): x (B, D) float32, y (B,)
  (in training each clip crops_per_clip times an epoch); `vector_stats()` gives the training rows' mean and
  standard deviation for the model's scaler.
`fit_on="train+val"` trains on both parts (the refit after validation chose the number of epochs).
"""

from __future__ import annotations

import functools
import hashlib
import logging
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from genre_cnn import families
from genre_cnn.audio import GTZAN_GENRES, Clip, DataError, discover_genres, find_clips, find_genre_root
from genre_cnn.cache import FeatureSettings, build_cache, entry_path, load_cache
from genre_cnn.datasets import ClipWindows, EveryClipOnce, RandomWindows
from genre_cnn.errors import SettingsError, check_range
from genre_cnn.frontend import FrontEndConfig
from genre_cnn.paths import home, resolve
from genre_cnn.splits import kfold_split, list_split, load_or_save, random_split

log = logging.getLogger(__name__)


class GenreDataModule(L.LightningDataModule):
    """GTZAN (downloaded if missing), any folder-per-genre collection, or the synthetic demo set.

    Args:
        dataset: "gtzan" (canonical 10 genres, downloads when missing), "folder" (genres are the
            sub-folder names of data_dir) or "demo" (generated synthetic clips, no download).
        data_dir: where the audio is; default `<home>/data/<dataset>` (genre_cnn.paths.home). A relative path is taken
            from the working directory if it exists there, else from the source checkout (as in configs/).
        download: fetch GTZAN when data_dir holds no audio.
        split: "random" (stratified 8:2 train:test by track, validation a quarter of train), "kfold"
            (fold `fold` of `num_folds` is the test part) or "lists" (artist-filtered lists in split_lists_dir).
        seed: seed of the split; the split is saved beside the cache and reused.
        frontend: the front end's settings (the CLI's `--frontend` group).
        clip_seconds: length every dataset clip is fixed to (centred excerpt, or looped if shorter).
        min_seconds: shorter files are skipped. window_seconds: the CNN's input length.
        crops_per_clip: random training windows drawn from each clip per epoch.
        batch_size: windows (training) or vectors per batch; evaluation batches hold batch_size // K clips.
        cache_workers: processes for feature caching (default: all cores).
        family: the model family whose inputs the loaders yield (see above).
        fit_on: the parts a model learns from: "train", "train+val" for a refit, or every clip (for a model
            that is not tested on this data, such as the ready model of genre_cnn.make_ready).
    """

    def __init__(
        self,
        dataset: Literal["gtzan", "folder", "demo"] = "gtzan",
        data_dir: str | None = None,
        download: bool = True,
        split: Literal["random", "kfold", "lists"] = "random",
        split_lists_dir: str | None = None,
        test_fraction: float = 0.2,
        val_fraction: float = 0.25,
        num_folds: int = 5,
        fold: int = 0,
        seed: int = 0,
        frontend: FrontEndConfig | None = None,
        clip_seconds: float = 30.0,
        min_seconds: float = 3.0,
        window_seconds: float = 3.0,
        crops_per_clip: int = 8,
        batch_size: int = 32,
        num_workers: int = 0,
        cache_workers: int | None = None,
        demo_clips_per_genre: int = 12,
        family: str = "cnn",
        fit_on: Literal["train", "train+val", "train+val+test"] = "train",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.frontend = FrontEndConfig.of(frontend)
        self.hparams["frontend"] = self.frontend.as_dict()  # plain types: checkpoints load with weights_only
        self.data_dir = resolve(data_dir) if data_dir else home() / "data" / dataset
        self.classifier_class = families.get(family).classifier()  # what it trains on: features, cached, pool, inputs
        self.settings = FeatureSettings(self.classifier_class.features(self.frontend), clip_seconds, min_seconds)
        self.window = self.frontend.window_frames(window_seconds)
        self._check_ranges()

    def _check_ranges(self) -> None:
        """Raises SettingsError, naming the option, for a setting that could only end in a traceback later."""
        hp = self.hparams
        for option, low in (("batch_size", 1), ("crops_per_clip", 1), ("demo_clips_per_genre", 1), ("num_folds", 2),
                            ("num_workers", 0), ("min_seconds", 0), ("window_seconds", 0.1)):
            check_range(f"--data.{option}", hp[option], low)
        check_range("--data.fold", hp.fold, 0, hp.num_folds - 1)
        if hp.window_seconds > hp.clip_seconds:
            raise SettingsError(f"--data.window_seconds ({hp.window_seconds}) must be <= --data.clip_seconds "
                                f"({hp.clip_seconds}): a window is cut from one clip")
        for option, value in (("test_fraction", hp.test_fraction), ("val_fraction", hp.val_fraction)):
            if not 0 < value < 1:  # validation picks the best epoch: it cannot be empty
                raise SettingsError(f"--data.{option} must be between 0 and 1 (exclusive), got {value}")

    @functools.cached_property
    def genres(self) -> list[str]:
        """Class names in label order: the one list that models, reports and prediction use."""
        if self.hparams.dataset == "gtzan":
            return list(GTZAN_GENRES)
        if self.hparams.dataset == "demo":
            from genre_cnn.demo import DEMO_GENRES

            return list(DEMO_GENRES)
        return list(discover_genres(self._genre_root()))

    @property
    def cache_dir(self) -> Path:
        return home() / "data" / "cache" / self.settings.cache_name(str(self.data_dir.resolve()))

    def _genre_root(self) -> Path:
        root = find_genre_root(self.data_dir)
        if root is None:
            from genre_cnn.download import OFFLINE_HELP

            raise DataError(f"no audio found in {self.data_dir} (expected one folder per genre). " + OFFLINE_HELP)
        if self.hparams.dataset == "gtzan":
            foreign = sorted(set(discover_genres(root)) - set(GTZAN_GENRES))
            if foreign:
                shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
                raise SettingsError(f"--data.data_dir {self.data_dir} has genre folders that are not GTZAN's "
                                    f"({shown}): for your own collection add --data.dataset folder")
        return root

    @functools.cached_property
    def clips(self) -> list[Clip]:
        """Every audio file of the dataset (listed once, after any download, so each oddity is logged once)."""
        return find_clips(self._genre_root(), tuple(self.genres))

    def prepare_data(self) -> None:
        """Downloads or generates the audio if needed, then caches every clip's features (one process).

        Lightning calls this before every fit and test: after the first success it does nothing, so each
        bad file is reported once per run.
        """
        if getattr(self, "_prepared", False):
            return
        self.ensure_audio()
        usable = build_cache(self.clips, self.cache_dir, self.settings, self.hparams.cache_workers)
        if not usable:
            raise DataError(f"no usable audio file in {self.data_dir}: every file was skipped (see above)")
        self._prepared = True

    def ensure_audio(self) -> None:
        """Generates the demo set or downloads GTZAN if needed; DataError (saying what to do) if there is no
        audio. Computes no features."""
        hp = self.hparams
        if hp.dataset == "demo":
            from genre_cnn.demo import make_demo_dataset

            make_demo_dataset(self.data_dir, hp.demo_clips_per_genre, hp.clip_seconds, self.frontend.sample_rate,
                              seed=0)
        elif hp.dataset == "gtzan" and hp.download and find_genre_root(self.data_dir) is None:
            from genre_cnn.download import download_gtzan

            download_gtzan(self.data_dir)
        self._genre_root()
        if len(self.genres) < 2:  # before any feature work
            raise SettingsError(f"--data.data_dir {self.data_dir}: a classifier needs at least 2 genres, found "
                                f"{len(self.genres)} ({', '.join(self.genres) or 'none'})")

    def make_split(self) -> dict[str, list[str]]:
        """The track-level split of the cached clips (saved beside the cache and reused); after prepare_data()."""
        if getattr(self, "split", None) is None:
            clips = [c for c in self.clips if entry_path(self.cache_dir, c).is_file()]
            if not clips:
                raise DataError(f"no cached features for {self.data_dir}: run prepare_data() first")
            self._cached_clips = clips
            split, name = self._split([c.key for c in clips], [self.genres.index(c.genre) for c in clips])
            self.split = load_or_save(self.cache_dir / name, split)
        return self.split

    def setup(self, stage: str | None = None) -> None:
        """Loads the cached features that the family trains on and the saved (or new) track-level split."""
        if getattr(self, "features", None) is not None:
            return
        self.make_split()
        clips = self._cached_clips
        keys, labels = [c.key for c in clips], [self.genres.index(c.genre) for c in clips]
        index = {k: i for i, k in enumerate(keys)}
        # (N, C, T) float16 windows' source, or (N, D) float32 vectors
        cached = load_cache(clips, self.cache_dir, (self.classifier_class.cached,))[0]
        self.features = self.classifier_class.pool(cached)
        self.labels = np.array(labels, dtype=np.int64)
        self.idx = {part: np.array([index[k] for k in self.split[part]], dtype=np.int64) for part in self.split}
        log.debug("split: %s", ", ".join(f"{p} {len(i)} clips" for p, i in self.idx.items()))

    def _split(self, keys: list[str], labels: list[int]) -> tuple[dict[str, list[str]], str]:
        """The track-level split the settings ask for, and the file name it is saved under; a dataset too small
        for it is a SettingsError naming the options, with the clip count of each genre."""
        hp = self.hparams
        counts = {g: labels.count(i) for i, g in enumerate(self.genres) if labels.count(i)}
        if len(counts) < 2:
            raise SettingsError(f"--data.data_dir {self.data_dir}: a classifier needs at least 2 genres with "
                                f"usable clips, found {len(counts)} ({', '.join(counts) or 'none'})")
        try:
            if hp.split == "lists":
                if hp.split_lists_dir is None:
                    raise SettingsError("--data.split lists needs --data.split_lists_dir (e.g. ../shared/gtzan_splits)")
                lists = resolve(hp.split_lists_dir)
                tag = hashlib.sha256(str(lists.resolve()).encode()).hexdigest()[:8]  # another list set, another file
                return list_split(keys, lists), f"split-lists-{tag}.json"
            if hp.split == "kfold":
                return (kfold_split(keys, labels, hp.fold, hp.num_folds, hp.val_fraction, hp.seed),
                        f"split-kfold{hp.num_folds}-fold{hp.fold}-seed{hp.seed}.json")
            return (random_split(keys, labels, hp.test_fraction, hp.val_fraction, hp.seed),
                    f"split-random-{hp.test_fraction:g}-{hp.val_fraction:g}-seed{hp.seed}.json")
        except ValueError as err:  # scikit-learn: a part would be empty, or a genre has too few clips to stratify
            options = ("--data.num_folds, --data.val_fraction" if hp.split == "kfold"
                       else "--data.test_fraction, --data.val_fraction")
            sizes = ", ".join(f"{g} {n}" for g, n in counts.items())
            raise SettingsError(f"{options}: {len(keys)} clips ({sizes}) cannot be split by genre into "
                                f"train, val and test parts with these settings ({err})") from None

    def sibling(self, family: str, fit_on: str = "train") -> GenreDataModule:
        """A DataModule over the same prepared data (no second listing or cache check, so each odd file is
        reported once) that serves `family` and learns from `fit_on`."""
        dm = GenreDataModule(**{**self.hparams, "frontend": self.frontend, "family": family, "fit_on": fit_on})
        dm.__dict__.update(clips=self.clips, genres=self.genres)
        if dm.cache_dir == self.cache_dir:  # the same features (musicnn embeddings have a cache of their own)
            dm._prepared = getattr(self, "_prepared", False)
            if getattr(self, "split", None) is not None:
                dm.split, dm._cached_clips = self.split, self._cached_clips
        return dm

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool, sampler=None) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0)

    @property
    def train_idx(self) -> np.ndarray:
        """Row indices of the clips a model learns from: the train part, or train + val when refitting."""
        return np.concatenate([self.idx[p] for p in self.hparams.fit_on.split("+")])

    def vector_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation (D,) of the training rows' vectors: a vector model's scaler."""
        train = torch.from_numpy(self.features[self.train_idx]).double()  # (N_train, D)
        return train.mean(0), train.std(0)

    def _vectors(self, rows: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.from_numpy(self.features[rows]), torch.from_numpy(self.labels[rows]))

    def train_dataloader(self) -> DataLoader:
        i = self.train_idx
        if self.classifier_class.inputs == "windows":
            ds = RandomWindows(self.features[i], self.labels[i], self.window, self.hparams.crops_per_clip)
        else:  # each clip crops_per_clip times, like the windows
            ds = self._vectors(np.tile(i, self.hparams.crops_per_clip))  # (N_train * crops_per_clip,) rows
        return self._loader(ds, self.hparams.batch_size, shuffle=True)

    def _eval_loader(self, part: str) -> DataLoader:
        i, batch_size = self.idx[part], self.hparams.batch_size
        if self.classifier_class.inputs == "windows":
            ds = ClipWindows(self.features[i], self.labels[i], self.window)
            batch_size = max(1, batch_size // (len(ds[0][0]) if len(ds) else 1))  # clips of K windows each
        else:
            ds = self._vectors(i)
        several = self.trainer is not None and self.trainer.world_size > 1
        sampler = EveryClipOnce(ds, self.trainer.world_size, self.trainer.global_rank) if several else None
        return self._loader(ds, batch_size, shuffle=False, sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._eval_loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._eval_loader("test")


if __name__ == "__main__":
    from jsonargparse import auto_cli

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    dm = auto_cli(GenreDataModule)
    dm.prepare_data()
    dm.setup("fit")
    print({part: len(i) for part, i in dm.idx.items()}, "window frames:", dm.window)
