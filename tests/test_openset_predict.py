"""The open-set answer in prediction: the ready model's detector answers through PyTorch and ONNX Runtime alike, on
real clips and on generated non-music, from the same pooled embedding as its genres (the mean of the windows read);
its verdict reaches predict_one's result as "music"; a model without a detector gives no such field.

    .venv/bin/python -m pytest -q tests/test_openset_predict.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from genre_cnn.inference.predict import READY_MODEL, load_model, predict_one, result
from genre_cnn.inference.torch_runner import TorchRunner
from genre_cnn.inference.track import track_answer
from genre_cnn.models.openset import VERDICTS

UNSEEN = Path(__file__).resolve().parents[2] / "shared" / "gtzan_unseen" / "genres"
REAL_CLIPS = [UNSEEN / "jazz" / "jazz.00091.flac", UNSEEN / "classical" / "classical.00075.flac",
              UNSEEN / "rock" / "rock.00080.flac"]
LEGACY = Path(__file__).resolve().parent / "fixtures" / "legacy"
RATE = 16000


def non_music(folder: Path) -> list[Path]:
    """White noise (4 s), a sine sweep (3 s), knocks (5 s: a 20-ms decaying noise burst every 0.2 s) and mains hum
    (1.5 s, looped by prediction), at 16 kHz, drawn with a seed of their own (not the recordings the detector was fitted
    on)."""
    rng = np.random.default_rng(3)
    folder.mkdir(parents=True, exist_ok=True)
    t = {s: np.arange(int(s * RATE)) / RATE for s in (4, 3, 5, 1.5)}
    knocks = np.zeros(t[5].size)
    burst = rng.standard_normal(320) * np.exp(-np.arange(320) / 60)  # 20 ms
    for start in range(0, knocks.size - 320, 3200):
        knocks[start:start + 320] = burst
    signals = {"white.wav": rng.standard_normal(t[4].size),
               "sweep.wav": np.sin(2 * np.pi * (200 * t[3] + 3000 * t[3] ** 2 / 6)),
               "knocks.wav": knocks,
               "hum.wav": np.sin(2 * np.pi * 50 * t[1.5]) + 0.3 * np.sin(2 * np.pi * 150 * t[1.5])}
    for name, y in signals.items():
        sf.write(folder / name, (0.5 * y / np.abs(y).max()).astype(np.float32), RATE)
    return [folder / name for name in signals]


@pytest.fixture(scope="module")
def engines():
    """(the ready model, its TorchRunner, its shipped graph's OnnxRunner)."""
    pytest.importorskip("onnxruntime")
    from genre_cnn.inference.onnx_predict import OnnxRunner, cached_onnx

    model = load_model(READY_MODEL)
    graph = cached_onnx(READY_MODEL)
    assert graph is not None, "the ready model's graphs ship beside it"
    return model, TorchRunner(model), OnnxRunner(graph, threads=1)


def test_the_ready_model_has_a_detector_and_both_graphs_carry_it(engines):
    import onnxruntime as ort

    from genre_cnn.inference.onnx_predict import answer_path, cached_onnx

    model, torch_runner, onnx_runner = engines
    assert model.detector is not None and model.hparams["openset_references"] == 190  # every clip it trained on
    assert torch_runner.verdicts == onnx_runner.verdicts == ["music", "unfamiliar", "not music"]
    for graph in (cached_onnx(READY_MODEL), answer_path(cached_onnx(READY_MODEL))):
        session = ort.InferenceSession(str(graph), providers=["CPUExecutionProvider"])
        assert json.loads(session.get_modelmeta().custom_metadata_map["verdicts"]) == list(VERDICTS)
        assert [o.name for o in session.get_outputs()][-3:] == ["familiarity", "music_probability", "verdict"]


def test_pytorch_and_onnx_agree_on_music_and_non_music(engines, tmp_path):
    """Whole files and 2 windows read alone: the same verdicts, and scores within float32's reach (familiarity is a
    count of references: a distance on a reference's edge may fall on either side of it, one step)."""
    model, torch_runner, onnx_runner = engines
    step = 1 / (model.detector.references.numel() + 1)
    music = [f for f in REAL_CLIPS if f.is_file()]
    for file in music + non_music(tmp_path):
        for max_windows in (None, 2):
            a, b = track_answer(torch_runner, file, max_windows), track_answer(onnx_runner, file, max_windows)
            assert a.music["verdict"] == b.music["verdict"], file
            assert abs(a.music["familiarity"] - b.music["familiarity"]) <= step + 1e-6, file
            np.testing.assert_allclose(a.music["music_probability"], b.music["music_probability"], atol=1e-4)
            np.testing.assert_allclose(a.probs, b.probs, rtol=0, atol=1e-4, err_msg=str(file))
            assert a.music["verdict"] == ("music" if file in music else "not music"), (file, a.music)


def test_a_fresh_answer_graph_carries_the_detector(engines, tmp_path):
    """The export itself (not only the shipped file): the answer graph of the ready model, run on a batch of pooled
    embeddings of music and non-music, gives the detector's outputs and verdict words as PyTorch does."""
    import onnxruntime as ort

    from genre_cnn.audio.decode import load_audio
    from genre_cnn.inference.export import export_answer

    model, torch_runner, _ = engines
    music = [f for f in REAL_CLIPS if f.is_file()]
    files = music + non_music(tmp_path)[:3]  # 3 s or more: one patch at least
    means = np.stack([torch_runner.window_values(load_audio(f, RATE)[: 9 * RATE]).mean(axis=0)
                      for f in files])  # (B, 250)
    session = ort.InferenceSession(str(export_answer(model, tmp_path / "answer.onnx")),
                                   providers=["CPUExecutionProvider"])
    assert json.loads(session.get_modelmeta().custom_metadata_map["verdicts"]) == list(VERDICTS)
    probs, familiarity, probability, verdict = session.run(
        ["probabilities", "familiarity", "music_probability", "verdict"], {"means": means})
    want = torch_runner.openset(means)
    assert verdict.dtype == np.int64 and (verdict == want[2]).all()
    assert verdict.tolist() == [0] * len(music) + [2, 2, 2]  # the music is music, the rest is not
    np.testing.assert_allclose(familiarity, want[0], atol=1 / (model.detector.references.numel() + 1) + 1e-6)
    np.testing.assert_allclose(probability, want[1], atol=1e-5)
    np.testing.assert_allclose(probs, torch_runner.answer(means), atol=1e-5)


class Recording(TorchRunner):
    """A TorchRunner that keeps the values of every window it is shown."""

    def __init__(self, model):
        super().__init__(model)
        self.seen: list[np.ndarray] = []

    def window_values(self, y: np.ndarray) -> np.ndarray:
        values = super().window_values(y)
        self.seen.append(values)
        return values


def test_the_verdict_judges_the_mean_of_the_windows_read(engines, tmp_path):
    """A 45-s file of which 2 windows are read alone, and a 4-s one heard whole: the answer is the detector's (and the
    head's) on the mean embedding of exactly the windows read."""
    model = engines[0]
    rng = np.random.default_rng(5)
    t = np.arange(45 * RATE) / RATE
    chords = sum(np.sin(2 * np.pi * f * t) for f in (220, 277, 330)) * (1 + np.sin(2 * np.pi * 0.3 * t))
    sf.write(tmp_path / "long.wav", (0.2 * chords + 0.02 * rng.standard_normal(t.size)).astype(np.float32), RATE)
    for file, max_windows, windows in ((tmp_path / "long.wav", 2, 2), (non_music(tmp_path)[0], None, 1)):
        runner = Recording(model)
        answer = track_answer(runner, file, max_windows)
        seen = np.concatenate(runner.seen)  # (windows read, 250)
        assert len(seen) == windows
        mean = torch.from_numpy(seen.mean(axis=0, keepdims=True))  # (1, 250)
        with torch.no_grad():
            familiarity, music, verdict = model.detector(mean)
            probs = model.calibrated(model(mean))[0].numpy()
        assert answer.music["verdict"] == VERDICTS[int(verdict[0])]
        assert answer.music["familiarity"] == pytest.approx(float(familiarity[0]), abs=1e-6)
        assert answer.music["music_probability"] == pytest.approx(float(music[0]), abs=1e-6)
        np.testing.assert_allclose(answer.probs, probs, rtol=0, atol=1e-6)


def test_predict_one_says_whether_it_is_music_and_a_model_without_a_detector_does_not(engines, tmp_path):
    noise = non_music(tmp_path)[0]
    res, error = predict_one(engines[1], noise)
    assert error is None and list(res) == ["file", "top", "probabilities", "music"]
    assert res["music"]["verdict"] == "not music" and set(res["music"]) == {"verdict", "familiarity",
                                                                              "music_probability"}
    assert 0 < res["music"]["familiarity"] <= 1 and 0 <= res["music"]["music_probability"] <= 1
    for old in ("musicnn_gtzan_mini.ckpt", "demo_cnn.ckpt"):  # checkpoints of an earlier version: no detector
        runner = TorchRunner(load_model(LEGACY / old))
        assert runner.verdicts is None
        res, error = predict_one(runner, noise)
        assert error is None and "music" not in res and list(res) == ["file", "top", "probabilities"]
    plain = result(noise, ["a", "b"], np.array([0.25, 0.75]), 1)
    assert plain == {"file": str(noise), "top": [{"genre": "b", "probability": 0.75}],
                     "probabilities": {"a": 0.25, "b": 0.75}}
