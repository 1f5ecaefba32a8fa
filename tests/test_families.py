"""A model family is one record and one module: a family registered from here (this file holds its classifier and
its LightningModule) trains, tests, predicts, exports and is chosen like the built-in ones, with nothing else
touched.

    .venv/bin/python -m pytest -q tests/test_families.py
"""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from torch import nn

from genre_cnn.audio.features import SpectralFeatures
from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig, track_windows
from genre_cnn.models import families
from genre_cnn.models.families.base import GenreClassifier
from genre_cnn.training.lit import LitGenre
from tests.conftest import DEMO_ARGS


class TinyClassifier(GenreClassifier):
    """Each window's mean log-mel + chroma frame through one linear layer: a family in a dozen lines."""

    inputs = "windows"
    cached = "spec"

    @staticmethod
    def features(frontend: FrontEndConfig) -> SpectralFeatures:
        return SpectralFeatures(frontend)

    def __init__(self, genres: list[str], frontend: FrontEndConfig | dict | None = None, window_seconds: float = 3.0,
                 hidden: int = 16):
        super().__init__(genres)
        self.frontend = FrontEnd(frontend)
        self.window = self.frontend.config.window_frames(window_seconds)
        self.net = nn.Sequential(nn.Linear(self.frontend.config.channels, hidden), nn.ReLU(),
                                 nn.Linear(hidden, len(genres)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.mean(dim=-1) / 10)  # (B, C, W) -> (B, n)

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x.flatten(0, 1)).view(x.shape[0], x.shape[1], -1)  # (B, K, C, W) -> (B, K, n)

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        return track_windows(self.frontend(waveform[None])[0], self.window)  # (K, C, W)


class LitTiny(LitGenre):
    family = "tiny"

    def __init__(self, genres: list[str], window_seconds: float = 3.0, hidden: int = 16, **kwargs):
        super().__init__(genres, **kwargs)


@pytest.fixture
def tiny(monkeypatch):
    """The tiny family, registered for one test only, ranked after the built-in ones."""
    me = sys.modules[__name__].__name__
    family = families.Family("tiny", f"{me}:TinyClassifier", f"{me}:LitTiny", exportable=True, preference=50)
    monkeypatch.setitem(families._REGISTRY, "tiny", family)
    return family


@pytest.mark.slow
def test_a_registered_family_trains_tests_predicts_exports_and_is_chosen(tiny, demo_dir, tmp_path):
    from genre_cnn.inference.export import export_onnx
    from genre_cnn.inference.onnx_predict import OnnxRunner
    from genre_cnn.inference.predict import TorchRunner, load_model, predict_files
    from genre_cnn.models.checkpoint import latest_checkpoint
    from genre_cnn.training.train import main

    results = main([*DEMO_ARGS, "--models", "[tiny]", "--tiny.hidden", "24", "--trainer.max_epochs", "4",
                    "--run_name", "tiny", "--output_root", str(tmp_path)])
    assert set(results) == {"tiny"} and results["tiny"]["clip_acc"] >= 0.5  # 4 genres: chance is 25%
    report = (tmp_path / "runs" / "tiny" / "report.md").read_text()
    assert "| tiny |" in report

    ckpt = latest_checkpoint(tmp_path)  # the run's only family, chosen by its record
    assert ckpt.parent.name == "tiny"
    model = load_model(ckpt)  # found by its class name among the registered families, no pickle
    assert type(model) is TinyClassifier and model.net[0].out_features == 24
    clips = sorted(demo_dir.rglob("*.wav"))[:3]
    answers, skipped = predict_files(model, clips, progress=False)
    assert not skipped and len(answers) == 3

    graph = export_onnx(model, tmp_path / "tiny.onnx")
    onnx, torch_ = OnnxRunner(graph), TorchRunner(model)
    for clip in clips:
        import soundfile as sf

        y = sf.read(clip, dtype="float32")[0]
        np.testing.assert_allclose(onnx.window_probs(y), torch_.window_probs(y), atol=1e-4)


def test_an_unregistered_class_is_refused_and_a_family_is_found_by_its_class_name(tiny):
    assert families.of("TinyClassifier") is tiny and families.of(TinyClassifier) is tiny
    assert families.of("WindowClassifier").name == "cnn"
    assert families.of("Unpickler") is None
    assert list(families.best_first())[:3] == ["musicnn", "cnn", "dense"]  # the built-ins' order of preference
    with pytest.raises(KeyError, match="known: cnn, dense, musicnn, tiny"):
        families.get("nope")


def test_legacy_values_fill_settings_that_a_checkpoint_predates():
    cnn = families.get("cnn")
    assert cnn.build({"genres": ["a", "b"]}).net.stem is None  # a checkpoint without `stem` had none
    assert cnn.build({"genres": ["a", "b"], "stem": 8}).net.stem is not None
