"""Training the open-set detector with the musicnn family (`--musicnn.openset true --data.negatives ...`), the checks
a checkpoint's detector must pass before it is loaded, and the non-music recordings made from Debian's packages.

    .venv/bin/python -m pytest -q tests/test_openset_training.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from genre_cnn.data.layout import DataError
from genre_cnn.inference.predict import READY_MODEL, CheckpointError, load_model
from tests.conftest import DEMO_ARGS


def negatives(folder: Path, rate: int = 16000) -> Path:
    """A folder per kind of non-music, three generated recordings each: knocks (20-ms decaying noise bursts, 4-10 a
    second) and mains hum, 1-3 s."""
    rng = np.random.default_rng(11)
    for i in range(3):
        t = np.arange(int((1 + i) * rate)) / rate
        knocks = np.zeros(t.size)
        for start in range(0, t.size - 320, int(rate / (4 + 3 * i))):
            knocks[start:start + 320] = rng.standard_normal(320) * np.exp(-np.arange(320) / 60)
        hum = np.sin(2 * np.pi * (50 + 10 * i) * t) + 0.05 * rng.standard_normal(t.size)
        for kind, y in (("knocks", knocks), ("hum", hum)):
            (folder / kind).mkdir(parents=True, exist_ok=True)
            sf.write(folder / kind / f"{kind}{i}.wav", (0.5 * y / np.abs(y).max()).astype(np.float32), rate)
    return folder


def test_a_run_with_openset_saves_the_detector_of_its_training_clips_and_negatives(demo_dir, tmp_path):
    """The validated fit's tested checkpoint holds the detector fitted on the clips that model learnt from (not its
    validation or test clips) and on the negatives' cached features, and answers with it."""
    from genre_cnn.data.sources.demo import Demo
    from genre_cnn.data.sources.folder import Folder
    from genre_cnn.data.store import FeatureStore
    from genre_cnn.inference.predict import predict_one
    from genre_cnn.inference.torch_runner import TorchRunner
    from genre_cnn.models.openset import fit_detector
    from genre_cnn.training.datamodule import GenreDataModule
    from genre_cnn.training.openset import negative_vectors
    from genre_cnn.training.train import main

    folder = negatives(tmp_path / "negatives")
    results = main([*DEMO_ARGS, "--models", "[musicnn]", "--musicnn.openset", "true", "--data.negatives", "Folder",
                    "--data.negatives.data_dir", str(folder), "--trainer.max_epochs", "2",
                    "--output_root", str(tmp_path / "out"), "--run_name", "openset"])
    assert results["musicnn"]["openset"]["negatives"] == 6
    ckpt = tmp_path / "out" / "checkpoints" / "openset" / "musicnn" / "best.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    dm = GenreDataModule(Demo(), FeatureStore(clip_seconds=8.0), family="musicnn", negatives=Folder(str(folder)))
    dm.setup("fit")
    train = dm.idx["train"]
    assert saved["hyper_parameters"]["openset_references"] == len(train) < len(dm.labels)
    want = fit_detector(dm.features[train], dm.labels[train], negative_vectors(dm), classes=4, music_gate=True)
    for key, value in want.state_dict().items():
        assert torch.equal(saved["state_dict"][f"model.detector.{key}"], value), key
    model = load_model(ckpt)
    assert model.detector is not None
    res, _ = predict_one(TorchRunner(model), folder / "hum" / "hum2.wav")
    assert res["music"]["verdict"] == "not music"


def test_the_detectors_size_is_set_by_training_not_an_option(capsys):
    from genre_cnn.training.train import main

    with pytest.raises(SystemExit) as stop:
        main([*DEMO_ARGS, "--models", "[musicnn]", "--musicnn.openset_references", "5"])
    assert stop.value.code == 2
    assert "unknown option --musicnn.openset_references" in capsys.readouterr().err


@pytest.mark.parametrize(("change", "refused"), [
    (lambda c: c["state_dict"]["model.detector.std"].zero_(), "detector.std holds values outside"),
    (lambda c: c["state_dict"]["model.detector.music_floor"].fill_(2.0), "detector.music_floor holds values outside"),
    (lambda c: c["state_dict"]["model.detector.references"].neg_(), "detector.references holds values outside"),
    (lambda c: c["hyper_parameters"].update(openset_references=189), "has shape"),
    (lambda c: c["hyper_parameters"].update(openset_references=-1), "openset_references must be"),
    (lambda c: c["hyper_parameters"].update(openset="yes"), "openset must be true or false"),
    (lambda c: c["hyper_parameters"].update(openset=False), "that its settings do not build"),
])
def test_a_checkpoint_whose_detector_is_out_of_bounds_is_refused(tmp_path, change, refused):
    checkpoint = torch.load(READY_MODEL, map_location="cpu", weights_only=True)
    change(checkpoint)
    torch.save(checkpoint, tmp_path / "m.ckpt")
    with pytest.raises(CheckpointError, match=refused):
        load_model(tmp_path / "m.ckpt")


def test_the_non_music_sets_are_made_or_named_with_their_packages(tmp_path):
    from genre_cnn.data.nonmusic import NonMusic, recordings

    made = recordings("noise", tmp_path)
    assert len(made) == 40 and [p.name for p in made] == sorted(p.name for p in made)
    seconds = [sf.info(p).duration for p in made]
    assert 2 <= min(seconds) and max(seconds) <= 8
    before = made[7].read_bytes()
    made[7].unlink()
    assert recordings("noise", tmp_path)[7].read_bytes() == before  # each file the same, whichever are missing
    with pytest.raises(DataError, match="apt-get install frozen-bubble-data chromium-bsu-data extremetuxracer-data "
                                        "lincity-ng-data pingus-data"):
        recordings("effects", tmp_path, root=tmp_path)  # a machine without the games' packages
    with pytest.raises(DataError, match="at least two of"):
        NonMusic(sets=["noise"])
