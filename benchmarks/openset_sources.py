"""The non-music and unfamiliar-music recordings of benchmarks/openset.py, assembled from installed Debian packages.

    .venv/bin/python benchmarks/openset_sources.py   # each set: role, packages, files, duration; what is missing

Nothing here is shipped or committed: every set is listed (or, for speech synthesis, tracker music and noise, made)
at run time from what the packages installed. Sets, decided before any was measured; "tune" sets may be used to fit
and choose, "test" sets only to measure (sources of another kind: recorded, where the tune sets are synthesised or
game effects):

tune, not music   the sets the ready model's detector is fitted on, genre_cnn.data.nonmusic (`--data.negatives`):
                  synthesised speech (espeak-ng, flite), game sound effects, desktop sound themes, generated noise
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

from genre_cnn.data.nonmusic import AUDIO, SETS, NonMusic, recordings, thin  # noqa: E402


@dataclass(frozen=True)
class Source:
    name: str
    role: str  # "tune" or "test"
    kind: str  # "not music" or "unfamiliar music"
    packages: tuple[str, ...]
    globs: tuple[str, ...] = ()  # installed files
    cap: int = 10_000
    exclude: tuple[str, ...] = ()  # substrings of paths left out
    tracker: bool = False  # modules rendered to WAV


TEST = (
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
           ("/usr/share/games/heroes/mod/*.xm", "/usr/share/games/pingus/data/music/*.it"), tracker=True),
    Source("music on hold", "test", "unfamiliar music", ("asterisk-moh-opsound-wav",), ("/usr/share/asterisk/moh/*",)),
)


@dataclass(frozen=True)
class Set:
    """One set as measured: its name, role, kind, packages and audio files."""

    name: str
    role: str
    kind: str
    packages: tuple[str, ...]
    files: list[Path]


def installed(package: str) -> bool:
    out = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True)
    return out.returncode == 0 and "install ok installed" in out.stdout


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


def test_files(source: Source, work: Path) -> list[Path]:
    """The audio files of a test set (tracker modules rendered under `work`)."""
    listed = [Path(p) for g in source.globs for p in Path("/").glob(g.lstrip("/"))
              if Path(p).suffix.lower() in AUDIO + (".xm", ".it") and not any(x in str(p) for x in source.exclude)]
    if not source.tracker:
        return thin(listed, source.cap)
    dest = work / "audio" / "tracker"
    dest.mkdir(parents=True, exist_ok=True)
    return make_tracker(dest, thin(listed, source.cap))


def sets(work: Path) -> list[Set]:
    """Every set whose packages are installed, tune sets first (those of genre_cnn.data.nonmusic, made where the
    ready model's build makes them); a missing one is named with its apt-get line."""
    out = []
    for name, spec in SETS.items():
        try:
            out.append(Set(spec.title, "tune", "not music", tuple(spec.packages) or ("numpy",),
                           recordings(name, NonMusic().data_dir)))
        except Exception as err:  # noqa: BLE001 - DataError naming the packages
            print(f"skipped {spec.title}: {err}")
    for s in TEST:
        lacking = [p for p in s.packages if not installed(p)]
        if lacking:
            print(f"skipped {s.name}: apt-get install {' '.join(lacking)}")
            continue
        out.append(Set(s.name, s.role, s.kind, s.packages, test_files(s, work)))
    return out


def main() -> None:
    import soundfile as sf

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/openset"), help="where rendered audio goes")
    args = parser.parse_args()
    for s in sets(args.work):
        seconds = [sf.info(f).duration for f in s.files]
        print(f"{s.role} | {s.kind} | {s.name} ({', '.join(s.packages)}): {len(s.files)} files, "
              f"{sum(seconds) / 60:.1f} min, median {np.median(seconds):.1f} s")


if __name__ == "__main__":
    main()
