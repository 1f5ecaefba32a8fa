"""Calibrated probabilities: one temperature per model, fitted on held-out clips, and how to measure calibration.

    from genre_cnn.training.calibration import fit_temperature, expected_calibration_error
    t = fit_temperature(window_logits, labels)        # (N, K, n) logits of N held-out clips, (N,) labels
    model.temperature.fill_(t)                        # stored in the checkpoint; both engines apply it

Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", ICML 2017): every window's logits
are divided by one number T > 0 before the softmax, chosen to minimise the negative log-likelihood of the
held-out clips' labels under the clip probability the model reports (the mean of its windows' softmax). It
changes no answer (the top genre of one window is the same for any T), only how sure the model says it is.
A checkpoint saved before models carried a temperature loads with T = 1.
"""

from __future__ import annotations

import numpy as np

# the temperatures searched (log-spaced): softening only. A small validation set that the model gets all right
# would drive T towards 0 (every answer 100%); T >= 1 never makes a model surer than its own softmax.
T_RANGE = (1.0, 20.0)


def clip_probs(window_logits: np.ndarray, temperature: float) -> np.ndarray:
    """(N, K, n) window logits -> (N, n) clip probabilities: the mean over windows of softmax(logits / T)."""
    z = window_logits / temperature
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    return (p / p.sum(axis=-1, keepdims=True)).mean(axis=1)  # (N, n)


def nll(window_logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    """Mean negative log-likelihood of `labels` (N,) under clip_probs(window_logits, temperature)."""
    p = clip_probs(window_logits, temperature)[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(p, 1e-12, None)).mean())


def fit_temperature(window_logits: np.ndarray, labels: np.ndarray) -> float:
    """The temperature minimising `nll` on held-out clips: a log-spaced grid over T_RANGE, then golden-section
    search between the grid neighbours of the best point. 1.0 when there are no clips."""
    window_logits = np.asarray(window_logits, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) == 0:
        return 1.0
    grid = np.geomspace(*T_RANGE, 61)
    losses = [nll(window_logits, labels, t) for t in grid]
    i = int(np.argmin(losses))
    lo, hi = np.log(grid[max(i - 1, 0)]), np.log(grid[min(i + 1, len(grid) - 1)])
    ratio = (np.sqrt(5) - 1) / 2
    for _ in range(40):  # golden-section search on log T
        a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
        if nll(window_logits, labels, np.exp(a)) < nll(window_logits, labels, np.exp(b)):
            hi = b
        else:
            lo = a
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> float:
    """ECE (Naeini et al. 2015): over `bins` equal-width bins of the top probability, the clip-weighted mean
    of |accuracy - mean confidence|. probs (N, n), labels (N,)."""
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return float(sum(abs(right[which == b].mean() - conf[which == b].mean()) * np.mean(which == b)
                     for b in range(bins) if np.any(which == b)))


def reliability(probs: np.ndarray, labels: np.ndarray, bins: int = 10) -> list[tuple[float, float, int]]:
    """(mean confidence, accuracy, clips) of each non-empty bin of the top probability, for a diagram."""
    conf, right = probs.max(axis=1), probs.argmax(axis=1) == labels
    which = np.minimum((conf * bins).astype(int), bins - 1)
    return [(float(conf[which == b].mean()), float(right[which == b].mean()), int(np.sum(which == b)))
            for b in range(bins) if np.any(which == b)]


def collect_window_logits(model, loader) -> tuple[np.ndarray, np.ndarray]:
    """(N, K, n) window logits and (N,) labels of every clip an evaluation loader serves (x, y batches)."""
    import torch

    logits, labels = [], []
    model.eval()
    with torch.no_grad():
        for x, y in loader:
            logits.append(model.window_logits(x.to(model.temperature.device)).float().cpu().numpy())
            labels.append(y.numpy())
    return np.concatenate(logits), np.concatenate(labels)


def calibrate(model, loader) -> dict:
    """Fits `model`'s temperature on the clips of `loader` (held out from its training) and sets it; returns
    {"temperature", "ece_before", "ece_after", "clips"} measured on those clips."""
    logits, labels = collect_window_logits(model, loader)
    t = fit_temperature(logits, labels)
    model.temperature.fill_(t)
    return {"temperature": t, "clips": int(len(labels)),
            "ece_before": expected_calibration_error(clip_probs(logits, 1.0), labels),
            "ece_after": expected_calibration_error(clip_probs(logits, t), labels)}


def calibrate_checkpoint(ckpt, dm) -> dict:
    """Fits the temperature of a training run's checkpoint on the validation clips of DataModule `dm` (held out
    from that fit), writes it into the checkpoint (through the runs' one checkpoint writer, atomically) and returns
    `calibrate`'s figures."""
    from pathlib import Path

    import torch

    from genre_cnn.inference.predict import load_model
    from genre_cnn.training.runs import atomic_checkpoint_io

    ckpt = Path(ckpt)
    result = calibrate(load_model(ckpt), dm.val_dataloader())
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    checkpoint["state_dict"]["model.temperature"] = torch.tensor(result["temperature"])
    atomic_checkpoint_io().save_checkpoint(checkpoint, ckpt)
    return result
