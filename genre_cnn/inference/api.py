"""The Python API: load a model once, then ask for the genre of files or of waveforms already in memory.

    from genre_cnn import load_model

    from genre_cnn import predict_file

    from genre_cnn import predict_waveform
    model = load_model()                                  # the default model (see genre_cnn.models.checkpoint)
    result = predict_file(model, "song.mp3")              # {"file", "top": [{"genre", "probability"}], ...}
    result = predict_waveform(model, samples, 44100)      # a mono (or (samples, channels)) numpy array

Both go through the same code as `genre-cnn predict` (genre_cnn.inference.predict): the track is cut into the model's
windows and their probabilities are averaged. Importing `genre_cnn` imports none of this (nor torch) until a
name is used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genre_cnn.audio.decode import AudioError, resample
from genre_cnn.audio.reader import clean
from genre_cnn.inference.predict import default_checkpoint, predict_one, result
from genre_cnn.inference.predict import load_model as _load


def load_model(path: str | Path | None = None):
    """The classifier in a checkpoint file or model folder (default: the model `genre-cnn predict` uses), in
    eval mode on the CPU. Raises CheckpointError (one line) for a missing or unusable file."""
    return _load(Path(path) if path else default_checkpoint())


def predict_file(model, path: str | Path, top_k: int = 3, max_windows: int | None = None) -> dict:
    """{"file", "top": [{"genre", "probability"}] * top_k, "probabilities": {genre: p}} (+ "warning" for a
    file under 3 s; + "music": {"verdict", "familiarity", "music_probability"} from a model with an open-set
    detector, such as the ready model: only the verdict "music" means a genre can be trusted) of one audio file, its
    windows chosen as `genre-cnn predict` chooses them (`max_windows`: None for the default, 0 for every window, N
    for at most N; genre_cnn.inference.track). Raises AudioError (one line) for a file that cannot be used."""
    from genre_cnn.inference.torch_runner import TorchRunner

    res, error = predict_one(TorchRunner(model), Path(path), top_k, max_windows)
    if error:
        raise AudioError(error)
    return res


def predict_waveform(model, samples: np.ndarray, sample_rate: int, top_k: int = 3) -> dict:
    """The same for a waveform: `samples` (samples,) or (samples, channels) at `sample_rate` Hz, float in
    [-1, 1]; channels are averaged and the rate converted to the model's. The answer is made from the windows' values
    as `predict_file` makes it (with "music" from a model with an open-set detector)."""
    y = np.asarray(samples, dtype=np.float32)
    y = y.mean(axis=1) if y.ndim == 2 else y  # (samples,)
    from genre_cnn.inference.torch_runner import TorchRunner
    from genre_cnn.inference.track import Pooling

    runner = TorchRunner(model)
    y = resample(clean(y), int(sample_rate), runner.sample_rate)
    pool = Pooling(runner)
    mean = pool.values(y).mean(axis=0, keepdims=True)  # (K, D) -> (1, D)
    return result("<waveform>", runner.genres, pool.answer(mean)[0], top_k, music=pool.music(mean))
