"""The data layer in parts: dataset kinds (genre_cnn.data.sources), the clip-indexed features
(genre_cnn.data.clipset) and a DataModule that composes them, whose prepare_data keeps no state (Lightning runs
it on one process only).

    .venv/bin/python -m pytest -q tests/test_sources.py
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from genre_cnn.data.cache import FeatureSettings
from genre_cnn.data.clipset import ClipSet
from genre_cnn.data.sources import KINDS, open_source
from genre_cnn.errors import SettingsError
from genre_cnn.training.datamodule import GenreDataModule
from tests.test_datamodule import tone_folder


def test_each_kind_lists_its_genres_and_clips(tmp_path):
    root = tone_folder(tmp_path / "a", per_genre=2)
    (root / "low" / "notes.txt").write_text("not audio")
    folder = open_source("folder", root, download=True)  # an option the kind does not take is ignored
    folder.ensure()
    assert folder.genres() == ["high", "low", "mid"] and folder.official_split() is None
    assert [c.key for c in folder.clips()] == [f"{g}/{g}.{i:05d}.wav" for g in ("high", "low", "mid") for i in (0, 1)]

    gtzan = open_source("gtzan", root, download=False)
    assert len(gtzan.genres()) == 10 and gtzan.genres()[0] == "blues"
    with pytest.raises(SettingsError, match="not GTZAN's .*--data.dataset folder"):
        gtzan.clips()

    demo = open_source("demo", tmp_path / "demo", demo_clips_per_genre=2, clip_seconds=1.0)
    demo.ensure()
    assert len(demo.clips()) == 2 * len(demo.genres()) and {c.genre for c in demo.clips()} == set(demo.genres())


def test_an_unknown_kind_is_one_line_naming_the_known_ones(tmp_path):
    known = ", ".join(KINDS)
    with pytest.raises(SettingsError, match=f"--data.dataset 'fmaa' is not a dataset kind \\(known: {known}"):
        open_source("fmaa", tmp_path)
    with pytest.raises(SettingsError, match="--data.dataset 'nope'"):
        GenreDataModule(dataset="nope", data_dir=str(tmp_path))


def test_a_clip_set_serves_cached_features_by_clip_without_lightning(tmp_path):
    root = tone_folder(tmp_path / "a", per_genre=2, seconds=3.5)
    clips = ClipSet.prepare(open_source("folder", root), FeatureSettings(clip_seconds=3.5), "hand", workers=1)
    assert len(clips) == 6 and clips.features.shape[0] == 6
    x, y = clips[5]
    assert clips.keys[5] == "mid/mid.00001.wav" and clips.genres[y] == "mid"
    np.testing.assert_array_equal(x.numpy(), clips.features[5])
    code = "import sys, genre_cnn.data.clipset, genre_cnn.data.sources.gtzan; print('lightning' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_prepare_data_writes_the_cache_and_keeps_no_state(tmp_path):
    dm = GenreDataModule(dataset="folder", data_dir=str(tone_folder(tmp_path / "a")), clip_seconds=4.0,
                         cache_workers=1)
    before = dict(vars(dm))
    dm.prepare_data()
    assert dict(vars(dm)) == before  # Lightning runs it on one process: state set here would be missing on others
    assert len(list(dm.cache_dir.rglob("*.npz"))) == 15
    dm.setup("fit")  # every process: the split and the features
    assert sum(map(len, dm.idx.values())) == 15 and dm.features.shape[0] == 15
