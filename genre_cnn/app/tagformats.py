"""The genre field of each tag format, read and set with mutagen on an open file, and a print of every other
tag. Used by `genre_cnn.app.tagfile`, which makes the writes safe.

    from genre_cnn.app.tagformats import load, genre_field, set_genre, others, save
    audio = load(f)                   # f: a file opened "r+b"; ID3 tags exactly as stored (v2.3 stays v2.3)
    genre_field(audio, f).shown       # ["Jazz"]
    set_genre(audio, ["Jazz"]); save(audio, f)

Where the genre goes (several genres are separate values, never one "rock; pop" string):

    ID3v2 TCON             MP3, TrueAudio, and the ID3 chunk of WAV, AIFF, DSF and DSDIFF. The tag keeps its
                           version and its frames as stored: a v2.3 tag stays v2.3 with its TYER, TDAT, IPLS,
                           RVAD..., a v2.4 tag stays v2.4; a v2.2 tag (which mutagen reads but cannot write) is
                           written as v2.3, its frames carried over; a new tag is v2.4. The genre frame keeps its
                           text encoding where the new genres fit in it.
    Vorbis comment GENRE   FLAC, Ogg Vorbis, Opus, Speex, Ogg FLAC (in the place and key spelling of the old one)
    MP4 (c)gen atom        M4A, MP4, ALAC
    APEv2 Genre            Monkey's Audio, WavPack, Musepack, OptimFROG, TAK
    WM/Genre               WMA
An ID3v1 or APEv2 tag at the end of an MP3, and a WAV's RIFF INFO list, are kept byte for byte; the genre they
hold counts as the file's genre when its main tag has none.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import BinaryIO

from genre_cnn.app.tagverify import ape_span, id3v1_start, id3v2_end, iff_chunks

FAMILIES = {"MP3": "id3", "TrueAudio": "id3", "ID3FileType": "id3", "WAVE": "riff", "AIFF": "aiff",
            "DSDIFF": "dsdiff", "DSF": "dsf", "FLAC": "flac", "OggFileType": "ogg", "MP4": "mp4", "ASF": "asf",
            "APEv2File": "ape"}
ID3_FAMILIES = ("id3", "riff", "aiff", "dsdiff", "dsf")
GENRE_KEYS = {"tcon", "genre", "\xa9gen", "wm/genre"}


@dataclass
class Genre:
    """What a file says about its genre: `values`, the field `tag` writes, exactly as stored; `shown`, the
    genres it names (ID3 references like "(8)" resolved; those of an ID3v1, APE or RIFF INFO tag beside it when
    the field is empty); `encoding`, the ID3 text encoding of the field (None elsewhere or when absent)."""

    values: list[str] = field(default_factory=list)
    shown: list[str] = field(default_factory=list)
    encoding: int | None = None


def family(audio) -> str | None:
    """How the container keeps its tags (see genre_cnn.app.tagverify), or None for a format tag cannot check."""
    return next((FAMILIES[c.__name__] for c in type(audio).__mro__ if c.__name__ in FAMILIES), None)


def load(f: BinaryIO, name: str):
    """The mutagen object of an open file (None if mutagen does not know the format), its format told by its
    content and by `name` (the original's name: a temporary copy's name says nothing); ID3 tags are read as
    stored (`translate=False`), without merging an ID3v1 tag into them. Raises what mutagen raises."""
    import mutagen

    f.seek(0)
    audio = mutagen.File(fileobj=f, filename=name)
    if audio is not None and family(audio) in ID3_FAMILIES:
        f.seek(0)
        audio = type(audio)(fileobj=f, filename=name, translate=False, load_v1=False)
    return audio


def _kind(tags) -> str:
    from mutagen.apev2 import APEv2
    from mutagen.asf import ASFTags
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags
    from mutagen.oggvorbis import VCommentDict

    for cls, kind in ((ID3, "id3"), (VCommentDict, "vorbis"), (MP4Tags, "mp4"), (APEv2, "ape"), (ASFTags, "asf")):
        if isinstance(tags, cls):
            return kind
    raise TypeError(type(tags).__name__)


def _ape_key(tags) -> str:
    return next((k for k in tags.keys() if k.lower() == "genre"), "Genre")


def _values(tags) -> tuple[list[str], list[str], int | None]:
    kind = _kind(tags)
    if kind == "id3":
        frame = tags.get("TCON")
        if frame is None:
            return [], [], None
        return [str(t) for t in frame.text], list(frame.genres), int(frame.encoding)
    if kind == "vorbis":
        values = [v for k, v in tags if k.lower() == "genre"]
    elif kind == "ape":
        value = tags.get(_ape_key(tags))
        values = list(value) if value is not None and value.kind == 0 else []
    else:
        values = [str(v) for v in tags.get("\xa9gen" if kind == "mp4" else "WM/Genre", [])]
    return values, values, None


def _riff_info_genre(f: BinaryIO) -> list[str]:
    for name, offset, size in iff_chunks(f, "riff")[0]:
        if name != b"LIST" or size < 4:
            continue
        f.seek(offset)
        data = f.read(size)
        pos = 4
        while data[:4] == b"INFO" and pos + 8 <= len(data):
            length = int.from_bytes(data[pos + 4:pos + 8], "little")
            if data[pos:pos + 4] == b"IGNR":
                raw = data[pos + 8:pos + 8 + length].split(b"\0")[0]
                try:
                    return [raw.decode("utf-8").strip()]
                except UnicodeDecodeError:
                    return [raw.decode("latin-1").strip()]
            pos += 8 + length + (length & 1)
    return []


def _beside(audio, f: BinaryIO) -> list[str]:
    """The genre of an ID3v1 or APE tag at the end of an MP3, or of a WAV's RIFF INFO list."""
    kind = family(audio)
    if kind == "riff":
        return _riff_info_genre(f)
    if kind != "id3":
        return []
    if ape_span(f) is not None:
        from mutagen.apev2 import APEv2, error

        f.seek(0)
        try:
            values = _values(APEv2(f))[1]
        except error:  # a damaged APE tag names no genre; it is kept byte for byte all the same
            values = []
        if any(v.strip() for v in values):
            return values
    start = id3v1_start(f)
    if start is not None:
        from mutagen.id3 import TCON

        f.seek(start + 127)
        number = f.read(1)[0]
        if number < len(TCON.GENRES):
            return [TCON.GENRES[number]]
    return []


def genre_field(audio, f: BinaryIO) -> Genre:
    """The file's Genre (see the class)."""
    if audio.tags is None:
        values, shown, encoding = [], [], None
    else:
        values, shown, encoding = _values(audio.tags)
    shown = [g for g in shown if g.strip()] or [g for g in _beside(audio, f) if g.strip()]
    return Genre(values, shown, encoding)


def set_genre(audio, values: list[str], encoding: int | None = None) -> None:
    """Sets the genre field to `values` ([] removes it), every other tag left as it is. `encoding`: the ID3
    text encoding to use (default: the old frame's where the values fit in it, else UTF-8)."""
    if audio.tags is None:
        if not values:
            return
        audio.add_tags()
    tags = audio.tags
    kind = _kind(tags)
    if kind == "id3":
        from mutagen.id3 import TCON, Encoding

        old = tags.get("TCON")
        if encoding is None:
            encoding = old.encoding if old is not None else Encoding.UTF8
            if encoding == Encoding.LATIN1 and not all(_fits_latin1(v) for v in values):
                encoding = Encoding.UTF8
        tags.delall("TCON")
        if values:
            tags.add(TCON(encoding=Encoding(encoding), text=list(values)))
    elif kind == "vorbis":
        pairs = list(tags)  # (key, value) in order; VCommentDict's own [] takes keys
        found = [i for i, (k, _) in enumerate(pairs) if k.lower() == "genre"]
        key = pairs[found[0]][0] if found else "GENRE"
        at = found[0] if found else len(pairs)
        kept = [pair for pair in pairs if pair[0].lower() != "genre"]
        tags.clear()
        tags.extend(kept[:at] + [(key, v) for v in values] + kept[at:])
    else:
        key = _ape_key(tags) if kind == "ape" else "\xa9gen" if kind == "mp4" else "WM/Genre"
        if values:
            tags[key] = list(values)
        elif key in tags:
            del tags[key]


def _fits_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
        return True
    except UnicodeEncodeError:
        return False


def _sha(text: str | bytes) -> str:
    return hashlib.sha256(text if isinstance(text, bytes) else text.encode("utf-8", "surrogatepass")).hexdigest()


_WIDE = re.compile(r"encoding=<Encoding\.(UTF8|UTF16BE): \d>")


class _Census(dict):
    """known_frames for an ID3 load that parses no frame: every frame is kept as stored (mutagen's "unknown
    frames"), none merged or dropped, while the frame boundaries are found as in a normal load."""

    def __contains__(self, name) -> bool:
        from mutagen.id3 import Frames

        return name in Frames

    def __getitem__(self, name):
        raise KeyError(name)


def stored_frames(audio, f: BinaryIO) -> Counter:
    """How many frames of each kind the file's ID3 tag stores (v2.2 names as v2.3/2.4 ones), the genre frame
    and empty text frames left out: what a write must give back, whatever mutagen makes of each frame."""
    from mutagen.id3 import Frames_2_2

    f.seek(0)
    tags = type(audio.tags)(fileobj=f, known_frames=_Census(), translate=False, load_v1=False)
    width = 3 if tags.version < (2, 3, 0) else 4
    count: Counter = Counter()
    for raw in tags.unknown_frames:
        name = raw[:width].decode("ascii")
        name = Frames_2_2[name].__base__.__name__ if width == 3 and name in Frames_2_2 else name
        data = raw[width + (3 if width == 3 else 6):]
        if name != "TCON" and not (name[0] == "T" and name != "TXXX" and not data[1:].strip(b"\0")):
            count[name] += 1
    return count


def others(audio, f: BinaryIO) -> dict:
    """A print of everything a genre write must not change in the tags: every other frame, comment or atom,
    and the stream information (`info`). An ID3 tag's version as it will be written (2.2 and 2.3 alike), its
    frames' text encodings as that version stores them, and how many frames of each kind it stores (so that a
    frame mutagen cannot read, or two it would merge, is noticed); an empty text frame (which carries nothing
    and is not written) counts as absent, and a tag with no frames as no tag."""
    from mutagen.id3 import TextFrame

    # the stream information: its plain values but positions in the file and the bit rate, which some formats
    # work out from the file's size
    out: dict = {"info": {k: repr(v) for k, v in vars(audio.info).items() if isinstance(v, (int, float, str))
                          and k != "bitrate" and "offset" not in k}}
    tags = audio.tags
    if tags is None:
        return out
    kind = _kind(tags)
    if kind == "id3":
        v23 = tags.version < (2, 4, 0)
        frames = sorted((key, _sha(_WIDE.sub("encoding=<Encoding.UTF16: 1>", repr(f)) if v23 else repr(f)))
                        for key, f in tags.items() if key != "TCON" and not (isinstance(f, TextFrame) and not str(f)))
        unknown = [_sha(d) for d in tags.unknown_frames if len(d) > 10]
        if frames or unknown:
            out["id3"] = (3 if v23 else 4, frames, unknown)
            out["stored"] = stored_frames(audio, f)
    elif kind == "vorbis":
        pairs = [(k.lower(), v) for k, v in tags if k.lower() != "genre"]
        if pairs:  # the vendor string of a comment block made to hold the genre alone does not count
            out["vorbis"] = (tags.vendor, pairs)
    elif items := sorted((k.lower(), _sha(repr(v))) for k, v in tags.items() if k.lower() not in GENRE_KEYS):
        out["tags"] = items
    return out


def save(audio, f: BinaryIO) -> None:
    """Writes the tags into the open file as `others` promises: an ID3 tag in its own version (dropped when it
    has no frame left), and an ID3v1 or APE tag at the end of the file kept byte for byte."""
    import mutagen.apev2
    import mutagen.id3

    kind = family(audio)
    tags = audio.tags
    if tags is None:
        return
    total = f.seek(0, 2)
    f.seek(0)
    if kind in ID3_FAMILIES:
        empty = not len(tags) and not any(len(d) > 10 for d in tags.unknown_frames)
        if empty:
            if kind == "id3":
                mutagen.id3.delete(f, delete_v1=False, delete_v2=True)
            else:
                audio.delete(f)  # the container's own removal: the ID3 chunk, or DSF's tag and pointer
            return
        options = {"v2_version": 3 if tags.version < (2, 4, 0) else 4, "v23_sep": None}
        if kind != "id3":
            audio.save(f, **options)
            return
        tag_end = id3v2_end(f)
        f.seek(max(0, total - 256))
        tail = f.read()
        f.seek(0)
        audio.save(f, v1=0, **options)  # removes an ID3v1 tag, put back below as it was
        missing = id3v2_end(f) + total - tag_end - f.seek(0, 2)
        if 0 < missing <= len(tail):
            f.write(tail[-missing:])
        return
    if kind == "ape":
        span, v1 = ape_span(f), id3v1_start(f)
        cut, keep = (span[0], span[1]) if span and span[0] > 0 else (v1, v1) if v1 is not None else (total, total)
        f.seek(keep)
        tail = f.read()
        f.truncate(cut)  # mutagen would cut an ID3v1 tag after the APE tag, or write the APE tag after it
        f.seek(0)
        if len(tags):
            audio.save(f)
        else:
            mutagen.apev2.delete(f)
        f.seek(0, 2)
        f.write(tail)
        return
    audio.save(f)
