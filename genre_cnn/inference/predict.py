"""Use a trained model: choose and load a checkpoint safely, and predict the genre of whole audio files.

    genre-cnn predict song.mp3 more/ --top-k 3         # the command line (see genre_cnn.app.cli)

From Python:

    from genre_cnn.inference.predict import load_model, predict_one
    model = load_model(Path("checkpoints/RUN/musicnn/best.ckpt"))
    result, skipped = predict_one(TorchRunner(model), Path("song.mp3"))

Callers choose and open a model through genre_cnn.inference.session (`Predictor`), which uses these.

A checkpoint is size-checked (`genre_cnn.models.checkpoint`), read with `torch.load(weights_only=True)`, which
refuses any pickled callable, and its model class is looked up by name among the model families'
(genre_cnn.models.families) only, so loading never runs code from the file. The model is a plain `nn.Module`
(no Lightning).

Which parts of a file a model hears and how their answers are pooled (`predict_track`): see
genre_cnn.inference.track. This module imports no torch until a torch model is loaded or run.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genre_cnn.audio.decode import DECODE_EXTENSIONS, shown
from genre_cnn.errors import GenreCnnError
from genre_cnn.inference.track import PredictionError, predict_track, track_answer
from genre_cnn.models import families
from genre_cnn.models.checkpoint import (
    READY_MODEL,
    CheckpointError,
    check_contents,
    check_file,
    check_weights,
    default_checkpoint,
    latest_checkpoint,
    resolve_checkpoint,
)

if TYPE_CHECKING:
    from genre_cnn.models.families.base import GenreClassifier

__all__ = ["READY_MODEL", "CheckpointError", "PredictionError", "Skipped", "default_checkpoint", "expand_paths",
           "latest_checkpoint", "load_model", "predict_one", "predict_track", "resolve_checkpoint"]


def __getattr__(name: str):
    """TorchRunner and model_spans live in genre_cnn.inference.torch_runner, which imports torch: on first use."""
    if name in ("TorchRunner", "model_spans"):
        from genre_cnn.inference import torch_runner

        return getattr(torch_runner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class Skipped(str):
    """Why a path was skipped: the line printed, "PATH: reason" (the path shown safely, see `decode.shown`), which
    also keeps `file` (the path as given) and `reason` apart for machine-readable output."""

    file: str
    reason: str

    def __new__(cls, file: Path | str, reason: str) -> Skipped:
        line = super().__new__(cls, f"{shown(file)}: {reason}")
        line.file, line.reason = str(file), reason
        return line

    def __getnewargs__(self) -> tuple[str, str]:  # pickled by worker processes
        return self.file, self.reason


def _one_line(err: BaseException) -> str:
    """The informative line of an exception's message (torch.load's refusals span several lines)."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(boilerplate)] or lines
    text = lines[0].removeprefix("WeightsUnpickler error:").strip().split(". ")[0] if lines else ""
    return text[:200] or "unreadable"


def trained_on(checkpoint: dict) -> str:
    """What a checkpoint says it was trained on: its `trained_on` entry, else its data settings."""
    if isinstance(checkpoint.get("trained_on"), str):
        return checkpoint["trained_on"][:200]
    data = checkpoint.get("datamodule_hyper_parameters")
    data = data if isinstance(data, dict) else {}
    source = data.get("data_dir") or data.get("dataset")
    n = len(checkpoint["hyper_parameters"]["genres"])
    clips = f"{data['clips']} clips of " if isinstance(data.get("clips"), int) else ""
    return f"trained on {source}, {clips}{n} genres" if isinstance(source, str) else f"{n} genres"


def load_model(path: Path, map_location="cpu") -> GenreClassifier:
    """Rebuilds the classifier saved in a checkpoint (or the obvious one in a folder), in eval mode.

    Sets `model.checkpoint` (the file) and `model.trained_on` (a phrase). Raises CheckpointError for a missing,
    oversized, truncated, corrupt or tampered file, or one that carries pickled code (refused, never run).
    """
    import torch

    path = resolve_checkpoint(Path(path))
    check_file(path)
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to unpickle means "not a usable checkpoint"
        reason = _one_line(err)
        what = "refused: it pickles code or objects" if "GLOBAL" in reason else "corrupt or not a checkpoint"
        raise CheckpointError(f"{path}: {what} ({reason})") from None
    check_contents(path, checkpoint)
    name = checkpoint["genre_cnn_class"]
    family = families.of(name)
    if family is None:
        known = ", ".join(f.class_name for f in families.all().values())
        raise CheckpointError(f"{path}: unknown model class {name[:60]!r} (known: {known})")
    state = checkpoint["state_dict"]
    check_weights(path, state)
    state = {k.removeprefix("model."): v for k, v in state.items()}  # LightningModule's prefix
    try:
        model = family.build(dict(checkpoint["hyper_parameters"]))
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - wrong arguments or shapes: the file does not fit the code
        raise CheckpointError(f"{path}: does not fit {name} ({_one_line(err)})") from None
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)  # the front end's non-persistent buffers too
    model.checkpoint, model.trained_on = path, trained_on(checkpoint)
    return model.eval()


def _not_usable(path: Path) -> Skipped | None:
    """Why `path` cannot be read as a file or searched as a folder, in words; None if it can."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            return Skipped(path, "symlink loop (the link points back to itself)")
        if path.is_symlink():
            return Skipped(path, "broken symlink (what it points to does not exist)")
        if err.errno in (errno.EACCES, errno.EPERM):
            return Skipped(path, "permission denied")
        return Skipped(path, "no such file or folder")
    if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
        return None
    kind = "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "a device"
    return Skipped(path, f"not a regular file ({kind}); skipped")


def expand_paths(paths: list[Path], extensions: tuple[str, ...] = DECODE_EXTENSIONS) -> tuple[list[Path],
                                                                                             list[Skipped]]:
    """Files as given, folders searched recursively (symlinked folders not followed) for files with
    `extensions` (every format the loader decodes), sorted; and one error line per path that cannot be used."""
    files: list[Path] = []
    errors: list[Skipped] = []
    for path in map(Path, paths):
        if (why := _not_usable(path)) is not None:
            errors.append(why)
        elif path.is_dir():
            found = []
            for folder, _, names in os.walk(path):
                for p in (Path(folder) / n for n in names if Path(n).suffix.lower() in extensions):
                    (found.append(p) if (why := _not_usable(p)) is None else errors.append(why))
            if not found:
                errors.append(Skipped(path, f"no audio files in this folder (looked for {', '.join(extensions)})"))
            files.extend(sorted(found))
        else:
            files.append(path)
    return files, errors


def result(path: Path, genres: list[str], probs: np.ndarray, top_k: int, warning: str | None = None,
           music: dict | None = None) -> dict:
    """{"file", "top": [{"genre", "probability"}] * top_k, "probabilities": {genre: p}} (+ "warning"; + "music":
    {"verdict": "music" | "unfamiliar" | "not music", "familiarity", "music_probability"} from a model with an
    open-set detector, genre_cnn.inference.track.TrackAnswer)."""
    order = np.argsort(-probs, kind="stable")[: min(top_k, len(genres))]
    out = {"file": str(path), "top": [{"genre": genres[i], "probability": float(probs[i])} for i in order],
           "probabilities": {g: float(p) for g, p in zip(genres, probs, strict=True)}}
    out = {**out, "warning": warning} if warning else out
    return {**out, "music": dict(music)} if music else out


def predict_one(runner, path: Path, top_k: int = 3, max_windows: int | None = None) -> tuple[dict | None,
                                                                                           Skipped | None]:
    """(result, None) for a file that could be predicted, else (None, one line saying why): a file that is not
    usable audio (whatever its decoder threw), gets no usable answer or exhausts memory never costs the others.
    Anything else is a bug and keeps its traceback."""
    try:
        answer = track_answer(runner, path, max_windows)
    except GenreCnnError as err:
        return None, Skipped(path, str(err).removeprefix(f"{shown(path)}: "))
    except MemoryError:
        return None, Skipped(path, "ran out of memory while reading it; skipped")
    return result(path, runner.genres, answer.probs, top_k, answer.warning, answer.music), None
