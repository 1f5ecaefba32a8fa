"""A PyTorch classifier behind the interface prediction uses: numpy in, numpy out, one window or a whole track.

    from genre_cnn.inference.torch_runner import TorchRunner
    runner = TorchRunner(load_model(ckpt))               # genre_cnn.inference.predict.load_model
    values = runner.window_values(y)                     # (K, D): what the track's answer is made from
    probs = runner.answer(values.mean(axis=0, keepdims=True))[0]     # (n,)

How a model makes one answer of a track's windows (`window_values`, `answer`): the CNN averages its windows'
probabilities (values are those, the answer their mean); musicnn's head classifies the mean embedding of its
3-s patches (values are the embeddings, the answer the head on their mean); the dense baseline hears one
centred clip (its values are its probabilities). The same split is exported to ONNX (genre_cnn.inference.export),
so both engines read the same windows of a long track and pool them the same way. A model with an open-set
detector (genre_cnn.models.openset, the musicnn family's `openset`) also answers whether the track is music it can
judge (`openset`), from the same pooled embedding as the head (`verdicts`: the words of its codes). No CLI.
"""

from __future__ import annotations

import numpy as np
import torch

from genre_cnn.models.families.base import GenreClassifier


def pools_embeddings(model: GenreClassifier) -> bool:
    """Whether the model's answer is a head on the mean of its patches' embeddings (the musicnn family's
    `patches`), rather than the mean of its windows' probabilities."""
    return callable(getattr(model, "patches", None))


def model_spans(model) -> tuple[int | None, int | None]:
    """(samples of exactly one input window, or None; samples of the centred clip a model hears, or None): what
    the classifier says (`window_samples`, `clip_samples`)."""
    return model.window_samples, model.clip_samples


def window_step(model) -> int | None:
    """Samples between the starts of two windows of a whole-file pass: musicnn's patches do not overlap, the
    CNN's windows overlap by half (genre_cnn.audio.frontend.track_windows); None for a model of one clip."""
    frames = getattr(model, "window", None)
    if not frames or not hasattr(model, "frontend"):
        return None
    hop = model.frontend.config.hop_length
    return frames * hop if pools_embeddings(model) else max(1, frames // 2) * hop


def window_values(model: GenreClassifier, waveform: torch.Tensor) -> torch.Tensor:
    """Mono waveform (samples,) -> the values of its windows (K, D) whose mean makes the answer (see `answer`)."""
    if pools_embeddings(model):
        return model.patches(waveform)  # (P, 250)
    return model.window_probs(waveform)  # (K, n)


def answer(model: GenreClassifier, means: torch.Tensor) -> torch.Tensor:
    """Means of window values (B, D) -> genre probabilities (B, n), as the model answers a whole track."""
    if pools_embeddings(model):
        return model.calibrated(model(means))  # the head on the mean embedding
    return means  # the mean of the windows' probabilities


def openset(model: GenreClassifier, means: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None:
    """Means of window values (B, D) -> the open-set detector's familiarity (B,), music probability (B,) and verdict
    (B,) int64, on the pooled embedding the head answers from; None for a model without a detector."""
    detector = getattr(model, "detector", None)
    return detector(means) if detector is not None and pools_embeddings(model) else None


def verdicts(model: GenreClassifier) -> list[str] | None:
    """The words of the detector's verdict codes, or None for a model without a detector."""
    from genre_cnn.models.openset import VERDICTS

    return list(VERDICTS) if getattr(model, "detector", None) is not None and pools_embeddings(model) else None


class TorchRunner:
    """A torch classifier behind the interface of `genre_cnn.inference.predict.predict_track`.

    Runs in inference mode. Built in a process that has not yet chosen its torch thread count, it keeps torch's
    default (one thread per core); worker processes set one thread each (genre_cnn.inference.workers). Windows read
    alone are shown to it end to end, as to ONNX Runtime (genre_cnn.inference.track.sampled), so that both engines
    give the same answer: a musicnn patch's first frames then see the end of the window before it, as in a pass
    over the whole file. PyTorch takes more time per window that way than one window at a time
    (benchmarks/long_tracks.py, `model`); the same answer from both engines comes first.
    """

    def __init__(self, model: GenreClassifier):
        self.model, self.genres, self.sample_rate = model, list(model.genres), model.sample_rate
        self.segment_samples, self.clip_samples = model_spans(model)
        self.window_step = window_step(model)
        self.verdicts = verdicts(model)
        self.description = f"{getattr(model, 'checkpoint', '?')} ({type(model).__name__}, " \
                           f"{getattr(model, 'trained_on', '')})"

    def _wave(self, y: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))

    def window_probs(self, y: np.ndarray) -> np.ndarray:
        """Mono waveform (samples,) -> window probabilities (K, n)."""
        with torch.inference_mode():
            return self.model.window_probs(self._wave(y)).float().cpu().numpy()

    def window_values(self, y: np.ndarray) -> np.ndarray:
        """Mono waveform (samples,) -> the values of its windows (K, D) (see `window_values`)."""
        with torch.inference_mode():
            return window_values(self.model, self._wave(y)).float().cpu().numpy()

    def answer(self, means: np.ndarray) -> np.ndarray:
        """Means of window values (B, D) -> genre probabilities (B, n)."""
        with torch.inference_mode():
            return answer(self.model, torch.from_numpy(np.ascontiguousarray(means, dtype=np.float32))).numpy()

    def openset(self, means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Means of window values (B, D) -> familiarity (B,), music probability (B,), verdict codes (B,) (`verdicts`);
        only for a model with a detector."""
        with torch.inference_mode():
            out = openset(self.model, torch.from_numpy(np.ascontiguousarray(means, dtype=np.float32)))
        return tuple(t.cpu().numpy() for t in out)
