"""The one table of sane ranges for every saved setting: training refuses what loading would refuse, and back.

    from genre_cnn.bounds import RANGES, problem
    problem("dropout", 2.0)      # -> "must be between 0.0 and 1.0, got 2.0"

`python train.py` checks each model option (`--cnn.kernel_size`, `--dense.lr`, ...) and the front end against
these before any work; `genre_cnn.models.checkpoint.check_contents` checks a checkpoint's hyperparameters against the
same table before any model is built. `implied_shapes` is what a classifier's settings would build (on torch's
"meta" device, which allocates nothing), so that both sides can bound the weight count, and loading can compare
every tensor of a file with it. Imports no torch until `implied_shapes` is called.
"""

from __future__ import annotations

import math

# hyperparameter -> (low, high), inclusive; int bounds mean whole numbers. The training-only settings are here
# too: a checkpoint saves them, and loading holds them to what training accepts.
RANGES: dict[str, tuple[float, float]] = {
    "window_seconds": (0.1, 60.0), "clip_seconds": (0.5, 600.0), "kernel_size": (1, 63), "dropout": (0.0, 1.0),
    "stem": (0, 64), "pitch_shift": (0.0, 12.0), "gain_db": (0.0, 60.0), "freq_mask": (0, 512),
    "time_mask": (0, 10000), "mixup_alpha": (0.0, 100.0), "lr": (1e-8, 1.0), "weight_decay": (0.0, 1.0),
    "label_smoothing": (0.0, 1.0), "members": (1, 16),
}
# `widths`: up to MAX_LAYERS layers of 1..MAX_WIDTH units; none makes a dense head a linear classifier (the CNN
# refuses none: it needs a convolutional block)
MAX_LAYERS, MAX_WIDTH = 16, 4096
# the front end's settings; hop_length is also at most n_fft, n_mels at most n_fft // 2 + 1 (one per FFT bin)
FRONTEND_RANGES: dict[str, tuple[int, int]] = {"sample_rate": (4000, 192000), "n_fft": (64, 16384),
                                               "hop_length": (16, 16384), "n_mels": (8, 512)}
MAX_WEIGHTS = 128 * 2**20  # elements of a model's state dict: 512 MB of float32


def problem(key: str, value: object) -> str | None:
    """What is wrong with `value` as the setting `key` of RANGES (or `widths`), in words; None if it is fine
    or `key` has no bound here."""
    if key == "widths":
        ok = (isinstance(value, (list, tuple)) and len(value) <= MAX_LAYERS
              and all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WIDTH for w in value))
        return None if ok else f"must be 0-{MAX_LAYERS} layer widths of 1..{MAX_WIDTH}, got {value!r:.60}"
    if key not in RANGES:
        return None
    return out_of(value, *RANGES[key])


def out_of(value: object, low: float, high: float) -> str | None:
    """"must be between low and high, got value" unless low <= value <= high (a whole number if the bounds
    are ints); None if it is within."""
    whole = isinstance(low, int) and isinstance(high, int)
    number = (int,) if whole else (int, float)
    if (isinstance(value, bool) or not isinstance(value, number) or not math.isfinite(value)
            or not low <= value <= high):
        kind = "a whole number " if whole else ""
        return f"must be {kind}between {low} and {high}, got {value!r:.40}"
    return None


def implied_shapes(family, hparams: dict) -> dict[str, tuple[int, ...]]:
    """The state dict `family.build(hparams)` (a genre_cnn.models.families.Family) would have, as {name: shape}, built
    on torch's meta device: no weight is allocated, however large the settings. Raises what the constructor
    raises for settings it cannot take."""
    import torch

    with torch.device("meta"):
        model = family.build(hparams)
    return {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}


def weight_count(shapes: dict[str, tuple[int, ...]]) -> int:
    """Elements of every tensor of `shapes`."""
    return sum(math.prod(shape) for shape in shapes.values())
