"""What a tagged audio file says about itself, read without writing: its genres, artist and album, and a digest of
its audio without the tags; remembered per file so that a library is read again only where it changed.

    from genre_cnn.data.tagged import TagIndex, read_track
    track = read_track(Path("song.mp3"))     # Track(genres=("Jazz",), artist="Nina", album="...", content="9f2c...")
    index = TagIndex.load()                  # <home>/data/library/tags.json
    track = index.read(Path("song.mp3"))     # the same, from the index while the file is unchanged
    index.save()
    python -m genre_cnn.data.tagged FILE...  # what each file says

The tags are read with mutagen on a file opened read-only (genre_cnn.app.tagformats: the genre field that
`genre-cnn tag` writes, or an ID3v1, APEv2 or RIFF INFO genre beside it), in every format `tag` writes: MP3 and WAV,
AIFF ID3 tags (v2.2, v2.3, v2.4), FLAC, Ogg and Opus Vorbis comments, M4A atoms, APEv2 (WavPack, Monkey's Audio...),
WMA, and a WAV's RIFF INFO list. A genre field's values, and each value cut at `;` and `,` (how beets and Picard join
several genres in one value), are the file's genres in order; `/` is part of a name (Singer/Songwriter).

`content` is a digest of the audio alone, found container by container (genre_cnn.app.tagverify): an MP3's frames
between its ID3v2 tag and an APEv2 or ID3v1 tag at its end, a FLAC's stream information and frames, a WAV's or AIFF's
format and sample chunks, every other container's audio as `genre-cnn tag` checks it. Renaming, moving or retagging
a file leaves it as it was; a layout that cannot be followed is hashed whole. The index keys each file by device,
inode, size, modification and change time, so a file edited in any way (even by a tagger that keeps its
modification time) is read again, and an unchanged one is not.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
from dataclasses import asdict, dataclass
from pathlib import Path

from genre_cnn.app.tagformats import family, load
from genre_cnn.app.tagverify import ape_span, audio_digest, flac_blocks, id3v1_start, id3v2_end, iff_chunks
from genre_cnn.errors import GenreCnnError
from genre_cnn.paths import atomic_write_text, home

SEPARATORS = re.compile(r"[;,]")  # within one value of the genre field
FIELDS = {  # (artist, album, album artist) by tag kind, the first present wins
    "id3": (("TPE1", "TP1"), ("TALB", "TAL"), ("TPE2", "TP2")),
    "vorbis": (("artist",), ("album",), ("albumartist", "album artist")),
    "mp4": (("\xa9ART",), ("\xa9alb",), ("aART",)),
    "ape": (("artist",), ("album",), ("album artist", "albumartist")),
    "asf": (("author",), ("wm/albumtitle",), ("wm/albumartist",)),
}
INFO = {b"IART": 0, b"IPRD": 1}  # RIFF INFO: artist, album
BLOCK = 1 << 20


class UnreadableTags(GenreCnnError):
    """A file whose tags cannot be read; the message is one line naming it."""


@dataclass(frozen=True)
class Track:
    """What one file says: `genres` in order ((): none), `artist`, `album` and `album_artist` ("" when absent), and
    `content`, a digest of its audio without the tags (hex)."""

    genres: tuple[str, ...]
    artist: str
    album: str
    album_artist: str
    content: str


def split_genres(values: list[str]) -> tuple[str, ...]:
    """The genres named by a genre field's values, each value cut at `;` and `,`, blanks dropped, in order."""
    return tuple(g.strip() for v in values for g in SEPARATORS.split(v) if g.strip())


def _kind(tags) -> str | None:
    from mutagen.apev2 import APEv2
    from mutagen.asf import ASFTags
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags
    from mutagen.oggvorbis import VCommentDict

    for cls, kind in ((ID3, "id3"), (VCommentDict, "vorbis"), (MP4Tags, "mp4"), (APEv2, "ape"), (ASFTags, "asf")):
        if isinstance(tags, cls):
            return kind
    return None


def _first(value) -> str:
    """The first text of a tag value (a frame, a list of values, an APE or ASF value), stripped."""
    if value is None:
        return ""
    texts = getattr(value, "text", None)
    if texts is None:
        texts = list(value) if isinstance(value, (list, tuple)) else [value]
    for text in texts:
        text = str(getattr(text, "value", text)).strip()
        if text:
            return text
    return ""


def _people(audio, f) -> tuple[str, str, str]:
    """(artist, album, album artist) of the file's main tag, else of a WAV's RIFF INFO list."""
    tags, kind = audio.tags, _kind(audio.tags) if audio.tags is not None else None
    found = ["", "", ""]
    if kind is not None:
        keys = {str(k).lower(): k for k in tags.keys()}
        for i, names in enumerate(FIELDS[kind]):
            for name in names:
                key = name if kind == "id3" else keys.get(name.lower())
                if key is not None and (text := _first(tags.get(key))) and not found[i]:
                    found[i] = text
    if family(audio) == "riff" and not any(found[:2]):
        for name, offset, size in iff_chunks(f, "riff")[0]:
            if name == b"LIST" and size >= 4:
                f.seek(offset)
                data, pos = f.read(size), 4
                while data[:4] == b"INFO" and pos + 8 <= len(data):
                    length = int.from_bytes(data[pos + 4:pos + 8], "little")
                    if data[pos:pos + 4] in INFO:
                        raw = data[pos + 8:pos + 8 + length].split(b"\0")[0]
                        found[INFO[data[pos:pos + 4]]] = raw.decode("utf-8", "replace").strip()
                    pos += 8 + length + (length & 1)
    return found[0], found[1], found[2]


def _hash_span(f, digest, start: int, end: int) -> None:
    f.seek(start)
    while start < end:
        block = f.read(min(BLOCK, end - start))
        if not block:
            return
        digest.update(block)
        start += len(block)


def audio_content(f, audio) -> str:
    """A digest (32 hex digits) of the file's audio without its tags (see the module docstring); the whole file's
    when its layout cannot be followed."""
    digest, kind = hashlib.sha256(), family(audio) if audio is not None else None
    size = f.seek(0, 2)
    try:
        if kind == "id3":  # the frames between an ID3v2 tag and an APEv2 or ID3v1 tag at the end
            start, span, v1 = id3v2_end(f), ape_span(f), id3v1_start(f)
            end = span[0] if span and span[0] > start else v1 if v1 is not None else size
            _hash_span(f, digest, start, end)
        elif kind == "flac":
            for _, block, data in flac_blocks(f, id3v2_end(f)):
                if block == 0:  # the stream information; pictures, comments and padding are tags
                    digest.update(data)
            _hash_span(f, digest, f.tell(), size)
        elif kind in ("riff", "aiff"):
            wanted = (b"fmt ", b"data") if kind == "riff" else (b"COMM", b"SSND")
            chunks = [(name, offset, length) for name, offset, length in iff_chunks(f, kind)[0] if name in wanted]
            if not chunks:
                raise ValueError("no audio chunk")
            for name, offset, length in chunks:
                digest.update(name + struct.pack("<Q", length))
                _hash_span(f, digest, offset, offset + length)
        elif kind is not None:
            return audio_digest(f, kind)[0][:32]
        else:
            raise ValueError("a format without tags")
    except (ValueError, OSError, struct.error, EOFError):
        digest = hashlib.sha256(b"whole file")
        _hash_span(f, digest, 0, size)
    return digest.hexdigest()[:32]


def read_track(path: Path) -> Track:
    """What the file says (read-only). Raises UnreadableTags with one line for a file that cannot be opened or whose
    tags mutagen cannot read; a format without tags is a Track without genres."""
    from genre_cnn.app.tagfile import TagError, read_genre

    try:
        shown = read_genre(path).shown  # the field `tag` writes, or a genre beside it; opened read-only
    except TagError as err:
        if "format not supported for tags" not in str(err):
            raise UnreadableTags(str(err)) from None
        shown = []
    try:
        with open(path, "rb") as f:
            try:
                audio = load(f, os.fspath(path))
            except Exception:  # noqa: BLE001 - read_genre read it: only a format without tags gets here
                audio = None
            people = _people(audio, f) if audio is not None else ("", "", "")
            return Track(split_genres(shown), *people, audio_content(f, audio))
    except OSError as err:
        raise UnreadableTags(f"{path}: cannot be read ({err.strerror or err})") from None
    except Exception as err:  # noqa: BLE001 - a damaged tag the reader cannot follow is this file's line
        raise UnreadableTags(f"{path}: its tags cannot be read ({type(err).__name__}: {err})"[:200]) from None


def _key(st: os.stat_result) -> str:
    return f"{st.st_dev}-{st.st_ino}-{st.st_size}-{st.st_mtime_ns}-{st.st_ctime_ns}"


class TagIndex:
    """What each file said when it was last read, by its stamp (device, inode, size, modification and change
    time): the tags of a library are read once, and again only where a file changed. Files that could not be read
    are remembered too, with why."""

    def __init__(self, path: Path, entries: dict[str, dict]):
        self.path, self.entries, self.seen, self.changed = path, entries, set(), False

    @classmethod
    def load(cls, path: Path | None = None) -> TagIndex:
        """The index at `path` (default `<home>/data/library/tags.json`); empty if missing or unreadable."""
        path = path or home() / "data" / "library" / "tags.json"
        try:
            entries = json.loads(path.read_text())
        except (OSError, ValueError):
            entries = {}
        return cls(path, entries if isinstance(entries, dict) else {})

    def read(self, path: Path, st: os.stat_result | None = None) -> Track:
        """The file's Track, from the index while its stamp is unchanged; raises UnreadableTags as read_track."""
        key = _key(st or os.stat(path))
        self.seen.add(key)
        entry = self.entries.get(key)
        if entry is None:
            try:
                entry = {**asdict(read_track(path)), "error": ""}
            except UnreadableTags as err:
                entry = {"error": str(err)}
            self.entries[key], self.changed = entry, True
        if entry.get("error"):
            raise UnreadableTags(entry["error"])
        return Track(tuple(entry["genres"]), entry["artist"], entry["album"], entry["album_artist"], entry["content"])

    def save(self) -> None:
        """Writes the index (atomically) if anything was read, keeping the entries of files seen since load and,
        of the others, as many as keep it under 200,000 entries (another library's files)."""
        if not self.changed:
            return
        others = [k for k in self.entries if k not in self.seen][: max(0, 200_000 - len(self.seen))]
        kept = {k: self.entries[k] for k in [*self.seen, *others] if k in self.entries}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.path, json.dumps(kept))
        self.changed = False


if __name__ == "__main__":
    import sys

    for name in sys.argv[1:]:
        try:
            print(f"{name}: {read_track(Path(name))}")
        except UnreadableTags as err:
            print(err)
