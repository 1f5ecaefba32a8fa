"""`genre-cnn export`: one ONNX file, front end included, that gives the PyTorch model's probabilities
(within 1e-4 absolute) for any length of waveform, with the genre list in its metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genre_cnn.audio import load_audio
from genre_cnn.cli import main
from genre_cnn.demo import DEMO_GENRES
from genre_cnn.predict import load_model

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOLERANCE = 1e-4  # absolute, on probabilities; measured about 1e-5 on the demo clips


def test_onnx_model_matches_pytorch_on_any_length(demo_run, demo_dir, tmp_path, capsys):
    ckpt = demo_run["root"] / "checkpoints" / demo_run["run"] / "cnn" / "best.ckpt"
    out = tmp_path / "genre_cnn.onnx"
    assert main(["export", "--ckpt", str(ckpt), "--out", str(out)]) == 0
    assert list(tmp_path.iterdir()) == [out]  # weights inside, no external data file

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["genres"]) == list(DEMO_GENRES) and meta["sample_rate"] == "22050"
    model = load_model(ckpt)
    clips = [load_audio(demo_dir / g / f"{g}.00001.wav", 22050) for g in DEMO_GENRES]  # 8 s each
    inputs = [*clips, clips[0][:22050],  # 1 s: shorter than one 3-s window, looped
              np.concatenate(clips[1:])]  # 24 s: longer than the export's example input
    for y in inputs:
        onnx_probs = session.run(None, {"waveform": y[None]})[0]  # (1, n)
        torch_probs = model.predict_waveform(torch.from_numpy(y)).numpy()  # (n,)
        assert onnx_probs.shape == (1, len(DEMO_GENRES))
        np.testing.assert_allclose(onnx_probs[0], torch_probs, rtol=0, atol=TOLERANCE)
    winners = [DEMO_GENRES[int(np.argmax(session.run(None, {"waveform": y[None]})[0]))] for y in clips]
    assert sum(w == g for w, g in zip(winners, DEMO_GENRES, strict=True)) >= 3


def test_export_refuses_the_dense_model(demo_run, tmp_path, capsys):
    ckpt = demo_run["root"] / "checkpoints" / demo_run["run"] / "dense" / "best.ckpt"
    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "CNN" in capsys.readouterr().err and not (tmp_path / "x.onnx").exists()
