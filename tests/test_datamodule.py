"""The DataModule: loader shapes and dtypes, track-disjoint reproducible splits, clear dataset errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.data.layout import DataError
from genre_cnn.data.sources.folder import Folder
from genre_cnn.data.sources.gtzan import Gtzan
from genre_cnn.data.splits import Split
from genre_cnn.data.store import FeatureStore
from genre_cnn.paths import home
from genre_cnn.training.datamodule import GenreDataModule
from tests.conftest import GTZAN_MINI, GTZAN_SPLITS, needs_gtzan_mini

SR = 22050


def tone_folder(root: Path, genres=("low", "mid", "high"), per_genre: int = 5, seconds: float = 4.0) -> Path:
    t = np.arange(int(seconds * SR)) / SR
    for k, g in enumerate(genres):
        (root / g).mkdir(parents=True)
        for i in range(per_genre):
            sf.write(root / g / f"{g}.{i:05d}.wav", 0.3 * np.sin(2 * np.pi * 110 * 2**k * (1 + i / 50) * t), SR)
    return root


def make_dm(root: Path, split: Split | None = None, in_memory: bool | None = None, **kw) -> GenreDataModule:
    """A DataModule over the folder `root` of 4-s clips, features cached by one process, batches of 8."""
    dm = GenreDataModule(Folder(str(root)), FeatureStore(clip_seconds=4.0, workers=1, in_memory=in_memory),
                         split or Split(), batch_size=8, **kw)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def test_loaders_yield_what_the_inputs_argument_asks_for(tmp_path):
    root = tone_folder(tmp_path / "a")
    dm = make_dm(root, Split(test_fraction=0.2, val_fraction=0.25))  # no trainer needed, no model consulted
    assert dm.genres == ["high", "low", "mid"]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 140, 130) and str(x.dtype) == "torch.float32" and str(y.dtype) == "torch.int64"
    windows, y = next(iter(dm.test_dataloader()))
    frames = 1 + 4 * SR // 512  # 173 frames in a 4-s clip: windows of 130 frames, hop 65
    assert windows.shape[1:] == (1 + (frames - 130) // 65, 140, 130)
    vectors = make_dm(root, family="dense")
    x, y = next(iter(vectors.train_dataloader()))
    assert x.shape == (8, 91) and str(x.dtype) == "torch.float32"
    x, y = next(iter(vectors.test_dataloader()))
    assert x.shape == (3, 91)  # the three test clips, one vector each
    mean, std = vectors.vector_stats()
    train = vectors.features[vectors.idx["train"]].astype(np.float64)  # the scaler is the training rows' statistics,
    scale = np.abs(train).max(0)  # both sides summed in float64: only the summation order may differ
    np.testing.assert_allclose(mean.numpy(), train.mean(0), rtol=0, atol=1e-9 * scale.max())
    np.testing.assert_allclose(std.numpy(), train.std(0, ddof=1), rtol=0, atol=1e-9 * scale.max())


def test_refit_data_adds_the_validation_clips(tmp_path):
    root = tone_folder(tmp_path / "a")
    dm, refit = make_dm(root, family="dense"), make_dm(root, family="dense", fit_on="train+val")
    assert sorted(refit.train_idx) == sorted([*dm.idx["train"], *dm.idx["val"]])
    assert not set(refit.train_idx) & set(dm.idx["test"])


def test_split_is_by_track_and_reused(tmp_path):
    root = tone_folder(tmp_path / "a")
    dm = make_dm(root)
    parts = {p: set(dm.split[p]) for p in ("train", "val", "test")}
    assert not (parts["train"] & parts["test"]) and not (parts["val"] & parts["test"])
    assert not (parts["train"] & parts["val"])
    assert sum(map(len, parts.values())) == 15 and len(parts["test"]) == 3
    # the test loader holds exactly the test tracks' features, and no training window comes from them
    test_rows = {dm.features[i].tobytes() for i in dm.idx["test"]}
    assert not test_rows & {dm.features[i].tobytes() for i in dm.idx["train"]}
    again = make_dm(root)
    assert again.split == dm.split
    assert list(dm.cache_dir.glob("split-random-*.json"))
    assert dm.cache_dir.parent == home() / "data" / "cache"  # never beside the user's audio


def test_missing_dataset_says_what_to_do(tmp_path):
    dm = GenreDataModule(Gtzan(str(tmp_path / "nothing"), download=False))
    with pytest.raises(DataError, match="configs/demo.yaml"):
        dm.prepare_data()


def test_all_bad_folder_is_one_clear_error(tmp_path):
    for g in ("a", "b"):
        (tmp_path / "bad" / g).mkdir(parents=True)
        (tmp_path / "bad" / g / "x.wav").write_text("not audio")
    dm = GenreDataModule(Folder(str(tmp_path / "bad")), FeatureStore(workers=1))
    with pytest.raises(DataError, match=r"no usable audio file in .*bad"):
        dm.prepare_data()


@needs_gtzan_mini
def test_real_clips_with_the_artist_filtered_lists():
    dm = GenreDataModule(Folder(str(GTZAN_MINI)), FeatureStore(workers=2), Split("lists", str(GTZAN_SPLITS)))
    dm.prepare_data()
    dm.setup("fit")
    assert dm.genres[0] == "blues" and len(dm.genres) == 10
    assert {p: len(i) for p, i in dm.idx.items()} == {"train": 40, "val": 49, "test": 4}
    assert dm.features.shape == (100, 140, 1 + 30 * SR // 512)


@pytest.mark.parametrize("family", ["cnn", "dense"])
def test_the_training_loader_yields_only_training_clips(tmp_path, family):
    """Traces every example the training loader yields back to the clip it was cut from."""
    dm = make_dm(tone_folder(tmp_path / "a"), family=family)
    w = dm.window
    owner: dict[bytes, int] = {}  # every window (or vector) any clip could give -> that clip's row
    for row, feats in enumerate(dm.features.astype(np.float32)):
        if family == "cnn":
            for start in range(feats.shape[-1] - w + 1):
                owner[feats[:, start:start + w].tobytes()] = row
        else:
            owner[feats.tobytes()] = row
    seen = {owner[x.numpy().tobytes()] for _ in range(3) for batch in dm.train_dataloader() for x in batch[0]}
    assert seen == set(dm.idx["train"].tolist())  # every training clip, and nothing else: no val, no test clip
    assert not seen & set(dm.idx["test"].tolist())


def test_the_cache_and_split_can_be_built_alone_from_the_command_line(tmp_path):
    """What a run on several machines does first, once (README): train.py's --data.* options, no training."""
    root = tone_folder(tmp_path / "a")
    env = {**os.environ, "GENRE_CNN_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "genre_cnn.training.datamodule", "--data.source", "Folder",
                           "--data.source.data_dir", str(root), "--data.features.clip_seconds", "4",
                           "--data.features.workers", "1",
                           "--data.streaming", "true"], capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "{'train': 9, 'val': 3, 'test': 3}" in proc.stdout
    (cache,) = (tmp_path / "home" / "data" / "cache").iterdir()  # where a training run with these options looks
    assert len(list(cache.glob("clips/*/*.npz"))) == 15 and list(cache.glob("split-random-*.json"))
    assert (cache / "complete.json").is_file()
    (shards,) = cache.glob("stream-*")  # and the training clips' shards, which it names
    assert f"training clips as LitData shards: {shards}" in proc.stdout and (shards / "index.json").is_file()


def test_prepare_data_on_a_complete_cache_opens_no_entry_and_recomputes_a_changed_file(tmp_path, monkeypatch):
    from genre_cnn.data import cache

    root = tone_folder(tmp_path / "a")
    dm = make_dm(root)
    opened = []
    real = cache._entry
    monkeypatch.setattr(cache, "_entry", lambda entry, source: opened.append(entry) or real(entry, source))
    dm.prepare_data()  # Lightning calls it before every fit and test
    assert opened == []
    changed = root / "low" / "low.00002.wav"
    sf.write(changed, 0.3 * np.sin(2 * np.pi * 300 * np.arange(4 * SR) / SR), SR)  # edited since it was cached
    entry = dm.cache_dir / "clips" / "low" / "low.00002.wav.npz"
    before = np.load(entry)["spec"].copy()
    dm.prepare_data()
    assert len(opened) == 15 and not np.array_equal(np.load(entry)["spec"], before)  # checked, and that one redone
    opened.clear()
    dm.prepare_data()
    assert opened == []


def test_a_cache_of_an_earlier_version_is_used_as_it_is(tmp_path, monkeypatch):
    from genre_cnn.data import cache

    root = tone_folder(tmp_path / "a")
    dm = make_dm(root)
    (dm.cache_dir / "complete.json").unlink()  # earlier versions kept no record; entries at clips/<genre>/<file>.npz
    monkeypatch.setattr(cache, "_compute", lambda job: pytest.fail(f"recomputed {job[0]}"))
    dm.prepare_data()
    assert (dm.cache_dir / "complete.json").is_file()


def test_files_of_one_name_in_two_folders_of_a_genre_are_two_clips(tmp_path):
    root = tone_folder(tmp_path / "a", per_genre=4)
    for album in ("live", "studio"):  # an album folder inside a genre folder
        (root / "low" / album).mkdir()
        sf.write(root / "low" / album / "intro.wav", 0.3 * np.sin(np.arange(4 * SR) / (4 + len(album))), SR)
    dm = make_dm(root)
    keys = sum(dm.split.values(), [])
    assert {"low/live/intro.wav", "low/studio/intro.wav"} <= set(keys) and len(keys) == 14
    live, studio = (dm.cache_dir / "clips" / "low" / album / "intro.wav.npz" for album in ("live", "studio"))
    assert not np.array_equal(np.load(live)["spec"], np.load(studio)["spec"])
