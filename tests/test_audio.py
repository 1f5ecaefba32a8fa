"""Finding clips in the supported layouts, and loading messy audio: one clear line per unusable file."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.audio.decode import AudioError, audio_info, fix_length, load_audio
from genre_cnn.data.layout import GTZAN_GENRES, DataError, dataset_clips, discover_genres, find_clips, find_genre_root

SR = 22050


def tone(seconds: float, sr: int = SR, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * 440 * t)
    return np.stack([y] * channels, axis=1) if channels > 1 else y


@pytest.mark.parametrize("layout", ["genres", "genres_original", "Data/genres_original", "."])
def test_layouts_are_found(tmp_path, layout):
    for g in ("blues", "rock"):
        (tmp_path / layout / g).mkdir(parents=True)
        sf.write(tmp_path / layout / g / f"{g}.00000.wav", tone(3.5), SR)
    root = find_genre_root(tmp_path)
    assert root == (tmp_path / layout).resolve() or root == tmp_path / layout
    assert discover_genres(root) == ("blues", "rock")
    assert [c.key for c in find_clips(root, ("blues", "rock"))] == ["blues/blues.00000.wav", "rock/rock.00000.wav"]
    assert [c.key for c in dataset_clips(tmp_path)] == ["blues/blues.00000.wav", "rock/rock.00000.wav"]


def test_a_folder_without_genre_folders_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no folder-per-genre audio"):
        dataset_clips(tmp_path)


def test_gtzan_genre_order_is_canonical(tmp_path):
    for g in reversed(GTZAN_GENRES):
        (tmp_path / g).mkdir()
        sf.write(tmp_path / g / "a.wav", tone(3.5), SR)
    assert discover_genres(tmp_path) == GTZAN_GENRES


def test_empty_folder_and_unknown_extensions_are_logged(tmp_path, caplog):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    sf.write(tmp_path / "a" / "x.wav", tone(3.5), SR)
    (tmp_path / "a" / "notes.txt").write_text("hi")
    with caplog.at_level(logging.WARNING):
        clips = find_clips(tmp_path, ("a", "b"))
    assert len(clips) == 1
    assert "unknown extensions (notes.txt)" in caplog.text
    assert "empty genre folder" in caplog.text


def two_tones(seconds: float, sr: int) -> np.ndarray:
    """Stereo with different channels, (samples, 2): 440 Hz on the left, a louder 660 Hz on the right."""
    t = np.arange(int(seconds * sr)) / sr
    return np.stack([0.2 * np.sin(2 * np.pi * 440 * t), 0.4 * np.sin(2 * np.pi * 660 * t)], axis=1)


@pytest.mark.parametrize("fmt,tol", [("wav", 1e-3), ("flac", 1e-3), ("ogg", 0.02)])  # ogg is lossy
def test_stereo_and_other_rates_become_mono_22050(tmp_path, fmt, tol):
    import librosa

    path = tmp_path / f"x.{fmt}"
    stereo = two_tones(4.0, sr=48000)
    sf.write(path, stereo, 48000)
    y = load_audio(path, SR)
    assert y.dtype == np.float32 and y.ndim == 1
    assert abs(len(y) - 4 * SR) < 100
    mean = librosa.resample(stereo.mean(axis=1), orig_sr=48000, target_sr=SR)  # the channels' average
    n = min(len(y), len(mean))
    assert np.sqrt(np.mean((y[:n] - mean[:n]) ** 2)) < tol  # RMS error; either channel alone is off by > 0.1


def test_stereo_at_the_native_rate_is_the_mean_of_its_channels(tmp_path):
    stereo = two_tones(4.0, sr=SR).astype(np.float32)
    sf.write(tmp_path / "x.wav", stereo, SR, subtype="FLOAT")
    np.testing.assert_allclose(load_audio(tmp_path / "x.wav", SR), stereo.mean(axis=1), atol=1e-7)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_become_zero(tmp_path, bad):
    y = tone(4.0).astype(np.float32)
    y[1000:2000] = bad
    y[5000] = bad
    sf.write(tmp_path / "x.wav", y, SR, subtype="FLOAT")
    out = load_audio(tmp_path / "x.wav", SR)
    assert (out[1000:2000] == 0).all() and out[5000] == 0  # the documented value: 0, not a clip to +-1
    finite = np.isfinite(y)
    np.testing.assert_array_equal(out[finite], y[finite])  # and nothing else changes


def write_bad(tmp_path, kind: str):
    path = tmp_path / f"{kind}.wav"
    if kind == "text":
        path.write_text("this is not audio")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        sf.write(path, tone(4.0), SR)
        path.write_bytes(path.read_bytes()[:40])
    elif kind == "corrupt_header":
        sf.write(path, tone(4.0), SR)
        data = bytearray(path.read_bytes())
        data[:4] = b"JUNK"
        path.write_bytes(bytes(data))
    elif kind == "short":
        sf.write(path, tone(1.0), SR)
    elif kind == "silent":
        sf.write(path, np.zeros(4 * SR), SR)
    return path


@pytest.mark.parametrize("kind,reason", [("text", "not an audio file \\(it holds text\\)"), ("empty", "empty file"),
                                         ("truncated", "unreadable|no audio|too short"),
                                         ("corrupt_header", "unknown format"), ("short", "too short"),
                                         ("silent", "silent")])
def test_bad_files_raise_one_line_audio_error(tmp_path, kind, reason):
    import re

    path = write_bad(tmp_path, kind)
    with pytest.raises(AudioError) as err:
        load_audio(path, SR)
    message = str(err.value)
    assert "\n" not in message and str(path) in message
    assert re.search(reason, message), message


def test_fix_length_centres_long_and_loops_short():
    y = np.arange(10, dtype=np.float32)
    assert fix_length(y, 4).tolist() == [3, 4, 5, 6]
    assert fix_length(y[:3], 7).tolist() == [0, 1, 2, 0, 1, 2, 0]


def test_text_or_junk_named_mp3_says_it_is_not_audio_and_the_decoder_stays_quiet(tmp_path, capfd):
    text, junk = tmp_path / "fake.mp3", tmp_path / "junk.mp3"
    text.write_text("hello, this is a text file\n")
    junk.write_bytes(np.random.default_rng(0).integers(1, 255, 3000, dtype=np.uint8).tobytes())
    for path, reason in ((text, "not an audio file (it holds text)"), (junk, "unknown format: not an audio file")):
        with pytest.raises(AudioError) as err:
            load_audio(path, SR)
        assert str(err.value).startswith(f"{path}: {reason}") and "pipe" not in str(err.value)
    captured = capfd.readouterr()  # what the C decoders wrote to file descriptor 2 included
    assert "MPEG" not in captured.err and "Note:" not in captured.err, captured.err


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg is needed to write an MP3")
def test_a_truncated_mp3_is_read_without_decoder_chatter(tmp_path, capfd):
    import subprocess

    wav, mp3 = tmp_path / "x.wav", tmp_path / "x.mp3"
    sf.write(wav, tone(5.0), SR)
    subprocess.run(["ffmpeg", "-loglevel", "error", "-i", str(wav), str(mp3)], check=True)
    mp3.write_bytes(mp3.read_bytes()[:3000])  # mpg123 warns about the stream size it announced
    capfd.readouterr()
    assert load_audio(mp3, SR, min_seconds=0.1).size > 0
    assert capfd.readouterr().err == ""


def test_a_name_that_is_not_utf8_is_read_and_shown_with_escapes(tmp_path, monkeypatch):
    import audioread

    raw = os.path.join(os.fsencode(tmp_path), b"bad\xff\xfename.wav")
    sf.write(raw, tone(4.0), SR)
    path = Path(os.fsdecode(raw))  # how os.listdir and argv hand it over: lone surrogates
    monkeypatch.setattr(audioread, "audio_open", lambda *a, **k: pytest.fail("soundfile should have read it"))
    assert audio_info(path) == (SR, 4 * SR)  # seekable: read in pieces, not decoded whole by the fallback
    assert load_audio(path, SR).size == 4 * SR
    sf.write(raw, np.zeros(4 * SR), SR)
    with pytest.raises(AudioError) as err:
        load_audio(path, SR)
    message = str(err.value)
    assert message.startswith(f"{tmp_path}/bad\\xff\\xfename.wav: silent")
    message.encode("utf-8")  # printable anywhere: no lone surrogates left
