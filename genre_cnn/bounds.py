"""Sane ranges for saved settings, and the one check that training and loading both run, so that whatever trains
can be loaded and a file cannot ask for what training would refuse.

    from genre_cnn.bounds import check, TRAINING
    check({"dropout": 2.0}, {"dropout": (0.0, 1.0)})     # -> ("dropout", "must be between 0.0 and 1.0, got 2.0")

Each model family declares the ranges of its own settings (`GenreClassifier.bounds`, in its module under
genre_cnn/models/families/); what every family shares lives here once: the optimiser, loss and augmentation
settings (`TRAINING`, saved in every checkpoint), the data lengths (`SECONDS`), the front end (`FRONTEND`, held by
genre_cnn.audio.frontend.FrontEndConfig) and the layer widths rule (`widths`). `python train.py` checks each model
option against these before any work; `genre_cnn.models.checkpoint.check_contents` checks a checkpoint's
hyperparameters against the same ranges before any model is built. `implied_shapes` is what a classifier's settings
would build (on torch's "meta" device, which allocates nothing), so that both sides can bound the weight count.
Imports no torch until `implied_shapes` is called.
"""

from __future__ import annotations

import math
from collections.abc import Callable

Bound = tuple[float, float] | Callable[[object], str | None]  # (low, high) inclusive, or a rule giving the problem

# the lengths the data is cut to, which the models that take them are built for (seconds)
SECONDS: dict[str, tuple[float, float]] = {"window_seconds": (0.1, 60.0), "clip_seconds": (0.5, 600.0)}
# optimiser, loss and augmentation settings, shared by every family (genre_cnn.training.lit, .augment)
TRAINING: dict[str, tuple[float, float]] = {
    "lr": (1e-8, 1.0), "weight_decay": (0.0, 1.0), "label_smoothing": (0.0, 1.0), "mixup_alpha": (0.0, 100.0),
    "pitch_shift": (0.0, 12.0), "gain_db": (0.0, 60.0), "freq_mask": (0, 512), "time_mask": (0, 10000),
}
# the front end's settings; hop_length is also at most n_fft, n_mels at most n_fft // 2 + 1 (one per FFT bin)
FRONTEND: dict[str, tuple[int, int]] = {"sample_rate": (4000, 192000), "n_fft": (64, 16384),
                                        "hop_length": (16, 16384), "n_mels": (8, 512)}
MAX_LAYERS, MAX_WIDTH = 16, 4096  # `widths`: up to MAX_LAYERS layers of 1..MAX_WIDTH units
MAX_WEIGHTS = 128 * 2**20  # elements of a model's state dict: 512 MB of float32


def widths(value: object) -> str | None:
    """The layer widths rule: 0..MAX_LAYERS whole numbers of 1..MAX_WIDTH units (none: a linear classifier, where a
    family allows it)."""
    ok = (isinstance(value, (list, tuple)) and len(value) <= MAX_LAYERS
          and all(isinstance(w, int) and not isinstance(w, bool) and 1 <= w <= MAX_WIDTH for w in value))
    return None if ok else f"must be 0-{MAX_LAYERS} layer widths of 1..{MAX_WIDTH}, got {value!r:.60}"


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


def problem(value: object, bound: Bound) -> str | None:
    """What is wrong with `value` under `bound`, in words; None if it is fine."""
    return bound(value) if callable(bound) else out_of(value, *bound)


def check(settings: dict, bounds: dict[str, Bound]) -> tuple[str, str] | None:
    """The first (key, problem) of `settings` outside `bounds` (keys without a bound pass), or None."""
    for key, value in settings.items():
        if key in bounds and (why := problem(value, bounds[key])):
            return key, why
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
