"""Use a trained model: load a checkpoint safely and predict the genre of whole audio files.

    genre-cnn predict song.mp3 more/ --top-k 3         # the command line (see genre_cnn.cli)

From Python:

    from genre_cnn.predict import latest_checkpoint, load_model, predict_files
    model = load_model(latest_checkpoint())
    results, errors = predict_files(model, [Path("song.mp3")])

A checkpoint is read with `torch.load(weights_only=True)`, which refuses any pickled callable, and the model
class is looked up by name among `genre_cnn.classifiers`' classes only, so loading never runs code from the
file. The model is a plain `nn.Module` (no Lightning is imported on this path). Each file is predicted as a
whole track: the model averages its outputs over every window of the file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from genre_cnn.audio import AUDIO_EXTENSIONS, PREDICT_MIN_SECONDS, AudioError, load_audio

if TYPE_CHECKING:
    from genre_cnn.classifiers import GenreClassifier


class CheckpointError(ValueError):
    """A file that is not a usable genre_cnn checkpoint; the message is one line naming the file."""


def _one_line(err: BaseException) -> str:
    """The informative line of an exception's message (torch.load's refusals span several lines)."""
    boilerplate = ("Weights only load failed", "Please file an issue", "Check the documentation")
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    lines = [line for line in lines if not line.startswith(boilerplate)] or lines
    text = lines[0].removeprefix("WeightsUnpickler error:").strip().split(". ")[0] if lines else ""
    return f"{type(err).__name__}: {text[:200]}" if text else type(err).__name__


def _model_classes() -> dict[str, type]:
    """The classifiers that a checkpoint may name: `genre_cnn.classifiers`' model families (those with `inputs`)."""
    from genre_cnn import classifiers

    return {name: obj for name, obj in vars(classifiers).items()
            if isinstance(obj, type) and issubclass(obj, classifiers.GenreClassifier)
            and "inputs" in vars(obj) and obj.__module__ == classifiers.__name__}


def load_model(path: Path, map_location="cpu") -> GenreClassifier:
    """Rebuilds the classifier saved in a Lightning checkpoint, in eval mode, on `map_location`.

    Raises CheckpointError for a missing, truncated or corrupt file, a file that is not a genre_cnn
    checkpoint, or one that carries pickled code (which is refused, never run).
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # noqa: BLE001 - any failure to unpickle means "not a usable checkpoint"
        reason = _one_line(err)
        what = "refused: it pickles code or objects" if "GLOBAL" in reason else "corrupt or not a checkpoint"
        raise CheckpointError(f"{path}: {what} ({reason})") from None
    needed = {"genre_cnn_class", "hyper_parameters", "state_dict"}
    if not isinstance(checkpoint, dict) or not needed <= set(checkpoint):
        raise CheckpointError(f"{path}: not a genre_cnn checkpoint (no genre_cnn_class, hyper_parameters "
                              "or state_dict); train one with `python train.py`")
    classes = _model_classes()
    name = checkpoint["genre_cnn_class"]
    if name not in classes:
        raise CheckpointError(f"{path}: unknown model class {name!r} (known: {', '.join(sorted(classes))})")
    state = {k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()}  # LightningModule's prefix
    try:
        model = classes[name].from_hparams(dict(checkpoint["hyper_parameters"]))
        model.load_state_dict(state)
    except Exception as err:  # noqa: BLE001 - wrong arguments or shapes: the file does not fit the code
        raise CheckpointError(f"{path}: does not fit {name} ({_one_line(err)})") from None
    if isinstance(map_location, (str, torch.device)):
        model = model.to(map_location)  # the front end's non-persistent buffers too
    return model.eval()


def latest_checkpoint(root: Path | None = None, model: str = "cnn") -> Path:
    """`<root>/checkpoints/<run>/<model>/best.ckpt` (or `refit.ckpt`) of the most recent run (root: the project).

    The most recent run is the one whose newest best.ckpt was written last; if it has no `model`, its first
    model (alphabetically) is used. Raises CheckpointError, saying to train first, if there is none.
    """
    from genre_cnn.paths import project_root

    checkpoints = Path(root or project_root()) / "checkpoints"
    runs: dict[Path, list[Path]] = {}
    for best in checkpoints.glob("*/*/best.ckpt"):
        runs.setdefault(best.parent.parent, []).append(best)
    if not runs:
        raise CheckpointError(f"no trained model in {checkpoints}: run `python train.py` first "
                              "(or `python train.py --config configs/demo.yaml`), or pass --ckpt")
    latest = max(runs, key=lambda run: max(p.stat().st_mtime for p in runs[run]))
    model_dir = latest / model if (latest / model / "best.ckpt").is_file() else sorted(runs[latest])[0].parent
    refit = model_dir / "refit.ckpt"  # trained on train + val after validation chose its epochs (--refit)
    return refit if refit.is_file() else model_dir / "best.ckpt"


def expand_paths(paths: list[Path]) -> tuple[list[Path], list[str]]:
    """Files as given, folders expanded recursively to their audio files (sorted); and error lines for
    paths that do not exist or folders without audio."""
    files: list[Path] = []
    errors: list[str] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
            if not found:
                errors.append(f"{path}: no audio files ({', '.join(AUDIO_EXTENSIONS)}) in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            errors.append(f"{path}: no such file or folder")
    return files, errors


def predict_files(model: GenreClassifier, paths: list[Path], top_k: int = 3,
                  progress: bool = True) -> tuple[list[dict], list[str]]:
    """Genre probabilities of each whole file; folders are searched recursively for audio files.

    Returns ([{"file", "top": [{"genre", "probability"}] * top_k, "probabilities": {genre: p}}], errors),
    one entry per readable file in order, and one line per path that could not be used.
    """
    import torch
    from tqdm import tqdm

    files, errors = expand_paths(paths)
    genres = model.genres
    results: list[dict] = []
    for path in tqdm(files, desc="predicting", unit="file", disable=not progress or len(files) < 2):
        try:
            y = load_audio(path, model.sample_rate, min_seconds=PREDICT_MIN_SECONDS)  # (samples,)
        except AudioError as err:
            errors.append(str(err))
            continue
        probs = model.predict_waveform(torch.from_numpy(y)).float().cpu()  # (n,)
        top = torch.topk(probs, min(top_k, len(genres)))
        results.append({
            "file": str(path),
            "top": [{"genre": genres[int(i)], "probability": float(p)}
                    for p, i in zip(top.values, top.indices, strict=True)],
            "probabilities": {g: float(p) for g, p in zip(genres, probs, strict=True)},
        })
    return results, errors

