"""Real audio files in every tagged format, made with ffmpeg from a gtzan_mini clip (helpers for the tag tests).

    from audio_formats import FORMATS, make_formats, decoded_md5, needs_ffmpeg
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
CLIP = SHARED / "gtzan_mini" / "genres" / "jazz" / "jazz.00001.wav"
FORMATS = ("mp3", "flac", "ogg", "opus", "m4a", "wav", "aiff", "wma", "wv")  # wv: WavPack, APEv2 tags
COVER = ("mp3", "flac", "m4a")  # the formats ffmpeg embeds a cover picture into

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None,
                                  reason="ffmpeg not installed (apt-get install ffmpeg): it makes the mp3, flac, ogg, "
                                         "opus and m4a files of these tests")
needs_clip = pytest.mark.skipif(not CLIP.is_file(),
                                reason=f"real GTZAN clip not found at {CLIP} (../shared/gtzan_mini)")


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def make_formats(folder: Path, seconds: float = 4.0, clip: Path = CLIP, stem: str = "song") -> dict[str, Path]:
    """{format: file}: `seconds` of `clip` in each of FORMATS, with title, artist, album and track tags (ID3 for
    wav and aiff) and a cover picture where ffmpeg embeds one."""
    from mutagen import File
    from mutagen.id3 import TALB, TIT2, TPE1

    folder.mkdir(parents=True, exist_ok=True)
    cover = folder / "cover.png"
    if not cover.exists():
        _ffmpeg("-f", "lavfi", "-i", "color=red:s=16x16", "-frames:v", "1", str(cover))
    meta = ["-metadata", "title=Só Danço Samba", "-metadata", "artist=Art Ist", "-metadata", "album=Alb",
            "-metadata", "track=3"]
    out = {}
    for fmt in FORMATS:
        path = folder / f"{stem}.{fmt}"
        if fmt in COVER:
            _ffmpeg("-t", str(seconds), "-i", str(clip), "-i", str(cover), "-map", "0:a", "-map", "1", "-c:v", "copy",
                    "-disposition:v", "attached_pic", *meta, str(path))
        else:
            _ffmpeg("-t", str(seconds), "-i", str(clip), *meta, str(path))
        if fmt in ("wav", "aiff"):  # ffmpeg writes RIFF INFO / AIFF text chunks: add an ID3 chunk as players do
            audio = File(path)
            audio.add_tags()
            audio.tags.add(TIT2(encoding=3, text="Só Danço Samba"))
            audio.tags.add(TPE1(encoding=3, text="Art Ist"))
            audio.tags.add(TALB(encoding=3, text="Alb"))
            audio.save()
        out[fmt] = path
    return out


def decoded_md5(path: Path) -> str:
    """MD5 of the decoded audio stream (ffmpeg): equal before and after when the audio is untouched."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-f", "md5", "-"],
                          check=True, capture_output=True, text=True).stdout.strip()


def other_tags(path: Path) -> dict:
    """Every tag of a file except its genre field, cover pictures included, as comparable values."""
    from mutagen import File

    audio = File(path)
    tags = {}
    for key, value in (audio.tags or {}).items():
        if key.lower() in ("tcon", "genre", "\xa9gen", "wm/genre"):
            continue
        tags[key] = repr(value)
    pictures = getattr(audio, "pictures", [])
    tags["pictures"] = [p.data for p in pictures]
    return tags
