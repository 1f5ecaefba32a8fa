"""The Lightning DataModule: finds (or downloads) the clips, caches their features, splits by track.

    python -m genre_cnn.training.datamodule --data.dataset demo   # builds the demo cache, prints the split sizes

It serves what the model `family` trains on (genre_cnn.models.families: its classifier's `features`, `cached` array,
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
import importlib.util
import logging
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from genre_cnn.audio.frontend import FrontEndConfig
from genre_cnn.data.cache import FeatureSettings, build_cache, cached_clips, entry_path
from genre_cnn.data.clipset import ClipSet
from genre_cnn.data.layout import DataError
from genre_cnn.data.sources import open_source
from genre_cnn.data.splits import choose, load_or_save
from genre_cnn.errors import SettingsError, check_range
from genre_cnn.models import families
from genre_cnn.paths import home, resolve
from genre_cnn.training.loaders import ClipWindows, EveryClipOnce, RandomWindows

log = logging.getLogger(__name__)


class GenreDataModule(L.LightningDataModule):
    """GTZAN (downloaded if missing), any folder-per-genre collection, the synthetic demo set, or FMA.

    Args:
        dataset: "gtzan" (canonical 10 genres, downloads when missing), "folder" (genres are the
            sub-folder names of data_dir), "demo" (generated synthetic clips, no download) or "fma" (the Free
            Music Archive's top-level genres, with its own split; downloads when missing; genre_cnn.data.sources.fma).
        data_dir: where the audio is; default `<home>/data/<dataset>` (genre_cnn.paths.home). A relative path is taken
            from the working directory if it exists there, else from the source checkout (as in configs/).
        download: fetch GTZAN (FMA's archives) when data_dir holds no audio.
        split: "official" (the dataset's own split, e.g. FMA's artist-disjoint one), "random" (stratified 8:2
            train:test by track, validation a quarter of train), "kfold" (fold `fold` of `num_folds` is the test
            part) or "lists" (artist-filtered lists in split_lists_dir); default: "official" for a dataset that has
            its own split, else "random". `split_kind` is the one in use.
        seed: seed of the split; the split is saved beside the cache and reused.
        frontend: the front end's settings (the CLI's `--frontend` group).
        clip_seconds: length every dataset clip is fixed to (centred excerpt, or looped if shorter).
        min_seconds: shorter files are skipped. window_seconds: the CNN's input length.
        crops_per_clip: random training windows drawn from each clip per epoch.
        batch_size: windows (training) or vectors per batch; evaluation batches hold batch_size // K clips.
        cache_workers: processes for feature caching (default: all cores).
        features_in_memory: hold the CNN's cached spectrograms in RAM (true), or read each clip's cache entry
            when a loader needs it (false: memory stays flat as the dataset grows; same batches, same results);
            default: in RAM when they take at most a quarter of the machine's memory (genre_cnn.data.ondisk).
        streaming: train the CNN from LitData shards of its training clips (genre_cnn.data.streamed), streamed
            to every process of the run: for data on a shared filesystem or object storage, read by many nodes.
            Each batch holds batch_size // crops_per_clip clips, crops_per_clip windows of each. Vector families
            are unaffected (one small vector per clip, held in RAM).
        stream_dir: where the shards are: a folder (written by prepare_data when it holds none; default beside
            the feature cache) or a URL that LitData reads (s3://..., written beforehand with
            `python -m genre_cnn.training.datamodule ... --data.streaming true --data.stream_dir DIR` and copied).
        fma_subset: FMA's subset, "small" (8 genres), "medium" or "large" (16 genres; each includes the smaller).
        family: the model family whose inputs the loaders yield (see above).
        fit_on: the parts a model learns from: "train", "train+val" for a refit, or every clip (for a model
            that is not tested on this data, such as the ready model of genre_cnn.training.make_ready).
    """

    def __init__(
        self,
        dataset: str = "gtzan",
        data_dir: str | None = None,
        download: bool = True,
        split: Literal["official", "random", "kfold", "lists"] | None = None,
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
        features_in_memory: bool | None = None,
        streaming: bool = False,
        stream_dir: str | None = None,
        demo_clips_per_genre: int = 12,
        fma_subset: Literal["small", "medium", "large"] = "small",
        family: str = "cnn",
        fit_on: Literal["train", "train+val", "train+val+test"] = "train",
    ):
        super().__init__()
        self.save_hyperparameters()
        self.frontend = FrontEndConfig.of(frontend)
        self.hparams["frontend"] = self.frontend.as_dict()  # plain types: checkpoints load with weights_only
        self.data_dir = resolve(data_dir) if data_dir else home() / "data" / dataset
        self.source = open_source(dataset, self.data_dir, download=download, clip_seconds=clip_seconds,
                                  demo_clips_per_genre=demo_clips_per_genre, sample_rate=self.frontend.sample_rate,
                                  fma_subset=fma_subset)
        self.split_kind = split or ("official" if self.source.has_official_split else "random")
        if self.split_kind == "official" and not self.source.has_official_split:
            raise SettingsError(f"--data.split official: --data.dataset {dataset} has no split of its own; use "
                                "random, kfold or lists")
        self.classifier_class = families.get(family).classifier()  # what it trains on: features, cached, pool, inputs
        self.settings = FeatureSettings(self.classifier_class.features(self.frontend), clip_seconds, min_seconds)
        self.window = self.frontend.window_frames(window_seconds)
        self._check_ranges()
        self.clipset: ClipSet | None = None  # the cached clips and their features, once set up
        self.split: dict[str, list[str]] | None = None

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
        if hp.streaming and importlib.util.find_spec("litdata") is None:
            raise SettingsError("--data.streaming needs LitData, which is not installed: run `bash setup.sh`, or "
                                "`pip install --no-deps litdata==0.2.76` and `pip install -e '.[stream]'`")

    @functools.cached_property
    def genres(self) -> list[str]:
        """Class names in label order: the one list that models, reports and prediction use."""
        return self.source.genres()

    @property
    def cache_dir(self) -> Path:
        return self.settings.cache_dir(self.source.cache_source())

    def prepare_data(self) -> None:
        """Downloads or generates the audio if needed, then caches every clip's features. Lightning runs this on
        one process, before every fit and test: it writes files and keeps no state; with the cache complete it
        only checks each entry. DataError (saying what to do) if there is no usable audio."""
        self.source.ensure()
        genres = self.source.genres()
        if len(genres) < 2:  # before any feature work
            raise SettingsError(f"--data.data_dir {self.data_dir}: a classifier needs at least 2 genres, found "
                                f"{len(genres)} ({', '.join(genres) or 'none'})")
        if not build_cache(self.source.clips(), self.cache_dir, self.settings, self.hparams.cache_workers):
            raise DataError(f"no usable audio file in {self.data_dir}: every file was skipped (see above)")
        if self.streams:
            keys = self._fit_keys()
            shards = self._shards_of(keys)
            if "://" not in shards:
                from genre_cnn.data.streamed import write_shards

                clips = {c.key: c for c in cached_clips(self.source.clips(), self.cache_dir)}
                write_shards([entry_path(self.cache_dir, clips[k]) for k in keys],
                             np.array([self.genres.index(clips[k].genre) for k in keys]), keys,
                             self.classifier_class.cached, Path(shards), self.hparams.cache_workers or 1)

    @property
    def streams(self) -> bool:
        """Whether training reads LitData shards (`streaming`, for a family trained on windows)."""
        return self.hparams.streaming and self.classifier_class.inputs == "windows"

    @property
    def shards(self) -> str:
        """Where the training part's shards are (see `_shards_of`)."""
        return self._shards_of(self._fit_keys())

    def _shards_of(self, keys: list[str]) -> str:
        """`stream_dir`, else a folder beside the cache named after the training clips `keys` (another split or
        fit_on gets its own)."""
        where = self.hparams.stream_dir
        if where:
            return where if "://" in where else str(resolve(where))
        from genre_cnn.data.streamed import shards_name

        return str(self.cache_dir / shards_name(keys))

    def _fit_keys(self) -> list[str]:
        """The keys of the clips a model learns from (the parts of `fit_on`), in the split's order."""
        split = self._load_split()
        return [key for part in self.hparams.fit_on.split("+") for key in split[part]]

    def make_split(self) -> dict[str, list[str]]:
        """The track-level split of the cached clips (saved beside the cache and reused); after prepare_data()."""
        if self.split is None:
            self.split = self._load_split()
        return self.split

    def _load_split(self) -> dict[str, list[str]]:
        clips = cached_clips(self.source.clips(), self.cache_dir)
        if not clips:
            raise DataError(f"no cached features for {self.data_dir}: run prepare_data() first")
        hp, kind = self.hparams, self.split_kind
        split, name = choose([c.key for c in clips], [self.genres.index(c.genre) for c in clips], self.genres,
                             kind, hp.test_fraction, hp.val_fraction, hp.num_folds, hp.fold, hp.seed,
                             resolve(hp.split_lists_dir) if hp.split_lists_dir else None, str(self.data_dir),
                             self.source.official_split() if kind == "official" else None)
        return load_or_save(self.cache_dir / name, split)

    def setup(self, stage: str | None = None) -> None:
        """Loads the cached features that the family trains on and the saved (or new) track-level split."""
        if self.clipset is not None:
            return
        split = self.make_split()
        c = self.classifier_class
        pool = c.pool if c.inputs == "vectors" else None  # windows are served as cached, and may stay on disk
        self.clipset = ClipSet(self.source.clips(), self.genres, self.cache_dir, c.cached, pool,
                               self.hparams.features_in_memory)
        if not self.clipset.in_memory:
            log.info("features read from %s as the loaders need them (--data.features_in_memory false or too "
                     "large for RAM)", self.cache_dir)
        # (N, C, T) float16 windows' source, or (N, D) float32 vectors; (N,) int64
        self.features, self.labels = self.clipset.features, self.clipset.labels
        index = {k: i for i, k in enumerate(self.clipset.keys)}
        self.idx = {part: np.array([index[k] for k in split[part]], dtype=np.int64) for part in split}
        log.debug("split: %s", ", ".join(f"{p} {len(i)} clips" for p, i in self.idx.items()))

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
        hp, i = self.hparams, self.train_idx
        if self.streams:
            from litdata import StreamingDataLoader

            from genre_cnn.data.streamed import flatten_crops, streamed_windows

            ds = streamed_windows(self.shards, self.window, hp.crops_per_clip, hp.seed)
            return StreamingDataLoader(ds, batch_size=max(1, hp.batch_size // hp.crops_per_clip),
                                       num_workers=hp.num_workers, collate_fn=flatten_crops)
        if self.classifier_class.inputs == "windows":
            ds = RandomWindows(self.features[i], self.labels[i], self.window, hp.crops_per_clip)
        else:  # each clip crops_per_clip times, like the windows
            ds = self._vectors(np.tile(i, hp.crops_per_clip))  # (N_train * crops_per_clip,) rows
        return self._loader(ds, hp.batch_size, shuffle=True)

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
    from jsonargparse import ArgumentParser

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    parser = ArgumentParser(description="Builds a dataset's feature cache and split (train.py's --data.* and "
                            "--frontend.* options; with --data.streaming true, the shards too), and prints the "
                            "split sizes.")
    parser.add_class_arguments(FrontEndConfig, "frontend", instantiate=False)
    parser.add_class_arguments(GenreDataModule, "data", instantiate=False, skip={"frontend"})
    cfg = parser.parse_args()
    dm = GenreDataModule(**vars(cfg.data), frontend=FrontEndConfig(**vars(cfg.frontend)))
    dm.prepare_data()
    dm.setup("fit")
    print({part: len(i) for part, i in dm.idx.items()}, "window frames:", dm.window)
    if dm.streams:
        print("training clips as LitData shards:", dm.shards)
