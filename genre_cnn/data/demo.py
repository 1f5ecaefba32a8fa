"""A deterministic generator of short synthetic music clips in four clearly distinguishable "genres".

    python -m genre_cnn.data.demo OUT_DIR [--clips-per-genre 12] [--seconds 8] [--sample-rate HZ] [--seed 0]

writes `OUT_DIR/<genre>/<genre>.NNNNN.wav` (16-bit PCM, mono), the same bytes for the same arguments. The
demo config trains the model families on it end to end, with no download. The genres differ in
tempo, timbre and noise in every 3-s window:

- ambient: slow sustained sine pads (a triad on a 110-220 Hz root, three harmonics, slow swell);
- techno: a kick drum at 120-135 BPM, hi-hat noise bursts on the off-beats and a short bass note;
- noise: coloured, band-limited noise with random bursts, no pitch;
- chiptune: fast pulse-wave arpeggios (8-16 notes/s) between about 330 Hz and 3.5 kHz.
"""

from __future__ import annotations

import argparse
import json
import re
from functools import partial
from pathlib import Path

import numpy as np
import soundfile as sf

from genre_cnn.paths import atomic_write, atomic_write_text

DEMO_GENRES: tuple[str, ...] = ("ambient", "techno", "noise", "chiptune")


def _hz(midi: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(midi, dtype=np.float64) - 69.0) / 12.0)


def _place(out: np.ndarray, shot: np.ndarray, start: int) -> None:
    """Adds a one-shot sound into `out` at sample `start`, cut at the end of `out`."""
    n = min(len(shot), len(out) - start)
    if n > 0:
        out[start:start + n] += shot[:n]


def _ambient(t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    root = rng.integers(45, 58)  # A2..A3: 110-220 Hz
    chord = root + np.array([0, 7, 12, 15 + rng.integers(0, 2)])  # open minor/major chord, no close intervals
    y = np.zeros_like(t)
    for f in _hz(chord):
        for k, amp in ((1, 1.0), (2, 0.3), (3, 0.1)):  # few low harmonics; two detuned voices beat slowly
            for detune in (-0.15, 0.15):
                y += amp * np.sin(2 * np.pi * (k * f + detune) * t + rng.uniform(0, 2 * np.pi))
    swell = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(0.08, 0.25) * t + rng.uniform(0, 2 * np.pi))
    return y * swell


def _techno(t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    beat = 60.0 / rng.uniform(120, 135)  # seconds per beat
    tk = np.arange(int(beat * sr)) / sr
    kick = np.sin(2 * np.pi * (50 * tk + 100 * 0.03 * (1 - np.exp(-tk / 0.03)))) * np.exp(-tk / 0.2)
    th = np.arange(int(0.08 * sr)) / sr
    hat = np.diff(rng.standard_normal(len(th) + 1)) * np.exp(-th / rng.uniform(0.02, 0.04))  # high-passed
    tb = np.arange(int(beat / 2 * sr)) / sr
    bass_hz = _hz(rng.integers(33, 45))  # 55-104 Hz
    bass = np.tanh(3 * np.sin(2 * np.pi * bass_hz * tb)) * np.exp(-tb / 0.12)
    y = np.zeros_like(t)
    offset = rng.uniform(0, beat)
    for start in np.arange(offset - beat, t[-1], beat):
        s = int(round(start * sr))
        for shot, at in ((kick, 0.0), (0.25 * hat, 0.5), (0.5 * bass, 0.5), (0.12 * hat, 0.75)):
            i = s + int(round(at * beat * sr))
            if i < 0:
                shot, i = shot[-i:], 0
            _place(y, shot, i)
    return y


def _noise(t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    spec = np.fft.rfft(rng.standard_normal(len(t)))
    f = np.fft.rfftfreq(len(t), 1 / sr)
    centre = np.exp(rng.uniform(np.log(1000), np.log(5000)))  # band centre, Hz
    band = np.exp(-0.5 * (np.log2(np.maximum(f, 1.0) / centre) / rng.uniform(1.0, 2.0)) ** 2)
    y = np.fft.irfft(spec * band * np.maximum(f, 20.0) ** (-rng.uniform(0, 0.5)), n=len(t))
    env = np.full_like(t, 0.3)
    for start in rng.uniform(-0.5, t[-1], rng.poisson(2.5 * t[-1]) + 1):  # random bursts, ~2.5 per second
        gain, tau = rng.uniform(0.3, 1.0), rng.uniform(0.05, 0.4)  # seconds
        near = slice(max(0, int((start - 8 * tau) * sr)), max(0, int((start + 8 * tau) * sr)))
        env[near] += gain * np.exp(-np.abs(t[near] - start) / tau)
    return y * env


def _chiptune(t: np.ndarray, sr: int, rng: np.random.Generator) -> np.ndarray:
    note = 1.0 / rng.uniform(8, 16)  # seconds per note
    shape = np.array([0, 3 + rng.integers(0, 2), 7, 12, 16 if rng.random() < 0.5 else 15, 19])
    order = np.concatenate([shape, shape[-2:0:-1]]) if rng.random() < 0.5 else shape
    roots = rng.integers(67, 80) + np.array([0, 5, 7, -3])[rng.permutation(4)]  # G4..G5, a new root every 2 s
    duty = rng.choice([0.125, 0.25, 0.5])
    idx = (t // note).astype(int)
    midi = roots[(t // 2.0).astype(int) % len(roots)] + order[idx % len(order)]
    phase = np.cumsum(_hz(midi)) / sr
    gate = (t % note) < 0.8 * note  # notes are 80 % on, 20 % off
    return np.where((phase % 1.0) < duty, 1.0, -1.0) * gate


_SYNTHS = {"ambient": _ambient, "techno": _techno, "noise": _noise, "chiptune": _chiptune}


def synth_clip(genre: str, seconds: float, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One clip of `genre`, `seconds` long at `sample_rate` Hz: float32 mono, peak -20..-6 dBFS."""
    if genre not in _SYNTHS:
        raise ValueError(f"unknown demo genre {genre!r}; choose from {DEMO_GENRES}")
    t = np.arange(int(round(seconds * sample_rate))) / sample_rate
    y = _SYNTHS[genre](t, sample_rate, rng)
    fade = np.minimum(1.0, np.minimum(t, t[-1] - t) / 0.01)  # 10-ms fades: no click at either end
    y = y * fade
    peak = 10.0 ** (rng.uniform(-20.0, -6.0) / 20.0)
    return (y * (peak / max(float(np.max(np.abs(y))), 1e-12))).astype(np.float32)


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def make_demo_dataset(root: Path, clips_per_genre: int = 12, seconds: float = 8.0, sample_rate: int | None = None,
                      seed: int = 0) -> Path:
    """Writes `root/<genre>/<genre>.NNNNN.wav` for every demo genre (`seconds` s at `sample_rate` Hz).

    Deterministic, idempotent and crash-safe: a rerun after a crash keeps the finished clips and writes the
    rest; `root/.demo-complete` records the arguments of a finished set, which is then returned at once.
    """
    if sample_rate is None:  # the front end's
        from genre_cnn.audio.frontend import FrontEndConfig

        sample_rate = FrontEndConfig().sample_rate
    root = Path(root)
    args = {"clips_per_genre": clips_per_genre, "seconds": float(seconds), "sample_rate": sample_rate,
            "seed": seed, "genres": list(DEMO_GENRES)}
    done, started = root / ".demo-complete", root / ".demo-partial"
    if _read_json(done) == args:
        return root
    root.mkdir(parents=True, exist_ok=True)
    resume = _read_json(started) == args  # existing clips are kept only if they came from these arguments
    done.unlink(missing_ok=True)
    atomic_write_text(started, json.dumps(args))
    for g, genre in enumerate(DEMO_GENRES):
        folder = root / genre
        folder.mkdir(exist_ok=True)
        for old in folder.glob(f"{genre}.*.wav"):  # clips of an earlier, larger set
            m = re.fullmatch(rf"{genre}\.(\d{{5}})\.wav", old.name)
            if m and int(m.group(1)) >= clips_per_genre:
                old.unlink()
        for i in range(clips_per_genre):
            path = folder / f"{genre}.{i:05d}.wav"
            if resume and path.exists():
                continue
            y = synth_clip(genre, seconds, sample_rate, np.random.default_rng([seed, g, i]))
            atomic_write(path, partial(sf.write, data=y, samplerate=sample_rate, subtype="PCM_16", format="WAV"))
    atomic_write_text(done, json.dumps(args))
    started.unlink(missing_ok=True)
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Write the synthetic demo data set.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--clips-per-genre", type=int, default=12)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--sample-rate", type=int, default=None, help="Hz (default: the front end's)")
    parser.add_argument("--seed", type=int, default=0)
    a = parser.parse_args()
    print(make_demo_dataset(a.out_dir, a.clips_per_genre, a.seconds, a.sample_rate, a.seed))
