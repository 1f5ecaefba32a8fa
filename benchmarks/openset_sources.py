"""The non-music and unfamiliar-music recordings of benchmarks/openset.py, assembled from installed Debian packages.

    .venv/bin/python benchmarks/openset_sources.py      # each set: packages, files, total duration; what is missing

Nothing here is shipped or committed: every set is listed (or, for speech synthesis, tracker music and noise, made)
at run time from what the packages installed, under `--work`. Missing packages are named with the `apt-get install`
line that brings them. Sets, decided before any was measured; "tune" sets may be used to fit and choose, "test"
sets only to measure (a source of another kind: recorded, where the tune sets are synthesised or game effects):

tune, not music   synthesised speech (espeak-ng, flite), game sound effects (frozen-bubble-data, chromium-bsu-data,
                  extremetuxracer-data, lincity-ng-data, pingus-data), desktop sound themes (sound-theme-freedesktop,
                  oxygen-sounds), generated noise, tones, sweeps and clicks (numpy)
test, not music   recorded speech: telephone prompts (asterisk-core-sounds-en-wav, asterisk-prompt-it-menardi-wav),
                  a game's voice acting (fillets-ng-data-nl), words, letters and spoken descriptions in many languages
                  (ktuberling-data, klettres-data, tuxpaint-stamps-default), alsa-utils' voice samples;
                  nature and field recordings: animal sounds and everyday sounds (vehicles, tools, weather) of
                  tuxpaint-stamps-default (its instrument stamps and spoken symbols left out)
test, unfamiliar  music outside the ten genres: games' music (extremetuxracer-data, lincity-ng-data, chromium-bsu-data,
                  frozen-bubble-data), tracker modules (heroes-sound-tracks, pingus-data; rendered by ffmpeg's
                  libopenmpt), music on hold (asterisk-moh-opsound-wav)
A set larger than its cap is thinned to every k-th file in sorted order (deterministic).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TEXT = Path("/usr/share/common-licenses/GPL-3")  # base-files: always there; the words the synthesisers read
AUDIO = (".wav", ".ogg", ".oga", ".flac")


@dataclass(frozen=True)
class Source:
    name: str
    role: str  # "tune" or "test"
    kind: str  # "not music" or "unfamiliar music"
    packages: tuple[str, ...]
    globs: tuple[str, ...] = ()  # installed files; or a maker (below) by name
    cap: int = 10_000
    exclude: tuple[str, ...] = ()  # substrings of paths left out
    maker: str = ""


SOURCES = (
    Source("synthesised speech, espeak-ng", "tune", "not music", ("espeak-ng",), cap=60, maker="espeak"),
    Source("synthesised speech, flite", "tune", "not music", ("flite",), cap=40, maker="flite"),
    Source("game sound effects", "tune", "not music",
           ("frozen-bubble-data", "chromium-bsu-data", "extremetuxracer-data", "lincity-ng-data", "pingus-data"),
           ("/usr/share/games/frozen-bubble/snd/*", "/usr/share/games/chromium-bsu/wav/*",
            "/usr/share/games/etr/sounds/*", "/usr/share/games/lincity-ng/sounds/*",
            "/usr/share/games/pingus/data/sounds/*"), cap=120, exclude=("zik", "music_")),
    Source("desktop sound themes", "tune", "not music", ("sound-theme-freedesktop", "oxygen-sounds"),
           ("/usr/share/sounds/freedesktop/stereo/*", "/usr/share/sounds/Oxygen-*")),
    Source("generated noise, tones, sweeps, clicks", "tune", "not music", (), cap=40, maker="noise"),
    Source("recorded speech: telephone prompts, English and Italian", "test", "not music",
           ("asterisk-core-sounds-en-wav", "asterisk-prompt-it-menardi-wav"),
           ("/usr/share/asterisk/sounds/en_US_f_Allison/*.wav", "/usr/share/asterisk/sounds/it_IT_f_Menardi/*.wav"),
           cap=160),
    Source("recorded speech: a game's voice acting, Dutch", "test", "not music", ("fillets-ng-data-nl",),
           ("/usr/share/games/fillets-ng/sound/*/nl/*", "/usr/share/games/fillets-ng/sound/*/*/nl/*"), cap=120),
    Source("recorded speech: words, letters, descriptions, many languages", "test", "not music",
           ("ktuberling-data", "klettres-data", "tuxpaint-stamps-default", "alsa-utils"),
           ("/usr/share/ktuberling/sounds/*/*", "/usr/share/klettres/*/*/*", "/usr/share/tuxpaint/stamps/**/*_desc*",
            "/usr/share/sounds/alsa/*"), cap=200),
    Source("animal sounds", "test", "not music", ("tuxpaint-stamps-default",),
           ("/usr/share/tuxpaint/stamps/animals/**/*",), cap=200, exclude=("_desc",)),
    Source("everyday sounds: vehicles, tools, weather", "test", "not music", ("tuxpaint-stamps-default",),
           ("/usr/share/tuxpaint/stamps/**/*",), cap=200,
           exclude=("_desc", "/animals/", "/symbols/", "/hobbies/music")),
    Source("game music", "test", "unfamiliar music",
           ("extremetuxracer-data", "lincity-ng-data", "chromium-bsu-data", "frozen-bubble-data"),
           ("/usr/share/games/etr/music/*", "/usr/share/games/lincity-ng/music/default/*",
            "/usr/share/games/chromium-bsu/wav/music_*", "/usr/share/games/frozen-bubble/snd/*zik*")),
    Source("tracker modules (chiptune)", "test", "unfamiliar music", ("heroes-sound-tracks", "pingus-data"),
           ("/usr/share/games/heroes/mod/*.xm", "/usr/share/games/pingus/data/music/*.it"), maker="tracker"),
    Source("music on hold", "test", "unfamiliar music", ("asterisk-moh-opsound-wav",), ("/usr/share/asterisk/moh/*",)),
)


def installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and "install ok installed" in out.stdout


def missing(source: Source) -> list[str]:
    return [p for p in source.packages if not installed(p)]


def thin(files: list[Path], cap: int) -> list[Path]:
    """At most `cap` of the sorted `files`: every k-th."""
    files = sorted(set(files))
    step = max(1, -(-len(files) // cap))
    return files[::step][:cap]


def sentences(n: int) -> list[str]:
    """`n` passages of about three sentences from TEXT."""
    words = " ".join(TEXT.read_text().split())
    parts = [s.strip() for s in words.split(". ") if len(s.split()) >= 6]
    return [". ".join(parts[(3 * i) % len(parts): (3 * i) % len(parts) + 3]) + "." for i in range(n)]


def make_espeak(dest: Path, n: int) -> list[Path]:
    voices = ["en", "en-us", "en-gb-scotland", "de", "fr-fr", "es", "it", "nl", "pl", "pt", "ru", "sv"]
    out = []
    for i, text in enumerate(sentences(n)):
        path = dest / f"espeak_{i:03d}.wav"
        if not path.is_file():
            cmd = ["espeak-ng", "-v", voices[i % len(voices)] + ("+f3" if i % 3 == 1 else ""),
                   "-s", str(130 + 10 * (i % 7)), "-p", str(30 + 7 * (i % 6)), "-w", str(path), text]
            subprocess.run(cmd, check=True, capture_output=True)
        out.append(path)
    return out


def make_flite(dest: Path, n: int) -> list[Path]:
    voices = ["kal", "kal16", "awb", "rms", "slt"]
    out = []
    for i, text in enumerate(sentences(n + 7)[7:]):
        path = dest / f"flite_{i:03d}.wav"
        if not path.is_file():
            subprocess.run(["flite", "-voice", voices[i % len(voices)], "-t", text, "-o", str(path)], check=True,
                           capture_output=True)
        out.append(path)
    return out


def make_noise(dest: Path, n: int, rate: int = 16000) -> list[Path]:
    """White, pink and brown noise, steady tones, sweeps, click trains and hum, 2-8 s each (seed 0)."""
    import soundfile as sf

    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        path = dest / f"noise_{i:03d}.wav"
        seconds = 2 + 6 * rng.random()
        t = np.arange(int(seconds * rate)) / rate
        kind = i % 7
        if kind < 3:  # white, pink, brown: white noise shaped by 1 / f^(kind)
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
        y = 0.5 * y / max(np.abs(y).max(), 1e-9)
        sf.write(path, y.astype(np.float32), rate)
        out.append(path)
    return out


def make_tracker(dest: Path, modules: list[Path], seconds: int = 60) -> list[Path]:
    """Tracker modules rendered to WAV by ffmpeg (libopenmpt), their first `seconds`."""
    out = []
    for mod in modules:
        path = dest / f"{mod.stem}.wav"
        if not path.is_file():
            subprocess.run(["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(mod), "-t", str(seconds),
                            "-ac", "1", "-ar", "22050", str(path)], check=True)
        out.append(path)
    return out


def files(source: Source, work: Path) -> list[Path]:
    """The audio files of `source` (made under `work` where it has a maker); [] when a package is missing."""
    if missing(source):
        return []
    listed = [Path(p) for g in source.globs for p in Path("/").glob(g.lstrip("/"))
              if Path(p).suffix.lower() in AUDIO + (".xm", ".it") and not any(x in str(p) for x in source.exclude)]
    dest = work / "audio" / source.name.split(",")[0].replace(" ", "_").replace(":", "")
    dest.mkdir(parents=True, exist_ok=True)
    if source.maker == "espeak":
        return make_espeak(dest, source.cap)
    if source.maker == "flite":
        return make_flite(dest, source.cap)
    if source.maker == "noise":
        return make_noise(dest, source.cap)
    if source.maker == "tracker":
        return make_tracker(dest, thin(listed, source.cap))
    return thin(listed, source.cap)


def main() -> None:
    import soundfile as sf

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/openset"), help="where made audio goes")
    args = parser.parse_args()
    for s in SOURCES:
        lacking = missing(s)
        if lacking:
            print(f"{s.role} | {s.kind} | {s.name}: missing, apt-get install {' '.join(lacking)}")
            continue
        fs = files(s, args.work)
        seconds = [sf.info(f).duration for f in fs]
        print(f"{s.role} | {s.kind} | {s.name} ({', '.join(s.packages) or 'numpy'}): {len(fs)} files, "
              f"{sum(seconds) / 60:.1f} min, median {np.median(seconds):.1f} s")


if __name__ == "__main__":
    main()
