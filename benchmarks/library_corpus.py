"""A music library built from real recordings, tagged the way people tag: the material of benchmarks/personal.py.

    .venv/bin/python benchmarks/library_corpus.py --work /tmp/library      # builds it; prints what it holds

Nothing here is committed: the files are made at run time, under `--work`, from ../shared and from installed Debian
packages (missing ones are named with the `apt-get install` line that brings them), converted with ffmpeg into MP3
(ID3v2.3), FLAC, Ogg Vorbis and M4A in turn, and tagged with mutagen (genre, artist, album, title), in folders
`<artist>/<album>/<NN> <title>.<ext>`:
- the 190 GTZAN clips of ../shared (gtzan_mini, gtzan_unseen), their genres spelt in several ways (`Hip Hop`,
  `hip-hop`, `HipHop`...) and filed under a taxonomy of their own by `mapping.txt` (`Jazz` and `Blues` as one genre,
  `Heavy Metal` as Rock, `Disco` as Pop); artists and albums by clip-number blocks, as GTZAN files an artist's clips
  under neighbouring numbers (an artist per ten numbers, an album per five); four Country clips without a genre, six
  left with one (too few to learn); a few files with two genres; three files copied into a compilation (duplicates);
- Spoken Word: passages of the GPL read by espeak-ng (12 voices) and flite (5 voices), and telephone prompts recorded
  by two speakers (asterisk-core-sounds-en-wav, asterisk-prompt-it-menardi-wav), joined into 20-s tracks;
- Soundtrack: the music of five games (extremetuxracer-data, lincity-ng-data, chromium-bsu-data, frozen-bubble-data,
  neverball-data), whole tracks, by composer where the files say;
- Chiptune: tracker modules (heroes-sound-tracks, pingus-data) rendered by ffmpeg's libopenmpt; four of them without
  an artist tag, in a folder of their own;
- Lounge: five tracks of music on hold (asterisk-moh-opsound-wav), too few to learn.
"""

from __future__ import annotations

import argparse
import fnmatch
import glob
import json
import shutil
import subprocess
import sys
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
TEXT = Path("/usr/share/common-licenses/GPL-3")
CONTAINERS = ("mp3", "flac", "ogg", "m4a")
SPELLINGS = {"classical": ["Classical", "classical", "CLASSICAL"], "jazz": ["Jazz", "jazz"],
             "blues": ["Blues", "blues"], "rock": ["Rock", "rock"], "metal": ["Heavy Metal", "Metal"], "pop": ["Pop"],
             "disco": ["Disco"], "hiphop": ["Hip Hop", "Hip-Hop", "hiphop", "HipHop"], "reggae": ["Reggae"],
             "country": ["Country"]}
MAPPING = "Jazz: Jazz & Blues\nBlues: Jazz & Blues\nHeavy Metal: Rock\nMetal: Rock\nDisco: Pop\n" \
          "Game Soundtrack: Soundtrack\n"
GAMES = {  # glob -> artist ("" : the game's name), album
    "/usr/share/games/etr/music/*-ks.ogg": ("Kristian Setala", "Extreme Tux Racer"),
    "/usr/share/games/etr/music/*-jt.ogg": ("Joseph Toscano", "Extreme Tux Racer"),
    "/usr/share/games/etr/music/*-cp.ogg": ("Christian Picon", "Extreme Tux Racer"),
    "/usr/share/games/etr/music/freezingpoint.ogg": ("Extreme Tux Racer", "Extreme Tux Racer"),
    "/usr/share/games/lincity-ng/music/default/*pronobozo*.ogg": ("pronobozo", "LinCity-NG"),
    "/usr/share/games/lincity-ng/music/default/*Herk*.ogg": ("Robert van Herk", "LinCity-NG"),
    "/usr/share/games/chromium-bsu/wav/music_*.wav": ("Chromium B.S.U.", "Chromium B.S.U."),
    "/usr/share/games/frozen-bubble/snd/*zik*.ogg": ("Frozen-Bubble", "Frozen-Bubble"),
    "/usr/share/games/neverball/bgm/*.ogg": ("Neverball", "Neverball"),
}
MODULES = {"/usr/share/games/heroes/mod/*.xm": "Heroes", "/usr/share/games/pingus/data/music/gd-*": "gd",
           "/usr/share/games/pingus/data/music/pingus-*.it": "Pingus",
           "/usr/share/games/pingus/data/music/success_*.it": "Pingus"}
PACKAGES = ("espeak-ng", "flite", "asterisk-core-sounds-en-wav", "asterisk-prompt-it-menardi-wav",
            "extremetuxracer-data", "lincity-ng-data", "chromium-bsu-data", "frozen-bubble-data", "neverball-data",
            "heroes-sound-tracks", "pingus-data", "asterisk-moh-opsound-wav")


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def tag(path: Path, genres: list[str], artist: str | None, album: str, title: str) -> None:
    """Writes the tags with mutagen: ID3v2.3 for MP3, Vorbis comments, MP4 atoms; no genre when `genres` is []."""
    from mutagen import File
    from mutagen.id3 import ID3, TALB, TCON, TIT2, TPE1

    if path.suffix == ".mp3":
        tags = ID3()
        frames = [TIT2(encoding=1, text=title), TALB(encoding=1, text=album)]
        frames += [TPE1(encoding=1, text=artist)] if artist else []
        frames += [TCON(encoding=1, text=genres)] if genres else []
        for frame in frames:
            tags.add(frame)
        tags.save(path, v2_version=3)
        return
    audio = File(path)
    keys = {"title": "\xa9nam", "album": "\xa9alb", "artist": "\xa9ART", "genre": "\xa9gen"} if path.suffix == ".m4a" \
        else {k: k for k in ("title", "album", "artist", "genre")}
    audio[keys["title"]], audio[keys["album"]] = [title], [album]
    if artist:
        audio[keys["artist"]] = [artist]
    if genres:
        audio[keys["genre"]] = list(genres)
    audio.save()


class Builder:
    """Adds tracks to the library at `root`, cycling through the containers, and keeps a manifest."""

    def __init__(self, root: Path):
        self.root, self.count, self.manifest = root, 0, []

    def add(self, source: Path, genres: list[str], artist: str | None, album: str, title: str, truth: str,
            folder: str | None = None) -> Path:
        ext = CONTAINERS[self.count % len(CONTAINERS)]
        self.count += 1
        where = self.root / (folder or f"{artist}/{album}")
        where.mkdir(parents=True, exist_ok=True)
        path = where / f"{len(list(where.iterdir())) + 1:02d} {title.replace('/', '-')}.{ext}"
        codec = {"mp3": ["-c:a", "libmp3lame", "-q:a", "4"], "flac": ["-c:a", "flac"], "ogg": ["-c:a", "libvorbis"],
                 "m4a": ["-c:a", "aac", "-b:a", "160k"]}[ext]
        ffmpeg("-i", str(source), "-vn", "-map_metadata", "-1", *codec, str(path))
        tag(path, genres, artist, album, title)
        self.manifest.append({"file": str(path.relative_to(self.root)), "truth": truth, "artist": artist or ""})
        return path


def gtzan(b: Builder) -> None:
    clips = sorted(glob.glob(str(SHARED / "gtzan_*" / "genres" / "*" / "*.*")))
    if len(clips) < 190:
        sys.exit(f"needs ../shared/gtzan_mini and gtzan_unseen beside the checkout ({SHARED}): {len(clips)} clips "
                 "found")
    for clip in map(Path, clips):
        genre, n = clip.parent.name, int(clip.name.split(".")[1])
        artist, album = f"{genre.title()} Artist {n // 10:02d}", f"{genre.title()} Album {n // 5:02d}"
        spelt = SPELLINGS[genre][n % len(SPELLINGS[genre])]
        genres = [spelt]
        if genre == "country" and n >= 6:
            genres = []  # untagged
        elif genre == "rock" and n % 10 == 3:
            genres = [spelt, "Pop"]  # two values
        elif genre == "blues" and n % 10 == 5:
            genres = [f"{spelt}, Rock"]  # one value, two genres
        path = b.add(clip, genres, artist, album, clip.stem, genre)
        if genre in ("classical", "jazz", "rock") and n in (1, 71):  # the same recording on a compilation
            copy = b.root / "Various Artists" / "Best Of" / f"{n:02d} {clip.stem}{path.suffix}"
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, copy)
            tag(copy, genres, artist, "Best Of", clip.stem)


def speech(b: Builder, work: Path) -> None:
    words = " ".join(TEXT.read_text().split())
    parts = [s.strip() for s in words.split(". ") if len(s.split()) >= 6]
    voices = [("espeak-ng", v) for v in ("en", "en-us", "en-gb-scotland", "de", "fr-fr", "es", "it", "nl", "pl", "pt",
                                         "ru", "sv")] + [("flite", v) for v in ("kal", "kal16", "awb", "rms", "slt")]
    raw = work / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for i in range(90):
        tool, voice = voices[i % len(voices)]
        text = ". ".join(parts[(3 * i) % len(parts):(3 * i) % len(parts) + 3]) + "."
        wav = raw / f"speech_{i:03d}.wav"
        if tool == "espeak-ng":
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(140 + 10 * (i % 5)), "-w", str(wav), text], check=True)
        else:
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", str(wav)], check=True)
        b.add(wav, [["Spoken Word", "spoken word", "Spoken-Word"][i % 3]], f"{tool} {voice}", "Readings",
              f"Passage {i + 1}", "speech")
    for name, pattern in (("Allison", "/usr/share/asterisk/sounds/en_US_f_Allison/*.wav"),
                          ("Menardi", "/usr/share/asterisk/sounds/it_IT_f_Menardi/*.wav")):
        prompts = sorted(glob.glob(pattern))
        for i in range(10):  # a track: prompts joined up to about 20 s
            listed = raw / f"{name}_{i}.txt"
            listed.write_text("".join(f"file '{p}'\n" for p in prompts[i * 12:(i + 1) * 12]))
            wav = raw / f"{name}_{i}.wav"
            ffmpeg("-f", "concat", "-safe", "0", "-i", str(listed), "-ar", "16000", "-ac", "1", str(wav))
            b.add(wav, ["Spoken Word"], name, "Telephone Prompts", f"Prompts {i + 1}", "speech")


def games(b: Builder, work: Path) -> None:
    for pattern, (artist, album) in GAMES.items():
        for i, path in enumerate(sorted(glob.glob(pattern))):
            b.add(Path(path), [["Soundtrack", "Game Soundtrack"][i % 2]], artist, album, Path(path).stem, "soundtrack")
    raw = work / "raw"
    rendered = {}
    modules = glob.glob("/usr/share/games/heroes/mod/*.xm") + glob.glob("/usr/share/games/pingus/data/music/*")
    for path in sorted(modules):
        wav = raw / f"{Path(path).name}.wav"
        ffmpeg("-i", path, "-t", "240", str(wav))  # libopenmpt; a module that loops is cut at 4 min
        rendered[path] = wav
    for path, wav in rendered.items():
        artist = next((a for pattern, a in MODULES.items() if fnmatch.fnmatch(path, pattern)), None)
        b.add(wav, [["Chiptune", "chip tune"][len(b.manifest) % 2]], artist, "Modules", Path(path).stem,
              "chiptune", folder=None if artist else "Pingus extras")
    for path in sorted(glob.glob("/usr/share/asterisk/moh/*.wav")):
        b.add(Path(path), ["Lounge"], Path(path).stem.split("-")[0], "Music on Hold", Path(path).stem, "lounge")


def missing_packages() -> list[str]:
    def installed(package: str) -> bool:
        out = subprocess.run(["dpkg-query", "-W", "-f", "${Status}", package], capture_output=True, text=True)
        return "install ok installed" in out.stdout

    return [p for p in PACKAGES if not installed(p)]


def build(work: Path) -> Path:
    """Builds the library under `work/library` (once: an existing one is kept) and `work/mapping.txt`; returns the
    library's folder."""
    root = work / "library"
    if (work / "manifest.json").is_file():
        return root
    if missing := missing_packages():
        sys.exit(f"missing packages: apt-get install {' '.join(missing)}")
    shutil.rmtree(root, ignore_errors=True)
    b = Builder(root)
    gtzan(b)
    speech(b, work)
    games(b, work)
    (work / "mapping.txt").write_text(MAPPING)
    shutil.rmtree(work / "raw", ignore_errors=True)
    (work / "manifest.json").write_text(json.dumps(b.manifest, indent=1))
    return root


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/genre_cnn_library"))
    work = parser.parse_args().work
    root = build(work)
    manifest = json.loads((work / "manifest.json").read_text())
    from collections import Counter

    print(f"{root}: {len(manifest)} files (+ compilation copies)", dict(Counter(m["truth"] for m in manifest)))
