"""What a checkpoint must look like before anything is built from it: sizes, hyperparameters, weights.

    from genre_cnn.checkpoint import check_file       # used through genre_cnn.predict.load_model

`load_model` calls these in order: `check_file` (a size cap on the file and on the
uncompressed total of its zip members, read from the zip directory, so a small file that inflates to
gigabytes is refused before torch.load allocates anything), `check_contents` (the class name is a string,
the genre list is short, every known hyperparameter is in a sane range) and `check_weights` (tensor count,
element count, all finite). Each raises CheckpointError with one line naming the file. Imports no torch.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path

MAX_FILE_BYTES = 512 * 2**20  # a checkpoint file, and the uncompressed total of its members
MAX_TENSORS = 4096
MAX_ELEMENTS = 128 * 2**20  # 512 MB of float32
MAX_GENRES, MAX_GENRE_CHARS = 1000, 100

# hyperparameter -> (low, high), inclusive; numbers only. Unknown keys (another family's) are only
# required to be finite where numeric.
RANGES = {
    "window_seconds": (0.1, 60.0), "clip_seconds": (0.5, 600.0), "kernel_size": (1, 63), "dropout": (0.0, 1.0),
}
FRONTEND_RANGES = {"sample_rate": (4000, 192000), "n_fft": (64, 16384), "hop_length": (16, 16384),
                   "n_mels": (8, 512)}


class CheckpointError(ValueError):
    """A file that is not a usable genre_cnn checkpoint; the message is one line naming the file."""


def check_file(path: Path) -> None:
    """Exists, is a regular file under MAX_FILE_BYTES, and is a zip (torch.save's format) whose members
    inflate to at most MAX_FILE_BYTES in all."""
    if path.is_dir():
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file (pass the .ckpt inside it)")
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if not path.is_file():
        raise CheckpointError(f"{path}: not a regular file")
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: {size / 2**20:.0f} MB is larger than any genre_cnn model "
                              f"(limit {MAX_FILE_BYTES // 2**20} MB); refused")
    try:
        with zipfile.ZipFile(path) as z:
            inflated = sum(info.file_size for info in z.infolist())
    except (zipfile.BadZipFile, OSError, ValueError):
        raise CheckpointError(f"{path}: corrupt or not a checkpoint (not a torch.save zip archive)") from None
    if inflated > MAX_FILE_BYTES:
        raise CheckpointError(f"{path}: its contents unpack to {inflated / 2**20:.0f} MB, more than any genre_cnn "
                              f"model (limit {MAX_FILE_BYTES // 2**20} MB); refused")


def _number(path: Path, key: str, value, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (low <= value <= high):
        raise CheckpointError(f"{path}: hyperparameter {key}={value!r:.40} is out of range ({low}..{high}); "
                              "a damaged or tampered checkpoint")


def check_contents(path: Path, checkpoint: object) -> None:
    """The loaded dict: class name, genres and hyperparameters, before any model is built."""
    needed = {"genre_cnn_class", "hyper_parameters", "state_dict"}
    if not isinstance(checkpoint, dict) or not needed <= set(checkpoint):
        raise CheckpointError(f"{path}: not a genre_cnn checkpoint (no genre_cnn_class, hyper_parameters "
                              "or state_dict); train one with `python train.py`")
    if not isinstance(checkpoint["genre_cnn_class"], str):
        raise CheckpointError(f"{path}: genre_cnn_class is a {type(checkpoint['genre_cnn_class']).__name__}, "
                              "not a class name; a damaged or tampered checkpoint")
    hp = checkpoint["hyper_parameters"]
    if not isinstance(hp, dict):
        raise CheckpointError(f"{path}: hyper_parameters is not a mapping; a damaged or tampered checkpoint")
    genres = hp.get("genres")
    if (not isinstance(genres, (list, tuple)) or not 2 <= len(genres) <= MAX_GENRES
            or not all(isinstance(g, str) and 0 < len(g) <= MAX_GENRE_CHARS for g in genres)
            or len(set(genres)) != len(genres)):
        raise CheckpointError(f"{path}: genres must be 2-{MAX_GENRES} distinct names of 1-{MAX_GENRE_CHARS} "
                              "characters; a damaged or tampered checkpoint")
    for key, value in hp.items():
        if key in RANGES:
            _number(path, key, value, *RANGES[key])
        elif isinstance(value, float) and not math.isfinite(value):
            _number(path, key, value, -math.inf, math.inf)
        elif key == "widths" and not (isinstance(value, (list, tuple)) and 0 < len(value) <= 16 and all(
                isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= 4096 for w in value)):
            raise CheckpointError(f"{path}: hyperparameter widths={value!r:.40} is not 1-16 layer widths of "
                                  "1..4096; a damaged or tampered checkpoint")
    frontend = hp.get("frontend")
    if frontend is not None:
        if not isinstance(frontend, dict):
            raise CheckpointError(f"{path}: frontend is not a mapping; a damaged or tampered checkpoint")
        for key, (low, high) in FRONTEND_RANGES.items():
            if key in frontend:
                _number(path, f"frontend.{key}", frontend[key], low, high)
        if frontend.get("hop_length", 0) > frontend.get("n_fft", 2048):
            raise CheckpointError(f"{path}: frontend.hop_length is longer than frontend.n_fft; a damaged or "
                                  "tampered checkpoint")


def check_weights(path: Path, state: dict) -> None:
    """The state dict: at most MAX_TENSORS tensors of MAX_ELEMENTS elements in all, every value finite."""
    import torch

    if not isinstance(state, dict) or len(state) > MAX_TENSORS:
        raise CheckpointError(f"{path}: state_dict is not a mapping of at most {MAX_TENSORS} tensors")
    if not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise CheckpointError(f"{path}: state_dict holds something other than named tensors")
    if sum(v.numel() for v in state.values()) > MAX_ELEMENTS:
        raise CheckpointError(f"{path}: more than {MAX_ELEMENTS:,} weights; refused")
    for key, value in state.items():
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise CheckpointError(f"{path}: non-finite weights (NaN or inf) in {key}; a damaged checkpoint")

