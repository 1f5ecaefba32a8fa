"""The synthetic demo set: deterministic, in the promised format, crash-safe, and its classes separable."""

from __future__ import annotations

import json
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.data import demo
from genre_cnn.data.demo import DEMO_GENRES, make_demo_dataset, synth_clip
from genre_cnn.data.layout import find_clips

SMALL = {"clips_per_genre": 2, "seconds": 3.5, "sample_rate": 16000}


def clip_files(root: Path) -> dict[str, bytes]:
    """Every finished clip of a demo set, `genre/name` -> bytes."""
    return {f"{p.parent.name}/{p.name}": p.read_bytes() for p in sorted(root.glob("*/*.wav"))}


def test_same_arguments_give_same_bytes_and_another_seed_other_bytes(tmp_path):
    a = clip_files(make_demo_dataset(tmp_path / "a", **SMALL, seed=0))
    b = clip_files(make_demo_dataset(tmp_path / "b", **SMALL, seed=0))
    c = clip_files(make_demo_dataset(tmp_path / "c", **SMALL, seed=1))
    assert len(a) == len(DEMO_GENRES) * SMALL["clips_per_genre"]
    assert a == b
    assert a.keys() == c.keys()
    assert all(a[k] != c[k] for k in a)


def test_layout_and_format(tmp_path):
    root = make_demo_dataset(tmp_path / "demo", clips_per_genre=3, seconds=3.5, sample_rate=16000, seed=0)
    assert root == tmp_path / "demo"
    assert sorted(p.name for p in root.iterdir()) == sorted([".demo-complete", *DEMO_GENRES])
    assert json.loads((root / ".demo-complete").read_text())["clips_per_genre"] == 3
    for genre in DEMO_GENRES:
        assert sorted(p.name for p in (root / genre).iterdir()) == [f"{genre}.{i:05d}.wav" for i in range(3)]
        for path in (root / genre).iterdir():
            info = sf.info(path)
            assert (info.samplerate, info.channels, info.frames, info.subtype) == (16000, 1, 56000, "PCM_16")
            y, _ = sf.read(path, dtype="float32")
            peak = float(np.max(np.abs(y)))
            assert 0.0 < peak <= 1.0
            assert -20.1 <= 20 * np.log10(peak) <= -5.9, f"{path.name}: peak {peak}"


def test_synth_clip_contract():
    for genre in DEMO_GENRES:
        y = synth_clip(genre, 1.5, 8000, np.random.default_rng(0))
        assert y.dtype == np.float32 and y.shape == (12000,)
        assert np.all(np.isfinite(y)) and 0.0 < np.max(np.abs(y)) <= 1.0
    with pytest.raises(ValueError, match="unknown demo genre"):
        synth_clip("polka", 1.0, 8000, np.random.default_rng(0))


def window_features(y: np.ndarray, sr: int) -> np.ndarray:
    """log spectral centroid, zero-crossing rate, log spectral flatness, energy-modulation rate (Hz)."""
    n_fft, hop = 1024, 512
    frames = np.lib.stride_tricks.sliding_window_view(y, n_fft)[::hop] * np.hanning(n_fft)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    centroid = (power * np.fft.rfftfreq(n_fft, 1 / sr)).sum(1) / power.sum(1)
    flatness = np.exp(np.log(power).mean(1)) / power.mean(1)
    zcr = np.mean(np.abs(np.diff(np.sign(y))) > 0)
    level_db = 10 * np.log10(power.sum(1))  # frame energy; its strongest modulation is beat or note rate
    envelope = (level_db - level_db.mean()) * np.hanning(len(level_db))
    spectrum, rates = np.abs(np.fft.rfft(envelope, n=1024)), np.fft.rfftfreq(1024, hop / sr)
    band = (rates > 0.5) & (rates < 20)
    modulation = rates[band][np.argmax(spectrum[band])]
    return np.array([np.log(centroid.mean()), zcr, np.log(flatness.mean()), modulation])


def test_classes_are_separable_by_simple_features(demo_dir):
    """Nearest centroid on 4 numpy features per 3-s window, fitted on even clips, tested on odd ones."""
    feats, labels, train = [], [], []
    for label, genre in enumerate(DEMO_GENRES):
        paths = sorted((demo_dir / genre).glob("*.wav"))
        assert len(paths) >= 4
        for i, path in enumerate(paths):
            y, sr = sf.read(path, dtype="float32")
            for start in range(0, len(y) - 3 * sr + 1, 3 * sr):
                feats.append(window_features(y[start:start + 3 * sr], sr))
                labels.append(label)
                train.append(i % 2 == 0)
    x, labels, train = np.array(feats), np.array(labels), np.array(train)
    z = (x - x[train].mean(0)) / x[train].std(0)
    centroids = np.stack([z[train & (labels == k)].mean(0) for k in range(len(DEMO_GENRES))])
    pred = np.argmin(((z[~train, None, :] - centroids) ** 2).sum(-1), axis=1)
    accuracy = float(np.mean(pred == labels[~train]))
    assert accuracy >= 0.9, f"held-out window accuracy {accuracy:.2f}"


def test_crash_leaves_no_fake_clip_and_rerun_completes(tmp_path, monkeypatch):
    reference = clip_files(make_demo_dataset(tmp_path / "ref", **SMALL))
    root = tmp_path / "crashed"
    calls = []

    def crashing_write(file, data, samplerate, **kw):  # the third clip dies half-way through writing
        calls.append(file)
        if len(calls) == 3:
            sf.write(file, data[: len(data) // 2], samplerate, **kw)
            raise OSError("simulated crash: disk full")
        sf.write(file, data, samplerate, **kw)

    monkeypatch.setattr(demo, "sf", types.SimpleNamespace(write=crashing_write))
    with pytest.raises(OSError, match="simulated crash"):
        make_demo_dataset(root, **SMALL)
    monkeypatch.undo()
    assert not (root / ".demo-complete").exists()
    assert not list(root.glob("*/.*.tmp"))  # the failed write cleaned up after itself
    finished = clip_files(root)
    assert len(finished) == 2 and all(reference[k] == v for k, v in finished.items())
    # a process killed outright cannot clean up: leave a truncated temporary file as it would
    victim = root / DEMO_GENRES[1] / f"{DEMO_GENRES[1]}.00000.wav"
    assert not victim.exists()
    leftover = victim.with_name(f".{victim.name}.99999.tmp")
    leftover.write_bytes(reference[f"{DEMO_GENRES[1]}/{victim.name}"][:1000])
    kept = {k: (root / k).stat().st_mtime_ns for k in finished}

    assert make_demo_dataset(root, **SMALL) == root
    assert clip_files(root) == reference
    assert {k: (root / k).stat().st_mtime_ns for k in finished} == kept  # finished clips were not rewritten
    assert (root / ".demo-complete").exists() and not (root / ".demo-partial").exists()
    assert len(find_clips(root, DEMO_GENRES)) == len(reference)  # the loader ignores the leftover too


def test_rerun_is_free_and_changed_arguments_rebuild(tmp_path, monkeypatch):
    root = make_demo_dataset(tmp_path / "demo", **{**SMALL, "clips_per_genre": 3})
    with monkeypatch.context() as m:
        m.setattr(demo, "synth_clip", lambda *a, **k: pytest.fail("a finished set was generated again"))
        assert make_demo_dataset(root, **{**SMALL, "clips_per_genre": 3}) == root
    make_demo_dataset(root, **SMALL, seed=5)  # fewer clips, another seed: stale clips go, the rest is redone
    assert clip_files(root) == clip_files(make_demo_dataset(tmp_path / "fresh", **SMALL, seed=5))
