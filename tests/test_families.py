"""A model family is one module: a fourth family (tests/toy_family.py, a plugin's module) registered from here plus a
config (tests/fixtures/toy.yaml) trains, tests, predicts, exports and is chosen like the built-in ones, with nothing
else touched; the families' registry and legacy rules.

    .venv/bin/python -m pytest -q tests/test_families.py
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from genre_cnn.models import families
from tests import toy_family
from tests.conftest import DEMO_ARGS

TOY_CONFIG = Path(__file__).resolve().parent / "fixtures" / "toy.yaml"


@pytest.fixture
def toy():
    """The toy family, registered for one test only, ranked after the built-in ones."""
    family = families.register(toy_family.FAMILY)
    yield family
    families.unregister(family.name)


@pytest.mark.slow
def test_a_fourth_family_trains_tests_predicts_exports_and_is_chosen(toy, demo_dir, tmp_path):
    import soundfile as sf

    from genre_cnn.inference.api import predict_files
    from genre_cnn.inference.export import export_onnx
    from genre_cnn.inference.onnx_predict import OnnxRunner
    from genre_cnn.inference.predict import TorchRunner, load_model
    from genre_cnn.models.checkpoint import latest_checkpoint
    from genre_cnn.training.train import main

    results = main([*DEMO_ARGS, "--config", str(TOY_CONFIG), "--run_name", "toy", "--output_root", str(tmp_path)])
    assert set(results) == {"toy"} and results["toy"]["clip_acc"] >= 0.5  # 4 genres: chance is 25%
    report = (tmp_path / "runs" / "toy" / "report.md").read_text()
    assert "| toy |" in report

    ckpt = latest_checkpoint(tmp_path)  # the run's only family, chosen by its record
    assert ckpt.parent.name == "toy"
    model = load_model(ckpt)  # found by its class name among the registered families, no pickle
    assert type(model) is toy_family.ToyClassifier and model.net[0].out_features == 24
    clips = sorted(demo_dir.rglob("*.wav"))[:3]
    answers, skipped = predict_files(model, clips, progress=False)
    assert not skipped and len(answers) == 3

    graph = export_onnx(model, tmp_path / "toy.onnx")
    onnx, torch_ = OnnxRunner(graph), TorchRunner(model)
    for clip in clips:
        y = sf.read(clip, dtype="float32")[0]
        np.testing.assert_allclose(onnx.window_probs(y), torch_.window_probs(y), atol=1e-4)


def test_its_options_and_ranges_are_its_own(toy, capsys, tmp_path):
    from genre_cnn.training.train import build_parser, cli

    assert "--toy.hidden" in build_parser().format_help()
    with pytest.raises(SystemExit) as exit_:
        cli([*DEMO_ARGS, "--config", str(TOY_CONFIG), "--toy.hidden", "0", "--output_root", str(tmp_path)])
    assert exit_.value.code == 2 and capsys.readouterr().err.strip() == "error: --toy.hidden must be a whole " \
                                                                         "number between 1 and 1024, got 0"


def test_an_unregistered_class_is_refused_and_a_family_is_found_by_its_class_name(toy):
    assert families.of("ToyClassifier") is toy and families.of(toy_family.ToyClassifier) is toy
    assert families.of("WindowClassifier").name == "cnn"
    assert families.of("Unpickler") is None
    assert list(families.best_first())[:3] == ["musicnn", "cnn", "dense"]  # the built-ins' order of preference
    with pytest.raises(KeyError, match="known: cnn, dense, musicnn, toy"):
        families.get("nope")


def test_no_family_record_names_the_training_layer():
    for family in families.all().values():
        assert family.classifier_path.startswith("genre_cnn.models.families.")
    source = (Path(families.__file__)).read_text()
    assert "genre_cnn.training" not in source


def test_legacy_values_fill_settings_that_a_checkpoint_predates():
    cnn = families.get("cnn")
    assert cnn.build({"genres": ["a", "b"]}).net.stem is None  # a checkpoint without `stem` had none
    assert cnn.build({"genres": ["a", "b"], "stem": 8}).net.stem is not None


def test_callers_ask_a_classifier_what_it_hears_not_its_front_end():
    import torch

    genres = ["a", "b"]
    cnn, dense, musicnn = (families.get(n).build({"genres": genres}) for n in ("cnn", "dense", "musicnn"))
    assert (cnn.sample_rate, musicnn.sample_rate) == (22050, 16000)
    assert cnn.window_samples == (cnn.window - 1) * 512 and cnn.clip_samples is None
    assert dense.window_samples is None and dense.clip_samples == 30 * 22050
    feats, config = musicnn.feature_view(torch.zeros(16000))
    assert feats.shape[0] == config.n_mels == 96 and not config.chroma
    from genre_cnn.models.families.base import GenreClassifier

    class Raw(GenreClassifier):  # a family that hears no spectrogram: nothing is assumed of it
        inputs, cached = "vectors", "hand"

    assert Raw(genres).feature_view(torch.zeros(100)) is None and Raw(genres).window_samples is None
