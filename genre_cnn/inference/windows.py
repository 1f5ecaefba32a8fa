"""Which windows of a long track the model hears, and when it has heard enough.

    from genre_cnn.inference.windows import WindowPlan, settled
    plan = WindowPlan.of(total, segment, step, sample_rate, max_windows)   # None: hear every window
    for start in plan.order():          # window starts in samples, spread over the track
        ...                             # read and run them in batches; stop early when settled(values, answer)

A track is the model's windows along it: `segment` samples long, one every `step` samples, as a pass over the
whole file makes them. A track of at most `max_windows` windows (default DEFAULT_MAX_WINDOWS, about 1.5 min
for 3-s windows) is heard whole. Of a longer one only some windows are read:

- they are visited in a low-discrepancy order (van der Corput's), so the windows read so far always
  spread evenly over the track: the first MIN_WINDOWS sit at the centres of MIN_WINDOWS equal parts of it,
  the next ones halve the gaps, and so on; each batch is read in ascending order, so one decoder seeks
  forward through the file;
- a silent window (RMS below SILENT_RMS, -60 dBFS) is not counted and the next one in the order is read;
- reading stops at `max_windows` windows, or once the answer is settled (`settled`): after MIN_WINDOWS, when
  in BOOTSTRAP resamples of the windows read (drawn with replacement, the track's answer made from each) the
  top genre is the one of all the windows read at least AGREE of the time. benchmarks/long_tracks.py measures
  how often this gives the answer of every window.

Intros and outros are not left out: the answer of every window includes them, and on real full-length tracks
leaving out their first and last 5% (at most 15 s) changed the answer of 2 of 74 tracks that windows spread
over the whole track kept.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np

DEFAULT_MAX_WINDOWS = 32
MIN_WINDOWS, BATCH = 8, 4  # windows read before the first check, and between checks
SILENT_RMS = 1e-3  # -60 dBFS
BOOTSTRAP, AGREE = 200, 0.99


def spread_order(n: int) -> Iterator[int]:
    """range(n) in a low-discrepancy order: the first 2^j indices are the centres of 2^j equal parts of it (as
    near as whole numbers go), for every j with 2^j <= MIN_WINDOWS and then halving the gaps; each index once."""
    bits = max(1, int(np.ceil(np.log2(max(n, 2)))))
    seen = set()
    for i in range(1 << bits):
        u = int(format(i, f"0{bits}b")[::-1], 2) / (1 << bits)  # van der Corput: 0, 1/2, 1/4, 3/4, 1/8, ...
        index = int(((u + 0.5 / MIN_WINDOWS) % 1.0) * n)
        if index not in seen:
            seen.add(index)
            yield index
    yield from (i for i in range(n) if i not in seen)  # none left in practice; kept so every index comes once


@dataclass(frozen=True)
class WindowPlan:
    """The candidate windows of a long track (starts in samples, on the whole-file pass's grid) and how many of
    them to hear at most."""

    starts: np.ndarray  # (J,) int64, ascending
    segment: int
    max_windows: int

    @classmethod
    def of(cls, total: int, segment: int, step: int, sample_rate: int,
           max_windows: int | None = None) -> WindowPlan | None:
        """The plan for a track of `total` samples, or None when every window is to be heard: `max_windows` 0,
        or a track of at most `max_windows` (None: DEFAULT_MAX_WINDOWS) windows."""
        cap = DEFAULT_MAX_WINDOWS if max_windows is None else max_windows
        count = (total - segment) // step + 1 if total >= segment else 0  # windows of the whole-file pass
        if cap <= 0 or count <= cap:
            return None
        return cls(np.arange(count, dtype=np.int64) * step, segment, cap)

    def order(self) -> Iterator[int]:
        """Window starts in the spread order, at most twice `max_windows` of them (so that silent windows can be
        replaced without reading a silent track to its end)."""
        for _, i in zip(range(2 * self.max_windows), spread_order(len(self.starts))):
            yield int(self.starts[i])


def silent(y: np.ndarray) -> bool:
    """A window with no music to judge: RMS below SILENT_RMS (-60 dBFS), or no samples."""
    return y.size == 0 or float(np.sqrt(np.mean(np.square(y, dtype=np.float64)))) < SILENT_RMS


def settled(values: np.ndarray, answer: Callable[[np.ndarray], np.ndarray], seed: int = 0) -> bool:
    """Whether the top genre of the windows read is settled: at least MIN_WINDOWS of them, and in BOOTSTRAP
    resamples of them (with replacement; `seed` fixes the draws, so an answer never depends on chance) the
    answer made from each resample's mean has that top genre at least AGREE of the time.

    values: (k, D) per-window values (window probabilities, or a head's embeddings); answer: means (B, D) ->
    probabilities (B, n).
    """
    k = len(values)
    if k < MIN_WINDOWS:
        return False
    top = int(np.argmax(answer(values.mean(axis=0, keepdims=True))[0]))
    draws = np.random.default_rng(seed).integers(0, k, size=(BOOTSTRAP, k))  # (B, k) window indices
    means = values[draws].mean(axis=1)  # (B, k, D) -> (B, D)
    return float(np.mean(np.argmax(answer(means), axis=1) == top)) >= AGREE
