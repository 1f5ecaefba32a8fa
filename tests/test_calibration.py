"""Calibrated probabilities: the temperature fit recovers a known temperature, ECE is measured as defined, a model
applies its temperature without changing its answers, older checkpoints load with T = 1, and training stores the
temperature fitted on its validation clips in the checkpoint it tests."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genre_cnn.models.families.musicnn import MusicnnClassifier
from genre_cnn.training.calibration import expected_calibration_error, fit_temperature


@pytest.mark.parametrize("true_t", [1.5, 4.0])
def test_the_fit_recovers_the_temperature_that_made_the_labels(true_t):
    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, size=(4000, 1, 5))  # (N, K=1, n)
    p = torch.from_numpy(logits[:, 0] / true_t).softmax(-1).numpy()  # the labels' distribution, written out
    labels = np.array([rng.choice(5, p=row) for row in p])
    assert fit_temperature(logits, labels) == pytest.approx(true_t, rel=0.1)  # 4000 draws: a few % of noise


def test_a_model_right_on_every_held_out_clip_is_never_made_surer():
    logits = np.array([[[4.0, 0.0]], [[0.0, 3.0]], [[5.0, 1.0]]])  # all three right
    assert fit_temperature(logits, np.array([0, 1, 0])) == pytest.approx(1.0)


def test_ece_by_hand():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.45, 0.55]])
    labels = np.array([0, 1, 1, 1])
    # bins of the top probability: 0.9 -> bin 9 (right), 0.8 -> bin 8 (wrong), 0.7 -> bin 7 (right), 0.55 -> bin 5
    expected = 0.25 * (abs(1 - 0.9) + abs(0 - 0.8) + abs(1 - 0.7) + abs(1 - 0.55))
    assert expected_calibration_error(probs, labels) == pytest.approx(expected, abs=1e-12)


def test_a_model_applies_its_temperature_and_old_checkpoints_load_with_one():
    torch.manual_seed(0)
    model = MusicnnClassifier(["a", "b", "c"], widths=(8,)).eval()
    x = torch.randn(6, 250)
    state = {k: v for k, v in model.state_dict().items() if k != "temperature"}  # as saved before temperatures
    old = MusicnnClassifier(["a", "b", "c"], widths=(8,))
    old.temperature.fill_(7.0)
    old.load_state_dict(state)
    assert float(old.temperature) == 1.0
    plain = model.clip_probs(x)[0]
    model.temperature.fill_(3.0)
    warm = model.clip_probs(x)[0]
    torch.testing.assert_close(warm, (model(x) / 3.0).softmax(-1))
    assert torch.equal(warm.argmax(-1), plain.argmax(-1)) and warm.max() < plain.max()


def test_training_stores_the_validation_temperature_in_the_tested_checkpoint(demo_run):
    for name, result in demo_run["results"].items():
        cal = result["calibration"]
        saved = torch.load(result["checkpoint"], map_location="cpu", weights_only=True)["state_dict"]
        assert float(saved["model.temperature"]) == pytest.approx(cal["temperature"]), name
        assert cal["ece_after"] <= cal["ece_before"] + 0.05, name  # fitted on those clips: rarely worse
