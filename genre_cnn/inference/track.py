"""What a model hears of one audio file, and its answer: every window of it, or some windows read alone.

    from genre_cnn.inference.track import predict_track, track_answer
    probs, warning = predict_track(runner, Path("song.mp3"))               # the default: see below
    probs, warning = predict_track(runner, Path("song.mp3"), max_windows=0)   # every window of the file
    answer = track_answer(runner, Path("song.mp3"))       # the same, and .music: is it music it can judge?

`runner` is a TorchRunner (genre_cnn.inference.torch_runner) or an OnnxRunner (genre_cnn.inference.onnx_predict):
`window_values(y)` gives the values of a waveform's windows, `answer(means)` the genre probabilities made from
their mean (the CNN averages window probabilities; musicnn's head classifies the mean patch embedding). A
runner with only `window_probs(y)` is taken to average those. A runner whose model has an open-set detector
(`verdicts`, `openset(means)`) also judges that same mean: `track_answer`'s `music`.

Which windows (`max_windows`: None for the default, 0 for every window, N for at most N):
- a file of at most `max_windows` windows (DEFAULT_MAX_WINDOWS: 32, about 1.5 min), one of unknown length
  (formats only ffmpeg reads, damaged headers) or `max_windows` 0: every window, the file streamed from its
  start in blocks and shown to the model PIECE_SECONDS at a time (`streamed`), so memory does not grow with
  its length;
- a longer file: windows spread over it, read alone through one open decoder (seeking), until the answer is
  settled or `max_windows` are heard (genre_cnn.inference.windows says which and when);
- the dense baseline: its centred `clip_seconds`, as in training, read alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genre_cnn.audio.decode import PREDICT_MIN_SECONDS, AudioError, SignalCheck, shown
from genre_cnn.audio.reader import AudioReader
from genre_cnn.errors import GenreCnnError
from genre_cnn.inference.windows import BATCH, MIN_WINDOWS, WindowPlan, settled, silent

TRAINED_SECONDS = 3.0  # training refuses shorter clips; shorter files are predicted with a warning
LONG_SECONDS, PIECE_SECONDS = 600.0, 30.0


class PredictionError(GenreCnnError):
    """A file the model read but gave no usable answer for (non-finite probabilities)."""


class Pooling:
    """A runner's `window_values` and `answer`, or for a runner with only `window_probs`, those and their mean; and
    its open-set detector's answer on the same means, if it has one (`music`)."""

    def __init__(self, runner):
        if hasattr(runner, "window_values") and hasattr(runner, "answer"):
            self.values, self.answer = runner.window_values, runner.answer
            self.verdicts = getattr(runner, "verdicts", None)
        else:
            self.values, self.answer, self.verdicts = runner.window_probs, lambda means: means, None
        self.openset = getattr(runner, "openset", None)

    def music(self, mean: np.ndarray) -> dict | None:
        """The mean of the window values (1, D) -> {"verdict": a word of `verdicts`, "familiarity",
        "music_probability"}, or None without a detector."""
        if not self.verdicts:
            return None
        familiarity, probability, verdict = self.openset(mean)  # (1,) each
        return {"verdict": self.verdicts[int(verdict[0])], "familiarity": float(familiarity[0]),
                "music_probability": float(probability[0])}


@dataclass(frozen=True)
class TrackAnswer:
    """One file's answer: genre probabilities (n,), a warning line or None, and for a model with an open-set
    detector `music` = {"verdict": "music" | "unfamiliar" | "not music", "familiarity", "music_probability"}."""

    probs: np.ndarray
    warning: str | None = None
    music: dict | None = None


def predict_track(runner, path: Path, max_windows: int | None = None) -> tuple[np.ndarray, str | None]:
    """Genre probabilities (n,) of one file, and a warning line or None (`track_answer`'s)."""
    answer = track_answer(runner, path, max_windows)
    return answer.probs, answer.warning


def track_answer(runner, path: Path, max_windows: int | None = None) -> TrackAnswer:
    """One file's TrackAnswer. Raises AudioError for a file that is not usable audio, PredictionError for
    non-finite model output."""
    pool, sr, check = Pooling(runner), runner.sample_rate, SignalCheck()
    with AudioReader(path, sr) as reader:
        total, clip, values = reader.samples, runner.clip_samples, None
        if total is not None and clip and total > clip:
            y = reader.span((total - clip) // 2, clip)  # (clip,) or shorter if the file ends early
            check.add(y)
            values = pool.values(y)  # (1, n)
        elif total is not None and not clip and runner.segment_samples:
            step = getattr(runner, "window_step", None) or runner.segment_samples
            plan = WindowPlan.of(total, max(step, runner.segment_samples), step, sr, max_windows)
            joined = step >= runner.segment_samples
            values = None if plan is None else sampled(reader, plan, pool, check, joined)
        if values is None:  # every window, or sampling found no music: the whole file
            check = SignalCheck()
            values, total = streamed(pool, reader, check, runner)
    if not total:
        raise AudioError(f"{shown(path)}: no audio samples (empty or truncated file)")
    seconds = total / sr
    if seconds < PREDICT_MIN_SECONDS:
        raise AudioError(f"{shown(path)}: too short ({seconds:.2f} s < {PREDICT_MIN_SECONDS:g} s)")
    check.verdict(path, sr)
    mean = values.mean(axis=0, keepdims=True)  # (K, D) -> (1, D)
    probs, music = pool.answer(mean)[0], pool.music(mean)  # (n,), dict or None
    scores = [music["familiarity"], music["music_probability"]] if music else []
    if not np.isfinite(probs).all() or not np.isfinite(scores).all():
        raise PredictionError(f"{shown(path)}: the model gave non-finite probabilities (damaged weights?); no answer")
    warning = None
    if seconds < TRAINED_SECONDS:
        warning = (f"{shown(path)}: only {seconds:.1f} s; the model was trained on clips of {TRAINED_SECONDS:g} s or "
                   "more (this one is looped), so treat the answer with care")
    return TrackAnswer(probs, warning, music)


def sampled(reader: AudioReader, plan: WindowPlan, pool: Pooling, check: SignalCheck,
            joined: bool = False) -> np.ndarray | None:
    """The values (k, D) of the windows `plan` offers, read alone, silent ones passed over, until `settled` or
    `plan.max_windows` are heard; None if none of them holds music. `joined`: the model's windows do not
    overlap, so a batch of them (each read `step` long) is shown to it at once, end to end, and makes one
    window each (musicnn's patches: the same frames as in a pass over the whole file)."""
    values = np.zeros((0, 0), np.float32)  # (k, D)
    order, end = plan.order(), None  # end: where the file turned out to end, if before its header said
    while len(values) < plan.max_windows:
        size = min(MIN_WINDOWS if not len(values) else BATCH, plan.max_windows - len(values))
        batch = sorted(start for _, start in zip(range(size), order))  # ascending: the decoder seeks forward
        if not batch:
            break
        heard = []
        for start in batch:
            y = np.zeros(0, np.float32) if end is not None and start >= end else reader.span(start, plan.segment)
            if y.size < plan.segment:
                end = start if end is None else min(end, start)
                continue
            check.add(y)
            heard.extend([] if silent(y) else [y])
        if heard:
            new = _values(pool, heard, joined)  # (len(heard), D)
            values = np.concatenate([values, new]) if len(values) else new
        if len(values) and settled(values, pool.answer):
            break
    return values if len(values) else None


def _values(pool: Pooling, windows: list[np.ndarray], joined: bool) -> np.ndarray:
    """(k, D), a row per window: one model call on the windows end to end if `joined` and it makes one window
    of each, else one call per window."""
    if joined and len(windows) > 1:
        values = pool.values(np.concatenate(windows))  # (k, D)
        if len(values) == len(windows):
            return values
    return np.concatenate([pool.values(y) for y in windows])


def streamed(pool: Pooling, reader: AudioReader, check: SignalCheck, runner) -> tuple[np.ndarray, int]:
    """Values of every window of the file, read from its start in blocks: ((K, D), samples).

    The model is shown PIECE_SECONDS at a time: pieces that start on its window grid and overlap by what one
    window reaches past the next one's start, so that they hold the windows of a pass over the whole file,
    each once, computed from the same audio (each piece comes with a window step of audio on either side,
    whose windows are dropped). For a model of the centred clip (the dense baseline), a file up to
    LONG_SECONDS is shown whole and of a longer one that clip, read in a second pass. Memory: one piece (or
    LONG_SECONDS) and one block, whatever the file's length."""
    sr, segment, clip = reader.sample_rate, runner.segment_samples, runner.clip_samples
    step = getattr(runner, "window_step", None) or segment or int(PIECE_SECONDS * sr)
    piece = max(1, int(PIECE_SECONDS * sr) // step) * step  # samples, a whole number of window steps
    reach = piece + max(0, (segment or 0) - step)  # samples of one piece, with the window it ends inside
    # each piece is shown with one window step of audio on either side (`head` before it, once there is one),
    # whose windows are dropped: the piece's own windows then see the same audio around them as in one pass
    buffer, head, total, parts = np.zeros(0, np.float32), 0, 0, []
    for block in reader.stream():  # (samples,)
        check.add(block)
        total += block.size
        if clip and total > LONG_SECONDS * sr:  # only the centred clip is needed: kept from a second pass
            buffer = np.zeros(0, np.float32)
            continue
        buffer = np.concatenate([buffer, block])
        while buffer.size >= head + reach + step and not clip:
            values = pool.values(buffer[:head + reach + step])  # (1 + K_i + 1, D), or (K_i + 1, D) at first
            parts.append(values[(1 if head else 0):-1])
            buffer, head = buffer[head + piece - step:], step
    if clip and total > LONG_SECONDS * sr:
        buffer = _centred(reader, total, clip)
    if buffer.size - head >= (segment or 0) or (buffer.size and not parts):  # a last full window, a short file
        parts.append(pool.values(buffer)[(1 if head else 0):])
    return (np.concatenate(parts) if parts else np.zeros((0, 1), np.float32)), total


def _centred(reader: AudioReader, total: int, clip: int) -> np.ndarray:
    """Samples [(total - clip) // 2, + clip) of a streamed file, read in a second pass: (clip,)."""
    start, kept, seen = (total - clip) // 2, [], 0
    for block in reader.stream():
        lo, hi = max(start - seen, 0), min(start + clip - seen, block.size)
        kept.extend([block[lo:hi]] if lo < hi else [])
        seen += block.size
    return np.concatenate(kept)
