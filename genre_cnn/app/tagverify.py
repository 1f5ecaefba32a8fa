"""What a tag write must leave as it was: the audio bytes of each container, found without trusting the tag
library, and the container checks made before anything is written. Used by `genre_cnn.app.tagfile`.

    from genre_cnn.app.tagverify import audio_digest, container_problem
    container_problem(f, "riff")     # "its header says 44 bytes, the file has 88244" (or None: safe to write)
    audio_digest(f, "id3")           # hashes of everything but the tag blocks: equal before and after a write

A family names how a container keeps its tags apart from its audio:

    id3    MP3, TrueAudio: an ID3v2 tag in front; the hash covers everything after it (ID3v1 and APE tags at the
           end included: they are kept byte for byte)
    riff, aiff, dsdiff   chunks: every chunk but the ID3 one, in order (a chunk moved by a write is the same chunk)
    dsf    the DSD header's pointer to its ID3 tag at the end; the hash covers the fmt and data chunks
    flac   what precedes the fLaC marker, every metadata block but the padding, then the frames
    ogg    every packet of every stream (page boundaries may change), with the granule positions of the audio pages
In FLAC and Ogg, the Vorbis comments other than the genre are compared as stored, byte for byte, so that one
that is not UTF-8 (which mutagen would rewrite as U+FFFD) is never changed.
    mp4    every atom but moov/udta/meta (the tags) and free space, the chunk offset tables (and fragments'
           base offsets) taken relative to the first media data, so a grown tag that moves the audio counts as
           the same audio
    asf    everything after the header object (the data object and indexes)
    ape    WavPack, Monkey's Audio, Musepack, OptimFROG, TAK: everything but the APEv2 tag

An IFF container (WAV, AIFF, DSDIFF) whose sizes do not add up (a copy cut short, a size that covers only the
header, a 0x7FFFFFFF placeholder) is never written: a new chunk would land where the header says the file ends,
which may be in the middle of the audio.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Iterator
from typing import BinaryIO

BLOCK = 1 << 20
IFF = {"riff": (b"RIFF", "<I"), "aiff": (b"FORM", ">I"), "dsdiff": (b"FRM8", ">Q")}


def _hash_range(f: BinaryIO, digest, start: int, end: int | None = None) -> None:
    f.seek(start)
    left = None if end is None else max(0, end - start)
    while left is None or left > 0:
        block = f.read(BLOCK if left is None else min(BLOCK, left))
        if not block:
            return
        digest.update(block)
        if left is not None:
            left -= len(block)


def _size(f: BinaryIO) -> int:
    return f.seek(0, 2)


def id3v2_end(f: BinaryIO, at: int = 0) -> int:
    """Where an ID3v2 tag starting at `at` ends (header, frames, padding, footer), or `at` if there is none."""
    f.seek(at)
    head = f.read(10)
    if len(head) < 10 or head[:3] != b"ID3" or any(b & 0x80 for b in head[6:10]):
        return at
    size = (head[6] << 21) | (head[7] << 14) | (head[8] << 7) | head[9]
    return at + 10 + size + (10 if head[3] == 4 and head[5] & 0x10 else 0)


def flac_blocks(f: BinaryIO, start: int) -> Iterator[tuple[bytes, int, bytes]]:
    """The metadata blocks of a FLAC stream starting at `start` as (4-byte header, block type, data); the file is
    left at the first audio frame. ValueError if the marker or a block is missing."""
    f.seek(start)
    if f.read(4) != b"fLaC":
        raise ValueError("no fLaC marker")
    last = False
    while not last:
        head = f.read(4)
        if len(head) < 4:
            raise ValueError("metadata blocks cut off")
        last = bool(head[0] & 0x80)
        yield head, head[0] & 0x7F, f.read(int.from_bytes(head[1:], "big"))


def iff_chunks(f: BinaryIO, family: str) -> tuple[list[tuple[bytes, int, int]], str | None]:
    """The top-level chunks of a RIFF/AIFF/DSDIFF file as (id, data offset, data size), and what does not add up
    (None when the chunks tile the root exactly and the root ends where the file does)."""
    magic, fmt = IFF[family]
    width = struct.calcsize(fmt)
    total = _size(f)
    f.seek(0)
    head = f.read(4 + width + 4)
    if len(head) < 4 + width + 4 or head[:4] != magic:
        return [], f"not a {magic.decode()} file"
    declared = 4 + width + struct.unpack(fmt, head[4:4 + width])[0]
    problem = None
    if declared != total:
        problem = f"its header says {declared} bytes, the file has {total} (cut short, or written by a tool " \
                  "that never finished its header)"
    pos, chunks = len(head), []
    while pos < min(declared, total):
        f.seek(pos)
        header = f.read(4 + width)
        if len(header) < 4 + width:
            return chunks, problem or f"a chunk header is cut off at byte {pos}"
        size = struct.unpack(fmt, header[4:])[0]
        end = pos + 4 + width + size + (size & 1)
        if end > min(declared, total):
            name = header[:4].decode("latin-1").strip()
            return chunks, problem or f"its {name!r} chunk at byte {pos} runs past the end ({end} > {total} bytes)"
        chunks.append((header[:4], pos + 4 + width, size))
        pos = end
    return chunks, problem


def container_problem(f: BinaryIO, family: str) -> str | None:
    """Why writing tags into this file could damage it (a few words), or None."""
    if family in IFF:
        return iff_chunks(f, family)[1]
    if family == "dsf":
        f.seek(0)
        head = f.read(28)
        if len(head) < 28 or head[:4] != b"DSD ":
            return "not a DSF file"
        total, pointer = struct.unpack("<QQ", head[12:28])
        if total != _size(f) or pointer > total:
            return f"its header says {total} bytes (tag at {pointer}), the file has {_size(f)}"
    return None


def ape_span(f: BinaryIO) -> tuple[int, int] | None:
    """(start, end) of an APEv2 tag at the end of the file, before an ID3v1 tag if there is one, or at its
    start; None if there is none."""
    total = _size(f)
    for end in (total, total - 128):
        if end < 32:
            continue
        f.seek(end - 32)
        footer = f.read(32)
        if footer[:8] == b"APETAGEX":
            size, _, flags = struct.unpack("<III", footer[12:24])
            start = end - size - (32 if flags & (1 << 31) else 0)
            return (start, end) if start >= 0 else None
    f.seek(0)
    header = f.read(32)
    if header[:8] == b"APETAGEX":
        size = struct.unpack("<I", header[12:16])[0]
        return 0, min(total, 32 + size)
    return None


def id3v1_start(f: BinaryIO) -> int | None:
    """Where an ID3v1 tag (the last 128 bytes, starting with TAG) begins, or None."""
    total = _size(f)
    if total < 128:
        return None
    f.seek(total - 128)
    return total - 128 if f.read(3) == b"TAG" else None


def comment_entries(data: bytes) -> list[bytes]:
    """The entries of a Vorbis comment block as stored, byte for byte (the vendor string first), its genre
    entries left out; [] when it holds nothing else (a block made to hold the genre alone). `data` may start
    with an Ogg codec's comment-packet header. Raises ValueError for a block cut short."""
    for prefix in (b"\x03vorbis", b"OpusTags", b"\x81theora"):
        data = data[len(prefix):] if data.startswith(prefix) else data

    def field(pos: int) -> bytes:  # a length-prefixed field at pos
        size = int.from_bytes(data[pos:pos + 4], "little")
        if pos + 4 + size > len(data):
            raise ValueError("a Vorbis comment block cut short")
        return data[pos + 4:pos + 4 + size]

    vendor = field(0)
    pos = 4 + len(vendor)
    if pos + 4 > len(data):
        raise ValueError("a Vorbis comment block cut short")
    count, pos, entries = int.from_bytes(data[pos:pos + 4], "little"), pos + 4, []
    for _ in range(count):
        entries.append(field(pos))
        pos += 4 + len(entries[-1])
    kept = [e for e in entries if e.split(b"=", 1)[0].lower() != b"genre"]
    return [vendor, *kept] if kept else []


def _entries(digest, data: bytes) -> None:
    for entry in comment_entries(data):
        digest.update(struct.pack("<I", len(entry)) + entry)


def _ogg(f: BinaryIO, digest, stored) -> None:
    from mutagen.ogg import OggPage

    f.seek(0)
    packets: dict[int, int] = {}  # serial -> index of the packet being read
    first, codec, comment = None, b"", []
    while True:
        try:
            page = OggPage(f)
        except EOFError:
            break
        first = page.serial if first is None else first
        index = packets.get(page.serial, -1)
        for i, piece in enumerate(page.packets):
            if i or not page.continued:
                index += 1
                digest.update(struct.pack("<Iq", page.serial, index))
            if not (page.serial == first and index == 1):
                digest.update(piece)
                codec = codec or piece[:5]
            else:  # the comment packet of the tagged stream: compared entry by entry, the genre aside
                comment.append(piece)
        packets[page.serial] = index
        if page.position not in (0, -1):
            digest.update(struct.pack("<Iq", page.serial, page.position))
    data = b"".join(comment)
    _entries(stored, data[4:] if codec == b"\x7fFLAC" else data)  # Ogg FLAC: a metadata block header first


def _atoms(f: BinaryIO, start: int, end: int):
    """(name, offset, header size, size) of the MP4 atoms between start and end."""
    pos = start
    while pos + 8 <= end:
        f.seek(pos)
        size, name = struct.unpack(">I4s", f.read(8))
        header = 8
        if size == 1:
            size, header = struct.unpack(">Q", f.read(8))[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"MP4 atom {name!r} at byte {pos} runs past its container")
        yield name, pos, header, size
        pos += size


def _mp4(f: BinaryIO, digest, start: int, end: int, path: tuple[bytes, ...], base: list[int]) -> None:
    for name, pos, header, size in _atoms(f, start, end):
        if name in (b"free", b"skip") or (name == b"meta" and path == (b"moov", b"udta")):
            continue
        if name in (b"moov", b"trak", b"mdia", b"minf", b"stbl", b"udta", b"edts", b"dinf", b"moof", b"traf"):
            _mp4(f, digest, pos + header, pos + size, (*path, name), base)
            continue
        digest.update(b"/".join((*path, name)))  # leaves only: a udta made to hold the tags adds nothing
        if name in (b"stco", b"co64"):
            f.seek(pos + header)
            data = f.read(size - header)
            wide = name == b"co64"
            count = struct.unpack(">I", data[4:8])[0]
            offsets = struct.unpack(f">{count}{'Q' if wide else 'I'}", data[8:8 + count * (8 if wide else 4)])
            digest.update(data[:8] + b"".join(struct.pack(">q", o - base[0]) for o in offsets))
        elif name == b"tfhd":  # a fragment's header: its base data offset, if it has one, is absolute
            f.seek(pos + header)
            data = f.read(size - header)
            if len(data) >= 16 and data[3] & 1:
                data = data[:8] + struct.pack(">q", struct.unpack(">Q", data[8:16])[0] - base[0]) + data[16:]
            digest.update(data)
        elif name == b"mdat":
            _hash_range(f, digest, pos + header, pos + size)
        else:
            _hash_range(f, digest, pos, pos + size)


def audio_digest(f: BinaryIO, family: str) -> tuple[str, str]:
    """Hashes of what a tag write must not change in a file of `family` (see the module docstring): (the audio
    and the data around the tags, the Vorbis comments as stored). Raises ValueError for a layout it cannot
    follow."""
    digest, stored = hashlib.sha256(family.encode()), hashlib.sha256()
    total = _size(f)
    if family == "id3":
        _hash_range(f, digest, id3v2_end(f))
    elif family in IFF:
        chunks, _ = iff_chunks(f, family)
        f.seek(8 if family != "dsdiff" else 12)
        digest.update(f.read(4))  # the form type
        for name, offset, size in chunks:
            if name.strip().lower() != b"id3":
                digest.update(name + struct.pack("<Q", size))
                _hash_range(f, digest, offset, offset + size)
    elif family == "dsf":
        f.seek(20)
        pointer = struct.unpack("<Q", f.read(8))[0]
        _hash_range(f, digest, 28, pointer or total)
    elif family == "flac":
        start = id3v2_end(f)
        _hash_range(f, digest, 0, start)
        for head, kind, block in flac_blocks(f, start):
            if kind == 4:  # Vorbis comments: entry by entry, the genre aside
                _entries(stored, block)
            elif kind != 1:  # padding may change
                digest.update(head[:1] + block)
        _hash_range(f, digest, f.tell())
    elif family == "ogg":
        _ogg(f, digest, stored)
    elif family == "mp4":
        mdat = [pos + header for name, pos, header, _ in _atoms(f, 0, total) if name == b"mdat"]
        _mp4(f, digest, 0, total, (), [mdat[0] if mdat else 0])
    elif family == "asf":
        f.seek(16)
        _hash_range(f, digest, struct.unpack("<Q", f.read(8))[0])
    elif family == "ape":
        span = ape_span(f) or (total, total)
        _hash_range(f, digest, 0, span[0])
        _hash_range(f, digest, span[1])
    else:
        raise ValueError(f"no audio check for {family}")
    return digest.hexdigest(), stored.hexdigest()
