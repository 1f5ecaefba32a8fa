"""The Python API: load a model once, then ask for the genre of files or of waveforms already in memory.

    from genre_cnn import load_model, predict_file, predict_waveform
    model = load_model()                                  # the default model (see genre_cnn.inference.session)
    result = predict_file(model, "song.mp3")              # {"file", "top": [{"genre", "probability"}], ...}
    result = predict_waveform(model, samples, 44100)      # a mono (or (samples, channels)) numpy array

Both go through the same code as `genre-cnn predict` (a genre_cnn.inference.session.Predictor): the same windows of
a track, pooled as the model was trained to, on ONNX Runtime when the model exports and onnxruntime is installed,
else PyTorch. Importing `genre_cnn` imports none of this (nor torch) until a name is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genre_cnn.inference.predict import Skipped, expand_paths
from genre_cnn.inference.session import Predictor


def load_model(path: str | Path | None = None, engine: str = "auto") -> Predictor:
    """The model in a checkpoint file or model folder (default: the model `genre-cnn predict` uses), ready to
    predict; `engine` "torch" forces PyTorch (its classifier is `.model`). Raises CheckpointError (one line) for a
    missing or unusable file."""
    return Predictor.open(path, engine)


def predict_file(model, path: str | Path, top_k: int = 3, max_windows: int | None = None) -> dict:
    """{"file", "top": [{"genre", "probability"}] * top_k, "probabilities": {genre: p}} (+ "warning" for a
    file under 3 s, "music" for a model that knows what it does not know: its verdict, see README) of one audio
    file, its windows chosen as `genre-cnn predict` chooses them (`max_windows`: None for the default, 0 for
    every window, N for at most N; genre_cnn.inference.track). `model`: from `load_model`, or a classifier from
    genre_cnn.inference.predict.load_model. Raises AudioError (one line) for a file that cannot be used."""
    return Predictor.of(model).predict_file(path, top_k, max_windows)


def predict_waveform(model, samples: np.ndarray, sample_rate: int, top_k: int = 3) -> dict:
    """The same for a waveform: `samples` (samples,) or (samples, channels) at `sample_rate` Hz, float in
    [-1, 1]; channels are averaged and the rate converted to the model's. Its `file` is "<waveform>"."""
    return Predictor.of(model).predict_waveform(samples, sample_rate, top_k)


def predict_files(model, paths: list[Path], top_k: int = 3, progress: bool = True,
                  max_windows: int | None = None) -> tuple[list[dict], list[Skipped]]:
    """Results of many files, one at a time in this process; folders are searched recursively (`genre-cnn
    predict` does the same with worker processes). Returns ([result per readable file, in order], one Skipped
    line per path that could not be used)."""
    files, errors = expand_paths([Path(p) for p in paths])
    results: list[dict] = []
    for _, result, skipped in Predictor.of(model).predict_many(files, top_k, max_windows, workers=1, progress=progress):
        results.extend([result] if result else [])
        errors.extend([skipped] if skipped else [])
    return results, errors
