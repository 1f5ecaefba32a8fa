"""The prediction session: a model chosen, checked and loaded once, then asked for files, waveforms or a library.

    from genre_cnn.inference.session import Predictor, choose_genres
    predictor = Predictor.open()                          # the default model; Predictor.open(CKPT, engine="torch")
    print(predictor.description)                          # the model, what it was trained on, and why it answers
    result = predictor.predict_file("song.mp3")           # {"file", "top", "probabilities"} (+ "warning", "music")
    for path, result, skipped in predictor.predict_many(files, workers=2, progress=True):
        decision = choose_genres(result, count=1, min_confidence=0.7)   # what tag, sort and beets write

Every caller of prediction goes through here: the `genre-cnn` commands, the web page, the Python API
(genre_cnn.inference.api), the beets plugin and the Ray actors. Which model (`choose_checkpoint`, the one place):
the checkpoint given (a file, or a model or run folder), else genre_cnn.models.checkpoint's default (the latest
run trained on real music, else the ready model), checked as a file before anything hashes or reads it. Which
engine: ONNX Runtime on the model's graph (cached once exported) when its family exports and onnxruntime is
installed, else PyTorch ("torch" forces it). `spec` names the model for worker processes (picklable).

What to write (`choose_genres`, the one rule): only a result the model judges to be music may get a genre. A
result carries the open-set verdict in "music" ({"verdict": "music" | "unfamiliar" | "not music", "familiarity",
"music_probability"}) when the model has a detector (genre_cnn.models.openset); without it, every input counts as
music. Of a result judged music, the top `count` genres of probability >= `min_confidence` are chosen.
"""

from __future__ import annotations

import importlib.util
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genre_cnn.audio.decode import AudioError, resample, shown
from genre_cnn.audio.reader import clean
from genre_cnn.errors import SettingsError
from genre_cnn.inference.predict import load_model, predict_one
from genre_cnn.models.checkpoint import check_file, choose_default, resolve_checkpoint

ENGINES = ("auto", "onnx", "torch")
WAVEFORM = "<waveform>"  # the `file` of a waveform's answer
log = logging.getLogger(__name__)


def choose_checkpoint(ckpt: str | Path | None = None, exportable: bool = False) -> tuple[Path, str]:
    """The checkpoint to use and why, in a few words (for the `model:` line): `ckpt` (a folder: its one obvious
    checkpoint) or the default model (`exportable`: of a family that exports to ONNX), checked as a file (a
    regular file of sane size, a zip) before anything hashes or reads it. Raises CheckpointError (one line)."""
    if ckpt:
        path, why = resolve_checkpoint(Path(ckpt)), "--ckpt"
    else:
        path, why = choose_default(exportable=exportable)
        why = f"{why}; --ckpt to choose"
    check_file(path)
    return path, why


def model_label(checkpoint: Path | str) -> str:
    """A short name of a model for tags and reports: the checkpoint's last three path parts, no suffix."""
    return "/".join(Path(checkpoint).with_suffix("").parts[-3:])


@dataclass(frozen=True)
class ModelSpec:
    """What a worker process builds the model from (picklable): `engine` "onnx" (`path`: the graph, its answer
    graph beside it) or "torch" (`path`: the checkpoint)."""

    engine: str
    path: Path

    def files(self) -> list[Path]:
        """The files that make the model (what a cluster ships to its workers)."""
        if self.engine != "onnx":
            return [self.path]
        from genre_cnn.inference.onnx_predict import answer_path

        return [p for p in (self.path, answer_path(self.path)) if p.is_file()]

    def runner(self, threads: int = 0):
        """An OnnxRunner or TorchRunner; `threads` 0 leaves the library's default."""
        if self.engine == "onnx":
            from genre_cnn.inference.onnx_predict import OnnxRunner

            return OnnxRunner(Path(self.path), threads)
        import torch

        from genre_cnn.inference.torch_runner import TorchRunner

        if threads:
            torch.set_num_threads(threads)
        return TorchRunner(load_model(Path(self.path)))


class Predictor:
    """One model, ready to predict. Attributes: checkpoint, why (it was chosen), label (short, for tags and
    reports), description (the `model:` line), genres, sample_rate, spec (for worker processes), runner (the
    engine's, genre_cnn.inference.track's interface). `Predictor.open` chooses and loads; `Predictor.of` wraps a
    classifier already loaded (genre_cnn.inference.predict.load_model)."""

    def __init__(self, spec: ModelSpec | None, runner, checkpoint: Path | None, why: str = "", model=None):
        self.spec, self.runner, self.checkpoint, self.why, self._model = spec, runner, checkpoint, why, model
        self.genres: list[str] = list(runner.genres)
        self.sample_rate: int = runner.sample_rate
        self.description: str = f"{runner.description} -- {why}" if why else runner.description
        self.label = model_label(checkpoint) if checkpoint else "?"

    @classmethod
    def open(cls, ckpt: str | Path | None = None, engine: str = "auto") -> Predictor:
        """The model of `ckpt` (default: see `choose_checkpoint`) on `engine`: "auto" (ONNX Runtime when the model
        exports and onnxruntime is installed, else PyTorch), "onnx" (the same, with a note when it falls back) or
        "torch". Raises CheckpointError (one line) for a missing or unusable checkpoint."""
        if engine not in ENGINES:
            raise SettingsError(f"engine {engine!r} is not one of {', '.join(ENGINES)}")
        checkpoint, why = choose_checkpoint(ckpt)
        model = None
        if engine != "torch" and importlib.util.find_spec("onnxruntime") is not None:
            from genre_cnn.inference.onnx_predict import OnnxRunner, cached_onnx, make_onnx

            graph = cached_onnx(checkpoint)
            if graph is None:
                model = load_model(checkpoint)
                graph = make_onnx(checkpoint, model)
            if graph is not None:
                return cls(ModelSpec("onnx", graph), OnnxRunner(graph, checkpoint=checkpoint), checkpoint, why, model)
        if engine == "onnx":
            log.warning("note: %s does not export to ONNX (or onnxruntime is missing); using PyTorch", checkpoint)
        from genre_cnn.inference.torch_runner import TorchRunner

        model = model or load_model(checkpoint)
        return cls(ModelSpec("torch", checkpoint), TorchRunner(model), checkpoint, why, model)

    @classmethod
    def of(cls, model) -> Predictor:
        """`model` itself if it is a Predictor, else a PyTorch session around a loaded classifier."""
        if isinstance(model, Predictor):
            return model
        from genre_cnn.inference.torch_runner import TorchRunner

        checkpoint = getattr(model, "checkpoint", None)
        spec = ModelSpec("torch", Path(checkpoint)) if checkpoint else None
        return cls(spec, TorchRunner(model), checkpoint, model=model)

    @classmethod
    def from_spec(cls, spec: ModelSpec, threads: int = 0) -> Predictor:
        """A session built from a spec alone (`threads` for its engine, 0: the library's default): what a process
        that got only the spec (a cluster's actor) predicts with."""
        return cls(spec, spec.runner(threads), spec.path if spec.engine == "torch" else None)

    @property
    def model(self):
        """The PyTorch classifier (loaded on first use when the session runs ONNX Runtime): for the views of
        what it hears (`genre-cnn plot`, the web page)."""
        if self._model is None:
            self._model = load_model(self.checkpoint)
        return self._model

    def predict_file(self, path: str | Path, top_k: int = 3, max_windows: int | None = None) -> dict:
        """One file's result (genre_cnn.inference.predict.result), its windows chosen as `genre-cnn predict`
        chooses them (`max_windows`: None for the default, 0 for every window). Raises AudioError (one line)
        for a file that cannot be used."""
        result, skipped = predict_one(self.runner, Path(path), top_k, max_windows)
        if skipped:
            raise AudioError(skipped)
        return result

    def predict_waveform(self, samples: np.ndarray, sample_rate: int, top_k: int = 3,
                         max_windows: int | None = None) -> dict:
        """The result for a waveform: `samples` (samples,) or (samples, channels) at `sample_rate` Hz, float in
        [-1, 1]; channels are averaged and the rate converted to the model's. It is heard as a file of that audio
        would be (written as one, float32, to a private temporary folder), so both get the same answer."""
        import soundfile as sf

        y = np.asarray(samples, dtype=np.float32)
        y = clean(y.mean(axis=1) if y.ndim == 2 else y)  # (samples,)
        y = resample(y, int(sample_rate), self.sample_rate)
        with tempfile.TemporaryDirectory(prefix="genre_cnn-waveform-") as folder:
            path = Path(folder) / "waveform.wav"
            sf.write(path, y, self.sample_rate, subtype="FLOAT")
            result, skipped = predict_one(self.runner, path, top_k, max_windows)
        if skipped:
            raise AudioError(f"{WAVEFORM}: {skipped.reason}")
        if "warning" in result:
            result["warning"] = result["warning"].replace(shown(path), WAVEFORM)
        return {**result, "file": WAVEFORM}

    def predict_many(self, files: list[Path], top_k: int = 3, max_windows: int | None = None,
                     workers: int | None = None, progress: bool = False,
                     desc: str = "predicting"):
        """(path, result or None, Skipped or None) for each file, in order (genre_cnn.inference.workers): in
        `workers` processes (default: one per core for 4 files or more, else this process), a dead worker costing
        only its own file; a progress bar with its ETA on stderr if `progress`."""
        from genre_cnn.inference.workers import predict_many

        if self.spec is None or workers is None and len(files) < 4:
            workers = 1
        return predict_many(self.spec, list(files), top_k, max_windows, workers, progress, self.runner, desc)


def verdict(result: dict) -> dict | None:
    """The open-set verdict a result carries ({"verdict", "familiarity", "music_probability"}), or None."""
    music = result.get("music")
    return music if isinstance(music, dict) and "verdict" in music else None


def verdict_text(result: dict) -> str | None:
    """The verdict in words, e.g. "not music (familiarity 0.03)"; None for a model without a detector."""
    music = verdict(result)
    return None if music is None else f"{music['verdict']} (familiarity {music['familiarity']:.2f})"


@dataclass(frozen=True)
class Decision:
    """What to write for one result: `genres` ([{"genre", "probability"}], best first; empty: leave it alone),
    `reason` ("chosen", "below" min_confidence, "unfamiliar" or "not music") and its `top` genre."""

    genres: list[dict]
    reason: str
    top: dict


def choose_genres(result: dict, count: int = 1, min_confidence: float = 0.0) -> Decision:
    """The one rule for the genres to write (see the module docstring); `result["top"]` holds at least `count`."""
    music = verdict(result)
    if music is not None and music["verdict"] != "music":
        return Decision([], music["verdict"], result["top"][0])
    chosen = [t for t in result["top"][:count] if t["probability"] >= min_confidence]
    return Decision(chosen, "chosen" if chosen else "below", result["top"][0])


__all__ = ["ENGINES", "Decision", "ModelSpec", "Predictor", "choose_checkpoint", "choose_genres", "model_label",
           "verdict", "verdict_text"]
