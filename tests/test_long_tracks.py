"""Long tracks by default: windows spread over the track, silent ones passed over, only those spans decoded
through one open file, and reading stopped once the answer is settled, which it gives as every window would:
on constructed tracks (a stand-in model whose genre is a window's loudness) and on real clips joined into
long tracks (the ready model)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.inference.windows import (
    DEFAULT_MAX_WINDOWS,
    MIN_WINDOWS,
    WindowPlan,
    settled,
    spread_order,
)
from tests.conftest import GTZAN_MINI, needs_gtzan_mini

SR = 8000
STEP = 3 * SR  # one window of the stand-in model


class LoudnessModel:
    """A stand-in runner: each 3-s window votes for genre "a" as much as it is loud (RMS 0.27: 0.9, RMS 0.03: 0.1),
    the track's answer being the mean vote. Records every waveform it is shown."""

    sample_rate, genres, clip_samples = SR, ["a", "b"], None
    segment_samples, window_step = STEP - 64, STEP  # windows that do not overlap, as musicnn's patches

    def __init__(self):
        self.shown: list[np.ndarray] = []

    def window_values(self, y: np.ndarray) -> np.ndarray:
        self.shown.append(y)
        k = max(1, y.size // STEP)
        chunks = np.resize(y, k * STEP).reshape(k, STEP)  # (K, STEP); a short input looped
        vote = np.clip(np.sqrt(np.mean(chunks.astype(np.float64) ** 2, axis=1)) / 0.3, 0, 1)  # (K,)
        return np.stack([vote, 1 - vote], axis=1).astype(np.float32)  # (K, 2)

    def answer(self, means: np.ndarray) -> np.ndarray:
        return means

    @property
    def windows(self) -> int:
        return sum(max(1, y.size // STEP) for y in self.shown)


class Counting:
    """A runner that counts the windows it is shown (rows of `window_values`)."""

    def __init__(self, runner):
        self.runner, self.windows = runner, 0

    def __getattr__(self, name: str):
        return getattr(self.runner, name)

    def window_values(self, y: np.ndarray) -> np.ndarray:
        values = self.runner.window_values(y)
        self.windows += len(values)
        return values


def track(path: Path, levels: list[float]) -> Path:
    """A WAV of one 3-s window per level: a 440-Hz tone of that RMS, with a little noise (0 is digital silence)."""
    rng = np.random.default_rng(0)
    t = np.arange(STEP) / SR
    parts = [(lv * np.sqrt(2) * np.sin(2 * np.pi * 440 * t) + (0.002 * rng.standard_normal(STEP) if lv else 0))
             for lv in levels]
    sf.write(path, np.concatenate(parts).astype(np.float32), SR, subtype="FLOAT")
    return path


def answer(path: Path, max_windows: int | None = None) -> tuple[str, LoudnessModel]:
    from genre_cnn.inference.track import predict_track

    model = LoudnessModel()
    probs, _ = predict_track(model, path, max_windows)
    return model.genres[int(np.argmax(probs))], model


def test_the_spread_order_visits_the_centres_of_equal_parts_first_and_every_window_once():
    order = list(spread_order(100))
    assert sorted(order) == list(range(100))
    assert sorted(order[:8]) == [6, 18, 31, 43, 56, 68, 81, 93]  # centres of eight 12.5-window parts
    assert sorted(order[:2]) == [6, 56] and sorted(order[:4]) == [6, 31, 56, 81]


def test_short_tracks_and_max_windows_all_hear_every_window():
    assert WindowPlan.of(DEFAULT_MAX_WINDOWS * STEP, STEP, STEP, SR) is None  # 32 windows: all of them
    assert WindowPlan.of(200 * STEP, STEP, STEP, SR, max_windows=0) is None
    plan = WindowPlan.of(200 * STEP, STEP, STEP, SR)
    assert plan.max_windows == DEFAULT_MAX_WINDOWS
    assert list(plan.starts) == [i * STEP for i in range(200)]  # the windows of a pass over the whole track


def test_the_default_reads_only_windows_spread_over_the_track_through_one_handle_and_skips_silence(tmp_path,
                                                                                                 monkeypatch):
    import soundfile

    from genre_cnn.audio.reader import AudioReader

    levels = [0.0 if i % 3 == 0 else 0.27 for i in range(200)]  # every third window silent: 10 min in all
    path = track(tmp_path / "long.wav", levels)
    opened, spans = [], []
    real_open, real_span = soundfile.SoundFile, AudioReader.span
    monkeypatch.setattr(soundfile, "SoundFile", lambda *a, **k: opened.append(a) or real_open(*a, **k))
    monkeypatch.setattr(AudioReader, "span", lambda self, *a: spans.append(a) or real_span(self, *a))
    top, model = answer(path)
    assert top == "a" and len(opened) == 1  # one open decoder for the whole prediction
    total = len(levels) * STEP
    assert {length for _, length in spans} == {STEP}, "each read is one window"
    assert len(spans) * STEP < 0.25 * total, "only the windows heard (and the silent ones skipped) are decoded"
    starts = sorted(start for start, _ in spans)
    assert all(start % STEP == 0 and start + STEP <= total for start in starts), "on the window grid"
    shown = [w for y in model.shown for w in y[: y.size // STEP * STEP].reshape(-1, STEP)]  # windows, end to end
    assert shown and all(np.sqrt(np.mean(w ** 2)) > 0.1 for w in shown), "a silent window reached the model"
    eighths = {int(8 * s / total) for s in starts}
    assert eighths == set(range(8)), f"windows should spread over the whole track, got eighths {eighths}"


def test_a_clear_track_stops_after_the_first_windows_with_the_answer_of_every_window(tmp_path):
    rng = np.random.default_rng(1)
    path = track(tmp_path / "clear.wav", list(0.27 + 0.02 * rng.standard_normal(120)))
    top, model = answer(path)
    assert top == "a" and model.windows == MIN_WINDOWS
    every, model = answer(path, max_windows=0)
    assert every == "a" and model.windows >= 120  # every window (and those around the 30-s pieces it is shown)


def test_a_tie_is_never_settled_early(tmp_path):
    path = track(tmp_path / "tie.wav", [0.27, 0.03] * 60)  # votes 0.9 and 0.1 in turn: a mean of 0.5
    _, model = answer(path)
    assert model.windows == DEFAULT_MAX_WINDOWS
    _, model = answer(path, max_windows=12)
    assert model.windows == 12


def test_a_track_that_changes_half_way_gets_the_answer_of_every_window(tmp_path):
    """Loud (genre a) for its first 40%, soft (genre b) after: every window says b (mean vote 0.42). Windows read
    from the start would all say a and settle at once; spread ones cannot be fooled so."""
    path = track(tmp_path / "two_parts.wav", [0.27] * 48 + [0.03] * 72)
    assert answer(path, max_windows=0)[0] == "b"
    top, model = answer(path)
    assert top == "b" and model.windows > MIN_WINDOWS


def test_settled_needs_enough_windows_that_agree_and_never_depends_on_chance():
    same = np.tile([[0.8, 0.2]], (MIN_WINDOWS, 1)).astype(np.float32)
    assert settled(same, lambda m: m) and not settled(same[:-1], lambda m: m)
    tie = np.array([[0.9, 0.1], [0.1, 0.9]] * 16, np.float32)
    assert not settled(tie, lambda m: m)
    rng = np.random.default_rng(2)
    noisy = np.clip(0.55 + 0.3 * rng.standard_normal((20, 1)), 0, 1)  # (20, 1): a lead that is not sure
    noisy = np.hstack([noisy, 1 - noisy]).astype(np.float32)
    verdicts = {settled(noisy, lambda m: m) for _ in range(5)}
    assert len(verdicts) == 1


@needs_gtzan_mini
def test_real_clips_joined_get_the_answer_of_every_window_from_fewer_windows(tmp_path):
    from genre_cnn.inference.onnx_predict import OnnxRunner, cached_onnx
    from genre_cnn.inference.predict import READY_MODEL
    from genre_cnn.inference.track import predict_track

    runner = Counting(OnnxRunner(cached_onnx(READY_MODEL), threads=1))
    for genre in ("classical", "metal"):
        clips = sorted((GTZAN_MINI / "genres" / genre).glob("*.wav"))[:5]
        path = tmp_path / f"{genre}.flac"
        sf.write(path, np.concatenate([sf.read(c, dtype="float32")[0] for c in clips]), 22050)  # 2.5 min
        runner.windows = 0
        default = predict_track(runner, path)[0]
        heard, runner.windows = runner.windows, 0
        every = predict_track(runner, path, max_windows=0)[0]
        assert np.argmax(default) == np.argmax(every), genre
        assert heard <= 2 * MIN_WINDOWS < 50 <= runner.windows, (heard, runner.windows)


@needs_gtzan_mini
def test_both_engines_pool_windows_as_the_model_answers_a_whole_clip():
    import torch

    from genre_cnn.audio.decode import load_audio
    from genre_cnn.inference.onnx_predict import OnnxRunner, cached_onnx
    from genre_cnn.inference.predict import READY_MODEL, load_model
    from genre_cnn.inference.torch_runner import TorchRunner
    from genre_cnn.inference.track import predict_track

    clip = sorted((GTZAN_MINI / "genres" / "jazz").glob("*.wav"))[3]
    model = load_model(READY_MODEL)
    expected = model.predict_waveform(torch.from_numpy(load_audio(clip, 16000))).numpy()  # (n,)
    onnx, torch_runner = OnnxRunner(cached_onnx(READY_MODEL), threads=1), TorchRunner(model)
    y = load_audio(clip, 16000)[: 4 * 47872]
    values = onnx.window_values(y)
    assert values.shape == (4, 250)
    np.testing.assert_allclose(values, torch_runner.window_values(y), rtol=1e-4, atol=1e-3)
    np.testing.assert_allclose(onnx.answer(values[:2]), torch_runner.answer(values[:2]), atol=1e-5)
    for runner in (onnx, torch_runner):
        np.testing.assert_allclose(predict_track(runner, clip, max_windows=0)[0], expected, atol=1e-4)


def test_max_windows_accepts_all_and_refuses_negatives(capsys):
    from genre_cnn.app.cli_parser import build_parser

    parser = build_parser()
    assert parser.parse_args(["predict", "x.mp3"]).max_windows is None
    assert parser.parse_args(["predict", "x.mp3", "--max-windows", "all"]).max_windows == 0
    assert parser.parse_args(["sort", "a", "b", "--max-windows", "8"]).max_windows == 8
    with pytest.raises(SystemExit):
        parser.parse_args(["predict", "x.mp3", "--max-windows", "-2"])
    assert "--max-windows" in capsys.readouterr().err


def test_every_window_in_pieces_is_a_pass_over_the_whole_file(tmp_path):
    """`--max-windows all` shows the model 30 s at a time (bounded memory): the same windows, from the same
    audio, as the whole file at once (a small CNN with random weights, its windows overlapping by half)."""
    import torch

    from genre_cnn.audio.decode import SignalCheck
    from genre_cnn.audio.reader import AudioReader
    from genre_cnn.inference.torch_runner import TorchRunner
    from genre_cnn.inference.track import PIECE_SECONDS, Pooling, streamed
    from genre_cnn.models.families.cnn import WindowClassifier

    torch.manual_seed(0)
    runner = TorchRunner(WindowClassifier(["a", "b", "c"], widths=(8, 8), stem=2).eval())
    sr = runner.sample_rate
    rng = np.random.default_rng(3)
    y = (0.2 * rng.standard_normal(int(2.6 * PIECE_SECONDS * sr)) * np.repeat(rng.uniform(0, 1, 79), sr)[
        : int(2.6 * PIECE_SECONDS * sr)]).astype(np.float32)  # 78 s of noise whose level changes every second
    path = tmp_path / "long.wav"
    sf.write(path, y, sr, subtype="FLOAT")
    with AudioReader(path, sr) as reader:
        values, total = streamed(Pooling(runner), reader, SignalCheck(), runner)
    whole = runner.window_values(y)  # (K, 3): every window of one pass
    assert total == y.size and values.shape == whole.shape
    np.testing.assert_allclose(values, whole, atol=1e-5)
