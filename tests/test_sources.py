"""The data layer in parts: dataset kinds (genre_cnn.data.sources), each with its own options, the clip-indexed
features (genre_cnn.data.clipset, genre_cnn.data.store) and a DataModule that composes them, whose prepare_data
keeps no state (Lightning runs it on one process only).

    .venv/bin/python -m pytest -q tests/test_sources.py
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from genre_cnn.audio.features import SpectralFeatures
from genre_cnn.data.sources import kinds
from genre_cnn.data.sources.demo import Demo
from genre_cnn.data.sources.folder import Folder
from genre_cnn.data.sources.gtzan import Gtzan
from genre_cnn.data.store import FeatureStore
from genre_cnn.errors import SettingsError
from genre_cnn.training.datamodule import GenreDataModule
from tests.test_datamodule import tone_folder


def test_each_kind_lists_its_genres_and_clips(tmp_path):
    root = tone_folder(tmp_path / "a", per_genre=2)
    (root / "low" / "notes.txt").write_text("not audio")
    folder = Folder(str(root))
    folder.ensure()
    assert folder.genres() == ["high", "low", "mid"] and folder.official_split() is None
    assert [c.key for c in folder.clips()] == [f"{g}/{g}.{i:05d}.wav" for g in ("high", "low", "mid") for i in (0, 1)]

    gtzan = Gtzan(str(root), download=False)
    assert len(gtzan.genres()) == 10 and gtzan.genres()[0] == "blues"
    with pytest.raises(SettingsError, match="not GTZAN's .*--data.source Folder"):
        gtzan.clips()

    demo = Demo(str(tmp_path / "demo"), clips_per_genre=2, seconds=1.0)
    demo.ensure()
    assert len(demo.clips()) == 2 * len(demo.genres()) and {c.genre for c in demo.clips()} == set(demo.genres())
    assert set(kinds()) >= {"CsvList", "Demo", "Fma", "Folder", "Gtzan"}


def test_several_folders_are_one_dataset_whose_keys_name_the_folder(tmp_path):
    a = tone_folder(tmp_path / "a", genres=("low", "mid"), per_genre=2)
    b = tone_folder(tmp_path / "b", genres=("mid", "high"), per_genre=2)  # the same file names as a's
    both = Folder([str(a), str(b)])
    assert both.genres() == ["high", "low", "mid"]
    keys = [c.key for c in both.clips()]
    assert len(keys) == len(set(keys)) == 8 and "mid/a/mid.00000.wav" in keys and "mid/b/mid.00000.wav" in keys


def test_an_option_a_kind_does_not_have_is_refused_by_the_command_line(tmp_path, capsys):
    from genre_cnn.training.train import cli

    with pytest.raises(SystemExit) as exit_:
        cli(["--data.source", "Folder", "--data.source.data_dir", str(tmp_path), "--data.source.subset", "medium",
             "--output_root", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert exit_.value.code == 2 and len(err.splitlines()) == 1 and "--data.source" in err and "subset" in err, err


def test_a_clip_set_serves_cached_features_by_clip_without_lightning(tmp_path):
    root = tone_folder(tmp_path / "a", per_genre=2, seconds=3.5)
    store, source, extractor = FeatureStore(clip_seconds=3.5, workers=1), Folder(str(root)), SpectralFeatures()
    store.prepare(source, extractor)
    clips = store.clipset(source, extractor, "hand")
    assert len(clips) == 6 and clips.features.shape[0] == 6
    x, y = clips[5]
    assert clips.keys[5] == "mid/mid.00001.wav" and clips.genres[y] == "mid"
    np.testing.assert_array_equal(x.numpy(), clips.features[5])
    code = "import sys, genre_cnn.data.store, genre_cnn.data.sources.gtzan; print('lightning' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"


def test_prepare_data_writes_the_cache_and_keeps_no_state(tmp_path):
    dm = GenreDataModule(Folder(str(tone_folder(tmp_path / "a"))), FeatureStore(clip_seconds=4.0, workers=1))
    before = dict(vars(dm))
    dm.prepare_data()
    assert dict(vars(dm)) == before  # Lightning runs it on one process: state set here would be missing on others
    assert len(list(dm.cache_dir.rglob("*.npz"))) == 15
    dm.setup("fit")  # every process: the split and the features
    assert sum(map(len, dm.idx.values())) == 15 and dm.features.shape[0] == 15


def test_a_csv_of_paths_and_genres_is_a_dataset_kind_of_its_own_that_trains(tmp_path):
    """The fifth kind, genre_cnn/data/sources/csvlist.py, one module: nothing else names it."""
    import csv

    from genre_cnn.training.train import main

    a = tone_folder(tmp_path / "a", per_genre=3)
    b = tone_folder(tmp_path / "b", per_genre=3, seconds=4.5)  # other audio: not copies of a's clips
    rows = [(f"{folder.name}/{g}/{g}.{i:05d}.wav", g) for folder in (a, b) for g in ("low", "mid", "high")
            for i in range(3)]
    rows.append((str(b / "low" / "low.00000.wav"), "low"))  # absolute, and the same file again: one clip
    rows.append(("a/missing.wav", "low"))  # no such file: left out
    with open(tmp_path / "clips.csv", "w", newline="") as f:
        csv.writer(f).writerows([("path", "genre"), *rows])
    source = kinds()["CsvList"](str(tmp_path / "clips.csv"))
    assert source.genres() == ["high", "low", "mid"]
    keys = [c.key for c in source.clips()]
    assert len(keys) == len(set(keys)) == 18 and "low/a/low/low.00000.wav" in keys and "low/b/low/low.00000.wav" in keys
    results = main(["--data.source", "CsvList", "--data.source.csv", str(tmp_path / "clips.csv"),
                    "--data.features.clip_seconds", "4", "--data.features.workers", "1", "--models", "[dense]",
                    "--trainer.max_epochs", "2", "--data.crops_per_clip", "2", "--trainer.enable_progress_bar", "false",
                    "--output_root", str(tmp_path / "out"), "--run_name", "csv"])
    assert results["dense"]["clips"] == 4 and len(results["dense"]["per_genre"]) == 3
    assert "CsvList" in (tmp_path / "out" / "runs" / "csv" / "config.yaml").read_text()
    from tests.test_structure import import_graph

    assert [m for m, deps in import_graph().items() if "genre_cnn.data.sources.csvlist" in deps] == []  # none

