"""Checkpoints written by earlier versions (tests/fixtures/legacy: a demo run's CNN and dense models; the ready
model that version shipped, whose file carries the musicnn backbone) load and answer as they did then (with no open-set
answer: they have no detector); a musicnn model of this version
holds no backbone, loads the referenced weights, and answers as the same model carrying them.

    .venv/bin/python -m pytest -q tests/test_legacy.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genre_cnn.inference.predict import load_model

LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"
EXPECTED = json.loads((LEGACY / "expected.json").read_text())
READY_MODEL = LEGACY / EXPECTED["ready"]["file"]  # the ready model an earlier version shipped, backbone included


def waves(rate: int) -> list[np.ndarray]:
    """The two waveforms the expectations were computed on (as tests/fixtures/legacy/expect.py made them)."""
    rng = np.random.default_rng(0)
    t = np.arange(int(5 * rate)) / rate
    return [(0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(t.size)).astype(np.float32),
            (0.2 * rng.standard_normal(t.size)).astype(np.float32)]


def answers(model) -> list[np.ndarray]:
    return [model.predict_waveform(torch.from_numpy(w)).numpy() for w in waves(model.sample_rate)]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_an_earlier_versions_checkpoint_answers_as_it_did(name):
    expected = EXPECTED[name]
    model = load_model(LEGACY / expected["file"])
    assert type(model).__name__ == expected["class"] and model.genres == expected["genres"]
    assert float(model.temperature) == pytest.approx(expected["temperature"], rel=1e-6)
    # float32 sums of the same operations: differences come from summation order only
    np.testing.assert_allclose(answers(model), expected["probabilities"], atol=2e-6, rtol=0)
    model.temperature.fill_(1.0)
    np.testing.assert_allclose(answers(model), expected["probabilities_at_t1"], atol=2e-6, rtol=0)


def test_the_ready_models_backbone_is_the_referenced_one_and_a_new_checkpoint_does_without_it(tmp_path):
    from genre_cnn.models.musicnn import MSD_MUSICNN, backbone_state

    carried = torch.load(READY_MODEL, weights_only=True)["state_dict"]
    assert all(torch.equal(carried[f"backbone.{k}"], v) for k, v in backbone_state(MSD_MUSICNN).items())
    model = load_model(READY_MODEL)
    state = model.state_dict()  # what this version saves of it
    assert not any(k.startswith("backbone.") for k in state) and len(state) < len(carried) / 5
    hp = {**torch.load(READY_MODEL, weights_only=True)["hyper_parameters"], "backbone": MSD_MUSICNN}
    torch.save({"genre_cnn_class": "MusicnnClassifier", "hyper_parameters": hp, "state_dict": state},
               tmp_path / "new.ckpt")
    assert (tmp_path / "new.ckpt").stat().st_size < READY_MODEL.stat().st_size / 20
    again = load_model(tmp_path / "new.ckpt")  # the backbone comes from the musicnn wheel, by its reference
    np.testing.assert_allclose(answers(again), EXPECTED["ready"]["probabilities"], atol=2e-6, rtol=0)


def test_weights_that_do_not_match_the_reference_are_refused(tmp_path, monkeypatch):
    from genre_cnn.models import musicnn

    monkeypatch.setattr(musicnn, "pretrained_state", lambda: {"timbral.0.conv.weight": torch.zeros(1)})  # others
    monkeypatch.setattr(musicnn, "pretrained_path", lambda: tmp_path / "msd_musicnn.pt")
    musicnn.backbone_state.cache_clear()
    try:
        with pytest.raises(musicnn.BackboneError, match="are not MSD_musicnn@sha256:"):
            musicnn.backbone_state(musicnn.MSD_MUSICNN)
        with pytest.raises(musicnn.BackboneError, match="unknown musicnn weights 'MTT_musicnn'"):
            musicnn.backbone_state("MTT_musicnn")
    finally:
        musicnn.backbone_state.cache_clear()
