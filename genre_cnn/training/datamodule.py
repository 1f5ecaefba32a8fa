"""The Lightning DataModule: a dataset kind, its cached features and a track-level split, served as batches.

    python -m genre_cnn.training.datamodule --data.source Demo   # builds the demo cache, prints the split sizes

It composes three parts, each with its own options: the dataset kind (`source`, a genre_cnn.data.sources.Source:
`--data.source Fma --data.source.subset medium`), the feature store (`features`, genre_cnn.data.store.FeatureStore:
`--data.features.clip_seconds`) and the split (`split`, genre_cnn.data.splits.Split: `--data.split.kind kfold`), and
serves what the model `family` trains on (genre_cnn.models.families: its classifier's `features`, `cached` array,
`pool` and `inputs`), nothing else (C = the front end's channels, W = frames of one window, K = windows of one
clip, D = vector length):
- "windows" (the CNN): training yields random windows, x (B, C, W) float32, y (B,) int64; validation and test
  yield every window of each whole clip, so a model can average over the track: x (B, K, C, W), y (B,);
- "vectors" (the dense baseline's hand-crafted vector, musicnn's mean patch embedding): x (B, D) float32, y (B,)
  (in training each clip crops_per_clip times an epoch); `vector_stats()` gives the training rows' mean and
  standard deviation for the model's scaler.
`fit_on` names the parts a model learns from ("train", "train+val" for the refit after validation chose the
number of epochs, "train+test" for the model cross-fitting keeps).
"""

from __future__ import annotations

import functools
import importlib.util
import logging
from dataclasses import replace
from pathlib import Path

import lightning as L
import numpy as np
import torch
from jsonargparse import lazy_instance
from torch.utils.data import DataLoader, Dataset, TensorDataset

from genre_cnn.audio.frontend import FrontEndConfig
from genre_cnn.bounds import SECONDS, out_of
from genre_cnn.data.cache import entry_path
from genre_cnn.data.clipset import ClipSet
from genre_cnn.data.duplicates import Duplicates
from genre_cnn.data.layout import DataError, say_once
from genre_cnn.data.sources import Source
from genre_cnn.data.sources.gtzan import Gtzan
from genre_cnn.data.splits import Split, load_or_save
from genre_cnn.data.store import FeatureStore
from genre_cnn.errors import SettingsError
from genre_cnn.models import families
from genre_cnn.paths import resolve
from genre_cnn.training.loaders import ClipWindows, EveryClipOnce, RandomWindows

log = logging.getLogger(__name__)

GTZAN = lazy_instance(Gtzan)  # the default dataset kind, built when first used


def remote(shards: str) -> bool:
    """Whether `stream_dir` names shards that LitData fetches (a URL, or "local:PATH"), which are read, not written."""
    return "://" in shards or shards.startswith("local:")


class GenreDataModule(L.LightningDataModule):
    """GTZAN (downloaded if missing), any folder-per-genre collection, the synthetic demo set, FMA, or any other
    dataset kind.

    Args:
        source: the dataset kind and its options (default: GTZAN in `<home>/data/gtzan`, downloaded if missing).
        features: how clips are cut and their features cached (genre_cnn.data.store.FeatureStore).
        split: how the clips are split by track (genre_cnn.data.splits.Split).
        frontend: the front end's settings (train.py's `--frontend` group).
        window_seconds: the CNN's input length.
        crops_per_clip: random training windows drawn from each clip per epoch.
        batch_size: windows (training) or vectors per batch; evaluation batches hold batch_size // K clips.
        num_workers: loader processes.
        streaming: train the CNN from LitData shards of its training clips (genre_cnn.data.streamed), streamed
            to every process of the run: for data on a shared filesystem or object storage, read by many nodes.
            Each batch holds batch_size // crops_per_clip clips, crops_per_clip windows of each. Vector families
            are unaffected (one small vector per clip, held in RAM).
        stream_dir: where the shards are: a folder (written by prepare_data when it holds none or damaged ones;
            default beside the feature cache) or a URL that LitData reads (s3://..., or local:PATH; written beforehand
            with `python -m genre_cnn.training.datamodule ... --data.streaming true --data.stream_dir DIR` and
            copied), checked against its index before training.
        negatives: non-music recordings for a model's open-set detector (`--musicnn.openset true`): a dataset kind
            whose clips are not music, e.g. genre_cnn.data.nonmusic.NonMusic (made from Debian's packages) or a
            Folder of folders of recordings; their features are cached as the clips' are (genre_cnn.training.openset).
        family: the model family whose inputs the loaders yield (see above).
        fit_on: the parts a model learns from, joined by "+".
    """

    def __init__(self, source: Source = GTZAN, features: FeatureStore = FeatureStore(),  # noqa: B008 - frozen
                 split: Split = Split(), frontend: FrontEndConfig | None = None,  # noqa: B008 - frozen dataclass
                 window_seconds: float = 3.0,
                 crops_per_clip: int = 8, batch_size: int = 32, num_workers: int = 0, streaming: bool = False,
                 stream_dir: str | None = None, negatives: Source | None = None, family: str = "cnn",
                 fit_on: str = "train"):
        super().__init__()
        self.options = dict(source=source, features=features, split=split, frontend=FrontEndConfig.of(frontend),
                            window_seconds=window_seconds, crops_per_clip=crops_per_clip, batch_size=batch_size,
                            num_workers=num_workers, streaming=streaming, stream_dir=stream_dir,
                            negatives=negatives, family=family, fit_on=fit_on)
        self.source, self.store, self.frontend = source, features, self.options["frontend"]
        if split.kind is None:
            split = replace(split, kind="official" if source.has_official_split else "random")
        if split.kind == "official" and not source.has_official_split:
            raise SettingsError(f"--data.split.kind official: the {source.name} dataset kind has no split of its "
                                "own; use random, kfold, lists or groups")
        self.split_policy = split
        self.crops_per_clip, self.batch_size, self.num_workers = crops_per_clip, batch_size, num_workers
        self.fit_on, self.stream_dir, self.family = fit_on.split("+"), stream_dir, family
        self.classifier_class = families.get(family).classifier()  # what it trains on: features, cached, pool, inputs
        self.extractor = self.classifier_class.features(self.frontend)
        self.window = self.frontend.window_frames(window_seconds)
        self._check(window_seconds, streaming)
        self.streams = streaming and self.classifier_class.inputs == "windows"  # vector families keep RAM vectors
        if streaming and not self.streams:
            say_once(f"--data.streaming true: the {family} family trains on one vector per clip, held in RAM, not on "
                     "windows: its training clips are not streamed")
        # what a checkpoint records of its data (plain types): genre_cnn.inference.predict.trained_on reads it
        self.save_hyperparameters({"dataset": source.name, "data_dir": source.describe(), "split": split.kind,
                                   "clip_seconds": features.clip_seconds, "window_seconds": window_seconds,
                                   "frontend": self.frontend.as_dict()})
        self.clipset: ClipSet | None = None  # the cached clips and their features, once set up
        self.split: dict[str, list[str]] | None = None

    def _check(self, window_seconds: float, streaming: bool) -> None:
        """Raises SettingsError, naming the option, for a setting that could only end in a traceback later."""
        checks = (("window_seconds", window_seconds, *SECONDS["window_seconds"]),
                  ("batch_size", self.batch_size, 1, 2**20), ("crops_per_clip", self.crops_per_clip, 1, 2**16),
                  ("num_workers", self.num_workers, 0, 1024))
        for option, value, low, high in checks:
            if why := out_of(value, low, high):
                raise SettingsError(f"--data.{option} {why}")
        if window_seconds > self.store.clip_seconds:
            raise SettingsError(f"--data.window_seconds ({window_seconds}) must be <= --data.features.clip_seconds "
                                f"({self.store.clip_seconds}): a window is cut from one clip")
        if not set(self.fit_on) <= {"train", "val", "test"}:
            raise SettingsError(f"fit_on {'+'.join(self.fit_on)!r}: parts are train, val and test")
        if streaming and importlib.util.find_spec("litdata") is None:
            raise SettingsError("--data.streaming needs LitData, which is not installed: run `bash setup.sh`, or "
                                "`pip install --no-deps litdata==0.2.76` and `pip install -e '.[stream]'`")

    def like(self, **changes) -> GenreDataModule:
        """A DataModule with these settings but `changes` (e.g. family="dense", fit_on="train+val")."""
        return GenreDataModule(**{**self.options, **changes})

    @functools.cached_property
    def genres(self) -> list[str]:
        """Class names in label order: the one list that models, reports and prediction use."""
        return self.source.genres()

    @property
    def split_kind(self) -> str:
        return self.split_policy.kind

    @property
    def cache_dir(self) -> Path:
        return self.store.cache_dir(self.source, self.extractor)

    def prepare_data(self) -> None:
        """Downloads or generates the audio if needed, then caches every clip's features (and, streaming, writes
        the training clips' shards). Lightning runs this on one process, before every fit and test: it writes files
        and keeps no state; with the cache complete it costs one stat per clip (genre_cnn.data.store). DataError
        (saying what to do) if there is no usable audio."""
        self.store.prepare(self.source, self.extractor)
        if self.streams and not remote(self.shards):
            from genre_cnn.data.streamed import write_shards

            keys = self._fit_keys()
            clips = {c.key: c for c in self.source.clips()}
            write_shards([entry_path(self.cache_dir, clips[k]) for k in keys],
                         np.array([self.genres.index(clips[k].genre) for k in keys]), keys,
                         self.classifier_class.cached, Path(self.shards), self.store.workers or 1)

    @property
    def shards(self) -> str:
        """Where the training part's shards are: `stream_dir`, else a folder beside the cache named after the
        training clips (another split or fit_on gets its own)."""
        if self.stream_dir:
            return self.stream_dir if remote(self.stream_dir) else str(resolve(self.stream_dir))
        from genre_cnn.data.streamed import shards_name

        return str(self.cache_dir / shards_name(self._fit_keys()))

    def _fit_keys(self) -> list[str]:
        """The keys of the clips a model learns from (the parts of `fit_on`), in the split's order."""
        split = self.make_split()
        return [key for part in self.fit_on for key in split[part]]

    def make_split(self) -> dict[str, list[str]]:
        """The track-level split of the cached clips (saved beside the cache and reused); after prepare_data()."""
        if self.split is not None:
            return self.split
        clips = self.store.cached(self.source, self.extractor)
        if not clips:
            raise DataError(f"no cached features for {self.source.describe()}: run prepare_data() first")
        policy, together = self.split_policy, self.duplicates.together
        split, name = policy.make([c.key for c in clips], [self.genres.index(c.genre) for c in clips], self.genres,
                                  self.source.describe(), self.source.official_split() if policy.kind == "official"
                                  else None, together, self.source.groups() if policy.kind == "groups" else None)
        self.split = load_or_save(self.cache_dir / name, split, together)
        if self.duplicates.line():
            say_once(self.duplicates.line())
        return self.split

    @functools.cached_property
    def duplicates(self) -> Duplicates:
        """The copies of one recording among the cached clips (genre_cnn.data.duplicates); after prepare_data()."""
        return self.store.duplicates(self.source, self.extractor)

    def setup(self, stage: str | None = None) -> None:
        """Loads the cached features that the family trains on and the saved (or new) track-level split."""
        if self.clipset is not None:
            return
        split = self.make_split()
        if self.streams and remote(self.shards):  # a local folder was checked, and rebuilt if need be, by prepare_data
            from genre_cnn.data.streamed import shards_problem

            problem = shards_problem(self.shards)
            if problem:
                raise DataError(f"--data.stream_dir {self.shards}: {problem}; copy the shards there again (`python -m "
                                "genre_cnn.training.datamodule ... --data.streaming true` writes them locally)")
        c = self.classifier_class
        pool = c.pool if c.inputs == "vectors" else None  # windows are served as cached, and may stay on disk
        self.clipset = self.store.clipset(self.source, self.extractor, c.cached, pool, self.genres)
        if not self.clipset.in_memory:
            log.info("features read from %s as the loaders need them (--data.features.in_memory false or too "
                     "large for RAM)", self.cache_dir)
        # (N, C, T) float16 windows' source, or (N, D) float32 vectors; (N,) int64
        self.features, self.labels = self.clipset.features, self.clipset.labels
        index = {k: i for i, k in enumerate(self.clipset.keys)}
        self.idx = {part: np.array([index[k] for k in split[part]], dtype=np.int64) for part in split}
        self.hparams["clips"] = len(self.train_idx)  # what a checkpoint says its model learnt from
        log.debug("split: %s", ", ".join(f"{p} {len(i)} clips" for p, i in self.idx.items()))

    def _loader(self, dataset: Dataset, batch_size: int, shuffle: bool, sampler=None) -> DataLoader:
        return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle, sampler=sampler,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    @property
    def train_idx(self) -> np.ndarray:
        """Row indices of the clips a model learns from: the parts of `fit_on`."""
        return np.concatenate([self.idx[p] for p in self.fit_on])

    def vector_stats(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and standard deviation (D,) of the training rows' vectors: a vector model's scaler."""
        train = torch.from_numpy(self.features[self.train_idx]).double()  # (N_train, D)
        return train.mean(0), train.std(0)

    def class_counts(self) -> torch.Tensor:
        """Training clips of each genre (n,): what a class-balanced loss weighs by."""
        return torch.bincount(torch.from_numpy(self.labels[self.train_idx]), minlength=len(self.genres))

    def _vectors(self, rows: np.ndarray) -> TensorDataset:
        return TensorDataset(torch.from_numpy(self.features[rows]), torch.from_numpy(self.labels[rows]))

    def train_dataloader(self) -> DataLoader:
        i = self.train_idx
        if self.streams:
            from litdata import StreamingDataLoader

            from genre_cnn.data.streamed import flatten_crops, streamed_windows

            ds = streamed_windows(self.shards, self.window, self.crops_per_clip, self.split_policy.seed)
            return StreamingDataLoader(ds, batch_size=max(1, self.batch_size // self.crops_per_clip),
                                       num_workers=self.num_workers, collate_fn=flatten_crops)
        if self.classifier_class.inputs == "windows":
            ds = RandomWindows(self.features[i], self.labels[i], self.window, self.crops_per_clip)
        else:  # each clip crops_per_clip times, like the windows
            ds = self._vectors(np.tile(i, self.crops_per_clip))  # (N_train * crops_per_clip,) rows
        return self._loader(ds, self.batch_size, shuffle=True)

    def _eval_loader(self, part: str) -> DataLoader:
        i, batch_size = self.idx[part], self.batch_size
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


def main(args: list[str] | None = None) -> None:
    """`python -m genre_cnn.training.datamodule`: builds a dataset's cache, split and (streaming) shards."""
    from genre_cnn.data.sources import kinds
    from genre_cnn.training.report import setup_console
    from genre_cnn.training.runs import OptionParser

    setup_console()
    kinds()  # every dataset kind of the package, so that --data.source NAME finds it
    parser = OptionParser(prog="python -m genre_cnn.training.datamodule", description="Builds a dataset's feature "
                          "cache and split (train.py's --data.* and --frontend.* options; with --data.streaming true, "
                          "the shards too), and prints the split sizes.")
    parser.add_class_arguments(FrontEndConfig, "frontend", instantiate=False)
    parser.add_class_arguments(GenreDataModule, "data", instantiate=False, skip={"frontend", "family", "fit_on"})
    cfg = parser.instantiate(parser.parse_args(args))
    dm = GenreDataModule(**vars(cfg.data), frontend=FrontEndConfig(**vars(cfg.frontend)))
    dm.prepare_data()
    dm.setup("fit")
    print({part: len(i) for part, i in dm.idx.items()}, "window frames:", dm.window)
    if dm.streams:
        print("training clips as LitData shards:", dm.shards)


if __name__ == "__main__":
    import sys

    from genre_cnn.errors import run_command

    sys.exit(run_command(main))
