"""Non-music recordings from what Debian's packages install, for a model's open-set detector (`--data.negatives`).

    python -m genre_cnn.data.nonmusic        # each set: its files and minutes, or the apt-get line that brings it
    python train.py --config configs/ready.yaml          # --data.negatives genre_cnn.data.nonmusic.NonMusic

`NonMusic` is a dataset kind (genre_cnn.data.sources.Source) whose "genres" are its sets; the feature store caches
their features as it caches music clips. Sets (`SETS`; `--data.negatives.sets` picks some):
  espeak    synthesised speech: espeak-ng reads passages of the GPL (base-files) in 12 voices, 60 files
  flite     synthesised speech: flite, 5 voices, 40 files
  effects   games' sound effects: frozen-bubble-data, chromium-bsu-data, extremetuxracer-data, lincity-ng-data,
            pingus-data (their music left out), at most 120 files
  themes    desktop sound themes: sound-theme-freedesktop, oxygen-sounds
  noise     white, pink and brown noise, tones, sweeps, click trains and hum, made with numpy (seed 0), 40 files
Made files (speech, noise) go to `data_dir` (default `<home>/data/nonmusic`), written whole or not at all; installed
files are read where the packages put them. A set whose package is absent is refused in one line that names the
`apt-get install` command; the same packages give the same files, so the same set of recordings, on every machine.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genre_cnn.data.layout import Clip, DataError
from genre_cnn.data.sources import Source

TEXT = Path("/usr/share/common-licenses/GPL-3")  # base-files: the words the synthesisers read
AUDIO = (".wav", ".ogg", ".oga", ".flac")


@dataclass(frozen=True)
class Recordings:
    """One set: installed files (package -> globs below /), or files made by `maker`; at most `cap` of them."""

    title: str
    packages: dict[str, tuple[str, ...]]  # Debian package -> the globs of its files (or of its program, for a maker)
    cap: int = 10_000
    exclude: tuple[str, ...] = ()  # substrings of paths left out
    maker: str = ""


SETS = {
    "espeak": Recordings("synthesised speech, espeak-ng", {"espeak-ng": ("usr/bin/espeak-ng",)}, 60, maker="espeak"),
    "flite": Recordings("synthesised speech, flite", {"flite": ("usr/bin/flite",)}, 40, maker="flite"),
    "effects": Recordings("game sound effects", {
        "frozen-bubble-data": ("usr/share/games/frozen-bubble/snd/*",),
        "chromium-bsu-data": ("usr/share/games/chromium-bsu/wav/*",),
        "extremetuxracer-data": ("usr/share/games/etr/sounds/*",),
        "lincity-ng-data": ("usr/share/games/lincity-ng/sounds/*",),
        "pingus-data": ("usr/share/games/pingus/data/sounds/*",)}, 120, exclude=("zik", "music_")),
    "themes": Recordings("desktop sound themes", {"sound-theme-freedesktop": ("usr/share/sounds/freedesktop/stereo/*",),
                                                  "oxygen-sounds": ("usr/share/sounds/Oxygen-*",)}),
    "noise": Recordings("generated noise, tones, sweeps, clicks, hum", {}, 40, maker="noise"),
}


def found(globs: tuple[str, ...], root: Path = Path("/")) -> list[Path]:
    """The files the globs match below `root`."""
    return [p for g in globs for p in root.glob(g) if p.is_file()]


def missing(name: str, root: Path = Path("/")) -> list[str]:
    """The Debian packages set `name` needs that are not installed (none of their files is there)."""
    absent = [pkg for pkg, globs in SETS[name].packages.items() if not found(globs, root)]
    if SETS[name].maker in ("espeak", "flite") and not TEXT.is_file():
        absent.append("base-files")
    return absent


def thin(files: list[Path], cap: int) -> list[Path]:
    """At most `cap` of the sorted `files`: every k-th (deterministic)."""
    files = sorted(set(files))
    step = max(1, -(-len(files) // cap))
    return files[::step][:cap]


def sentences(n: int) -> list[str]:
    """`n` passages of about three sentences from TEXT."""
    words = " ".join(TEXT.read_text().split())
    parts = [s.strip() for s in words.split(". ") if len(s.split()) >= 6]
    return [". ".join(parts[(3 * i) % len(parts): (3 * i) % len(parts) + 3]) + "." for i in range(n)]


def _made(path: Path, make) -> Path:
    """`path`, made by `make(temporary path)` unless it is there; renamed into place once whole."""
    if not path.is_file():
        partial = path.with_name(f".{path.stem}.{os.getpid()}.partial{path.suffix}")
        make(partial)
        os.replace(partial, path)
    return path


def make_espeak(dest: Path, n: int) -> list[Path]:
    voices = ["en", "en-us", "en-gb-scotland", "de", "fr-fr", "es", "it", "nl", "pl", "pt", "ru", "sv"]
    return [_made(dest / f"espeak_{i:03d}.wav", lambda p, i=i, text=text: subprocess.run(
        ["espeak-ng", "-v", voices[i % len(voices)] + ("+f3" if i % 3 == 1 else ""), "-s", str(130 + 10 * (i % 7)),
         "-p", str(30 + 7 * (i % 6)), "-w", str(p), text], check=True, capture_output=True))
        for i, text in enumerate(sentences(n))]


def make_flite(dest: Path, n: int) -> list[Path]:
    voices = ["kal", "kal16", "awb", "rms", "slt"]
    return [_made(dest / f"flite_{i:03d}.wav", lambda p, i=i, text=text: subprocess.run(
        ["flite", "-voice", voices[i % len(voices)], "-t", text, "-o", str(p)], check=True, capture_output=True))
        for i, text in enumerate(sentences(n + 7)[7:])]


def noise(i: int, rng: np.random.Generator, rate: int = 16000) -> np.ndarray:
    """The i-th generated signal, 2-8 s at `rate`, peak 0.5: white, pink, brown noise (1 / f^(k/2) amplitude), a
    tone, a sweep, a click train or mains hum, by i % 7."""
    seconds = 2 + 6 * rng.random()
    t = np.arange(int(seconds * rate)) / rate
    kind = i % 7
    if kind < 3:
        spec = np.fft.rfft(rng.standard_normal(t.size))
        f = np.maximum(np.fft.rfftfreq(t.size, 1 / rate), 20.0)
        y = np.fft.irfft(spec / f ** (kind / 2), t.size)
    elif kind == 3:
        y = np.sin(2 * np.pi * rng.uniform(60, 4000) * t)
    elif kind == 4:
        f0, f1 = rng.uniform(50, 500), rng.uniform(1000, 7000)
        y = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t ** 2 / (2 * seconds)))
    elif kind == 5:
        y = np.zeros(t.size)
        y[:: int(rate / rng.uniform(1, 20))] = 1.0
    else:
        y = np.sin(2 * np.pi * 50 * t) + 0.3 * np.sin(2 * np.pi * 150 * t) + 0.05 * rng.standard_normal(t.size)
    return (0.5 * y / max(np.abs(y).max(), 1e-9)).astype(np.float32)


def make_noise(dest: Path, n: int, rate: int = 16000) -> list[Path]:
    import soundfile as sf

    rng = np.random.default_rng(0)
    signals = [noise(i, rng, rate) for i in range(n)]  # every draw, so file i is the same whichever exist
    return [_made(dest / f"noise_{i:03d}.wav", lambda p, y=y: sf.write(p, y, rate)) for i, y in enumerate(signals)]


MAKERS = {"espeak": make_espeak, "flite": make_flite, "noise": make_noise}


def recordings(name: str, made: Path, root: Path = Path("/")) -> list[Path]:
    """The audio files of set `name` (made under `made` where it has a maker); DataError naming the apt-get
    command if a package it needs is absent."""
    spec = SETS[name]
    if absent := missing(name, root):
        raise DataError(f"the non-music set {name!r} ({spec.title}) needs Debian packages: "
                        f"apt-get install {' '.join(absent)}")
    if spec.maker:
        (made / name).mkdir(parents=True, exist_ok=True)
        return MAKERS[spec.maker](made / name, spec.cap)
    listed = [p for globs in spec.packages.values() for p in found(globs, root)
              if p.suffix.lower() in AUDIO and not any(x in str(p) for x in spec.exclude)]
    return thin(listed, spec.cap)


class NonMusic(Source):
    """Args:
    sets: which sets of `SETS` (default: all five).
    data_dir: where made recordings go (default: `<home>/data/nonmusic`).
    """

    name = "nonmusic"

    def __init__(self, sets: list[str] | None = None, data_dir: str | None = None):
        from genre_cnn.paths import home, resolve

        self.sets = list(SETS) if sets is None else list(sets)
        unknown = [s for s in self.sets if s not in SETS]
        if unknown or len(set(self.sets)) < 2:
            raise DataError(f"--data.negatives.sets: at least two of {', '.join(SETS)}, got {self.sets}")
        super().__init__(resolve(data_dir) if data_dir else home() / "data" / "nonmusic")
        self._clips: list[Clip] | None = None

    def ensure(self) -> None:
        self.clips()

    def genres(self) -> list[str]:
        return list(self.sets)

    def clips(self) -> list[Clip]:
        if self._clips is None:
            clips = []
            for name in self.sets:
                for path in recordings(name, self.data_dir):
                    inside = path.relative_to(self.data_dir / name) if SETS[name].maker else path.relative_to("/")
                    clips.append(Clip(path, name, str(inside)))
            self._clips = sorted(clips, key=lambda c: c.key)
        return self._clips

    def describe(self) -> str:
        return f"non-music ({', '.join(self.sets)})"


def main() -> None:
    import soundfile as sf

    for name, spec in SETS.items():
        try:
            files = recordings(name, NonMusic().data_dir)
        except DataError as err:
            print(f"{name}: {err}")
            continue
        seconds = [sf.info(f).duration for f in files]
        print(f"{name} ({spec.title}; {', '.join(spec.packages) or 'numpy'}): {len(files)} files, "
              f"{sum(seconds) / 60:.1f} min, median {np.median(seconds):.1f} s")


if __name__ == "__main__":
    main()
