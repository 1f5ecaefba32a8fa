"""A corpus of tagged audio files as real libraries hold them, made here (ffmpeg, mutagen, and bytes written by
hand), and readers that look at them without genre_cnn's own tag code (helpers for tests/test_tag_corpus.py).

    from tag_corpus import make_corpus, fingerprint
    files = make_corpus(tmp_path)        # {name: (path, "write" | "refuse" | "unreadable")}
    fingerprint(path)                    # every tag but the genre, the bytes around the tags, the decoded audio

What it holds: ID3v2.2 (written by hand: mutagen writes no v2.2), v2.3 (with TYER "1959?", TDAT, TIME,
TORY, IPLS, RVAD, TSIZ, TRDA, years that are not four digits, a genre as an ID3v1 reference) and v2.4 tags
(chapters, RVA2), each with ID3v1 and APEv2 tags beside them; v2.3 tags with a damaged frame and with two
frames of one kind, and a v2.2 tag with a frame unknown to mutagen (to be refused); an ID3v1-only MP3; a
3 MB cover and 1000 TXXX frames; WAV and AIFF with ID3 chunks in odd places, RIFF INFO lists (a genre in
IGNR), odd-sized chunks; FLAC with cover, seek table and 1000 comments, and with a comment that is not
UTF-8 (which mutagen would rewrite as U+FFFD, so it must be refused); Ogg Vorbis with a comment spanning
several pages; Opus; M4A with the movie header before and after the audio; WMA, WavPack, TrueAudio; damaged
WAV/AIFF files whose sizes do not add up (a copy cut short, a RIFF size covering only the header, a
0x7FFFFFFF placeholder, a data size past the end, audio past the declared end, an odd last chunk without its
pad byte), which must be refused; and a WavPack file with a damaged header, on which mutagen raises
IndexError.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
import subprocess
from pathlib import Path

PNG = bytes.fromhex("89504e470d0a1a0a0000000d4948445200000001000000010806000000")  # enough of a PNG for a tag


def ready_model():
    """The ready model's Predictor, through its shipped ONNX graph when onnxruntime is installed."""
    from genre_cnn.inference.session import Predictor
    from genre_cnn.models.checkpoint import READY_MODEL

    return Predictor.open(READY_MODEL)


def sine(*args: str) -> None:
    """ffmpeg with 1.5 s of a 440 Hz tone at 22050 Hz as its input; `args`: output options and file."""
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:duration=1.5,volume=0.5", "-ar", "22050", *args], check=True)


def decoded_md5(path: Path) -> str:
    """MD5 of the decoded audio (ffmpeg): the same before and after when the audio is untouched."""
    return subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-map", "0:a", "-f", "md5", "-"],
                          capture_output=True, text=True).stdout.strip()


def _syncsafe(n: int) -> bytes:
    return bytes([(n >> 21) & 0x7F, (n >> 14) & 0x7F, (n >> 7) & 0x7F, n & 0x7F])


def _text(data: bytes) -> tuple:
    """An ID3 text frame's values, whatever its encoding and terminators."""
    codec = {0: "latin-1", 1: "utf-16", 2: "utf-16-be", 3: "utf-8"}.get(data[0], "latin-1")
    text = data[1:].decode(codec, "replace")
    return tuple(v for v in text.split("\0") if v) or ("",)


def id3_frames(tag: bytes) -> tuple[int, list]:
    """(major version, sorted [(frame id, content)]) of a raw ID3v2 tag, its genre frame left out. Text frames
    are compared by their values (an encoding that v2.3 does not allow may be rewritten as UTF-16)."""
    version, flags = tag[3], tag[5]
    size = sum(b << (7 * (3 - i)) for i, b in enumerate(tag[6:10]))
    body, pos, frames = tag[10:10 + size], 0, []
    if flags & 0x40:  # an extended header
        pos = 4 + (int.from_bytes(body[:4], "big") if version == 3 else sum(b << (7 * (3 - i))
                                                                            for i, b in enumerate(body[:4])) - 4)
    width = 3 if version == 2 else 4
    while pos + 2 * width <= len(body) and body[pos:pos + 1] not in (b"\0", b""):
        fid = body[pos:pos + width].decode("latin-1")
        raw = body[pos + width:pos + 2 * width]
        length = (sum(b << (7 * (3 - i)) for i, b in enumerate(raw)) if version == 4 else int.from_bytes(raw, "big"))
        start = pos + 2 * width + (0 if version == 2 else 2)
        data = body[start:start + length]
        if fid not in ("TCON", "TCO"):
            content = _text(data) if fid[0] == "T" and fid not in ("TXXX", "TXX") else hashlib.sha1(data).hexdigest()
            if content != ("",):
                frames.append((fid, content))
        pos = start + length
    return version, sorted(frames)


def _chunks(data: bytes, big: bool) -> list[tuple[bytes, bytes]]:
    fmt, out, pos = (">I" if big else "<I"), [], 12
    while pos + 8 <= len(data):
        size = struct.unpack(fmt, data[pos + 4:pos + 8])[0]
        out.append((data[pos:pos + 4], data[pos + 8:pos + 8 + size]))
        pos += 8 + size + (size & 1)
    return out


def fingerprint(path: Path) -> dict:
    """What a genre write must leave alone, read without genre_cnn: the ID3 frames (version, content), the
    bytes after the ID3v2 tag of an MP3 (ID3v1 and APE tags included), the other chunks of a WAV/AIFF, the
    other tags of any other format (mutagen), and the decoded audio."""
    from audio_formats import other_tags

    data = path.read_bytes()
    out = {"audio": decoded_md5(path)}
    suffix = path.suffix.lower()
    if suffix == ".mp3":
        end = 10 + sum(b << (7 * (3 - i)) for i, b in enumerate(data[6:10])) if data[:3] == b"ID3" else 0
        out["id3"] = id3_frames(data[:end]) if end else None
        out["after"] = hashlib.sha1(data[end:]).hexdigest()
    elif suffix in (".wav", ".aiff"):
        chunks = _chunks(data, big=suffix == ".aiff")
        tags = [c for n, c in chunks if n.strip().lower() == b"id3"]
        out["id3"] = id3_frames(tags[0]) if tags else None
        out["chunks"] = [(n, hashlib.sha1(c).hexdigest()) for n, c in chunks if n.strip().lower() != b"id3"]
    else:
        out["tags"] = other_tags(path)
    if out.get("id3") and not out["id3"][1]:
        out["id3"] = None  # a tag without frames is no tag
    return out


def _id3v1(genre: int) -> bytes:
    return (b"TAG" + b"v1 title".ljust(30, b"\0") + b"v1 artist".ljust(30, b"\0") + b"v1 album".ljust(30, b"\0")
            + b"1959" + b"v1 comment".ljust(28, b"\0") + b"\0\x05" + bytes([genre]))


def _raw_tag(version: int, frames: list[tuple[bytes, bytes]]) -> bytes:
    """An ID3v2.2 or v2.3 tag written byte by byte (mutagen writes neither v2.2 nor a damaged frame)."""
    if version == 2:
        body = b"".join(fid + len(d).to_bytes(3, "big") + d for fid, d in frames)
    else:
        body = b"".join(fid + len(d).to_bytes(4, "big") + b"\0\0" + d for fid, d in frames)
    body += b"\0" * 64
    return b"ID3" + bytes([version]) + b"\0\0" + _syncsafe(len(body)) + body


def _v23_frames(odd_year: str = "1959?") -> list:
    from mutagen.id3 import APIC, COMM, IPLS, PRIV, RVAD, TALB, TDAT, TIME, TIT2, TORY, TPE1, TRDA, TSIZ, TXXX, TYER

    return [TIT2(encoding=1, text="Só Danço Samba"), TPE1(encoding=0, text="Stan Getz"),
            TALB(encoding=0, text="Jazz Samba"), TYER(encoding=0, text=odd_year), TDAT(encoding=0, text="0105"),
            TIME(encoding=0, text="1230"), TORY(encoding=0, text="1958"),
            IPLS(encoding=0, people=[["producer", "Creed Taylor"], ["engineer", "Phil Ramone"]]),
            RVAD(adjustments=[12, -3]), TSIZ(encoding=0, text="123456"), TRDA(encoding=0, text="13th February 1962"),
            COMM(encoding=1, lang="eng", desc="", text="a comment"), TXXX(encoding=0, desc="CATALOG", text="V6-8432"),
            PRIV(owner="www.example.com", data=b"\x00\x01"), APIC(encoding=0, mime="image/png", type=3, desc="",
                                                                     data=PNG)]


def _save_id3(path: Path, frames: list, version: int, tcon: str | None = None) -> None:
    from mutagen.id3 import ID3, TCON

    tags = ID3()
    for frame in frames + ([TCON(encoding=0, text=tcon)] if tcon else []):
        tags.add(frame)
    tags.save(path, v2_version=version, v23_sep=None, v1=0)


def _ape(path: Path, genre: str | None = "House") -> None:
    from mutagen.apev2 import APEv2

    ape = APEv2()
    ape["Title"] = "ape title"
    if genre:
        ape["Genre"] = genre
    ape.save(path)


def _wav(path: Path, chunks: list[tuple[bytes, bytes]], riff_size: int | None = None, pad: bool = True) -> None:
    body = b"WAVE" + b"".join(n + struct.pack("<I", len(d)) + d + (b"\0" if len(d) & 1 and pad else b"")
                              for n, d in chunks)
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body) if riff_size is None else riff_size) + body)


def _info(**items: str) -> bytes:
    subs = b"".join(k.encode() + struct.pack("<I", len(v) + 1) + v.encode() + b"\0" + (b"\0" if len(v) % 2 == 0
                                                                                          else b"") for k, v in
                    items.items())
    return b"INFO" + subs


def _id3_chunk(version: int, tcon: str | None = None) -> bytes:
    import io

    from mutagen.id3 import ID3, TALB, TCON, TIT2, TYER

    tags = ID3()
    for frame in (TIT2(encoding=0, text="wav title"), TALB(encoding=0, text="wav album"),
                  TYER(encoding=0, text="c. 1970")) + ((TCON(encoding=0, text=tcon),) if tcon else ()):
        tags.add(frame)
    f = io.BytesIO()
    tags.save(f, v2_version=version, v23_sep=None, v1=0)
    return f.getvalue()


def make_corpus(folder: Path) -> dict[str, tuple[Path, str]]:
    """{name: (file, expected)}: every file of the corpus, made in `folder`; expected is "write", "refuse" (its
    write must be refused) or "unreadable" (its tags cannot even be read)."""
    folder.mkdir(parents=True, exist_ok=True)
    out: dict[str, tuple[Path, str]] = {}
    plain = folder / "plain.mp3"
    sine("-write_xing", "0", "-id3v2_version", "0", str(plain))
    audio = plain.read_bytes()
    pcm = folder / "pcm.wav"
    sine("-c:a", "pcm_s16le", "-ac", "1", "-bitexact", "-map_metadata", "-1", str(pcm))
    fmt, data = (c for n, c in _chunks(pcm.read_bytes(), big=False) if n in (b"fmt ", b"data"))

    def add(name: str, expect: str = "write") -> Path:
        out[name] = (folder / name, expect)
        return folder / name

    from mutagen.id3 import CHAP, CTOC, RVA2, TDRC, TIPL, TIT2, TXXX, CTOCFlags
    for version, odd in ((3, "1959?"), (3, "c. 1970"), (3, "1999-2000")):
        path = add(f"v23-{odd.replace(' ', '').replace('?', 'q')}.mp3")
        path.write_bytes(audio)
        _save_id3(path, _v23_frames(odd), version, tcon="(8)" if odd == "1959?" else None)
    path = add("v23-v1-ape.mp3")
    path.write_bytes(audio)
    _save_id3(path, _v23_frames(), 3)
    _ape(path)
    path.write_bytes(path.read_bytes() + _id3v1(8))
    path = add("v24-chapters-v1.mp3")
    path.write_bytes(audio)
    _save_id3(path, [TIT2(encoding=3, text="Chaptered"), TDRC(encoding=3, text="2001-02-03"),
                     TIPL(encoding=3, people=[["mix", "Someone"]]), RVA2(desc="track", channel=1, gain=-2.5, peak=0.9),
                     CHAP(element_id="ch0", start_time=0, end_time=700, sub_frames=[TIT2(encoding=3, text="one")]),
                     CTOC(element_id="toc", flags=CTOCFlags.TOP_LEVEL, child_element_ids=["ch0"], sub_frames=[])], 4)
    path.write_bytes(path.read_bytes() + _id3v1(17))
    add("v1-only.mp3").write_bytes(audio + _id3v1(8))
    add("no-tags.mp3").write_bytes(audio)
    add("v22.mp3").write_bytes(_raw_tag(2, [(b"TT2", b"\0Two two"), (b"TP1", b"\0Old Tagger"), (b"TYE", b"\x001959?"),
                                     (b"COM", b"\0eng\0a v2.2 comment"), (b"PIC", b"\0PNG\x03\0" + PNG)]) + audio)
    add("v22-unknown-frame.mp3", "refuse").write_bytes(_raw_tag(2, [(b"TT2", b"\0Two two"), (b"XYZ", b"private")])
                                                       + audio)
    add("v23-damaged-frame.mp3", "refuse").write_bytes(_raw_tag(3, [(b"TIT2", b"\0title"), (b"WXXX", b"\x07\0http")])
                                                       + audio)  # an encoding that does not exist: mutagen drops it
    add("v23-two-artists.mp3", "refuse").write_bytes(_raw_tag(3, [(b"TPE1", b"\0one"), (b"TPE1", b"\0two")])
                                                     + audio)  # two frames of one kind, which mutagen would merge
    path = add("huge-cover.mp3")
    path.write_bytes(audio)
    from mutagen.id3 import APIC
    _save_id3(path, [TIT2(encoding=3, text="big"), APIC(encoding=3, mime="image/jpeg", type=3, desc="",
                                                         data=os.urandom(3 << 20))], 4)
    path = add("many-frames.mp3")
    path.write_bytes(audio)
    _save_id3(path, [TXXX(encoding=0, desc=f"key{i}", text=f"value {i}") for i in range(1000)], 3)

    add("wav-odd-order.wav")
    _wav(out["wav-odd-order.wav"][0], [(b"LIST", _info(INAM="wav title", IART="Somebody")), (b"id3 ",
                                        _id3_chunk(3)), (b"fmt ", fmt), (b"junk", b"odd!!!!"), (b"data", data)])
    _wav(add("wav-id3-after-data.wav"), [(b"fmt ", fmt), (b"data", data), (b"id3 ", _id3_chunk(4)),
                                         (b"LIST", _info(ICMT="kept"))])
    _wav(add("wav-info-ignr.wav"), [(b"fmt ", fmt), (b"LIST", _info(INAM="t", IGNR="Jazz")), (b"data", data)])
    _wav(add("wav-odd-data.wav"), [(b"fmt ", fmt), (b"data", data[:-1]), (b"LIST", _info(ICMT="after an odd chunk"))])
    sine("-c:a", "pcm_s16be", str(add("plain.aiff")))
    for name, chunks, size, pad in (
            ("broken-truncated.wav", [(b"fmt ", fmt), (b"data", data)], None, True),
            ("broken-riff-covers-header.wav", [(b"fmt ", fmt), (b"data", data)], 36, True),
            ("broken-placeholder.wav", [(b"fmt ", fmt), (b"data", data)], 0x7FFFFFFF, True),
            ("broken-audio-past-end.wav", [(b"fmt ", fmt), (b"data", data[:len(data) // 2])], None, True),
            ("broken-odd-chunk-no-pad.wav", [(b"fmt ", fmt), (b"data", data[:-1])], None, False)):
        _wav(add(name, "refuse"), chunks, size, pad)
    broken = out["broken-truncated.wav"][0]
    broken.write_bytes(broken.read_bytes()[:-1000])
    past = out["broken-audio-past-end.wav"][0]
    past.write_bytes(past.read_bytes() + data[len(data) // 2:])  # audio the header does not count
    aiff = add("broken-truncated.aiff", "refuse")
    aiff.write_bytes(out["plain.aiff"][0].read_bytes()[:-1000])

    sine("-metadata", "title=flac title", str(add("tags.flac")))
    from mutagen.flac import FLAC, Picture
    flac = FLAC(out["tags.flac"][0])
    picture = Picture()
    picture.data, picture.mime, picture.type = PNG, "image/png", 3
    flac.add_picture(picture)
    for i in range(1000):
        flac[f"COMMENT{i}"] = f"value {i}"
    flac["GENRE"] = "Bossa Nova"
    flac.save()
    latin = add("latin1-comment.flac", "refuse")
    shutil.copy(out["tags.flac"][0], latin)
    flac = FLAC(latin)
    flac["TITLE"] = "café"
    flac.save()
    latin.write_bytes(latin.read_bytes().replace(b"TITLE=caf\xc3\xa9", b"TITLE=caf\xe9 "))  # as old taggers wrote
    sine("-c:a", "libvorbis", "-metadata", "title=ogg title", str(add("multipage-comment.ogg")))
    from mutagen.oggvorbis import OggVorbis
    ogg = OggVorbis(out["multipage-comment.ogg"][0])
    ogg["DESCRIPTION"] = "x" * 200_000  # the comment header spans several pages
    ogg.save()
    sine("-c:a", "libopus", "-ar", "48000", "-metadata", "artist=opus artist", str(add("tags.opus")))
    sine("-c:a", "aac", "-metadata", "title=m4a title", "-movflags", "+faststart", str(add("moov-first.m4a")))
    sine("-c:a", "aac", "-metadata", "title=m4a title", str(add("moov-last.m4a")))
    sine("-c:a", "wmav2", "-metadata", "title=wma title", str(add("tags.wma")))
    sine("-c:a", "wavpack", str(add("ape-v1.wv")))
    _ape(out["ape-v1.wv"][0], genre=None)
    out["ape-v1.wv"][0].write_bytes(out["ape-v1.wv"][0].read_bytes() + _id3v1(255))
    sine("-c:a", "tta", str(add("plain.tta")))
    damaged = bytearray(out["ape-v1.wv"][0].read_bytes())
    flags = int.from_bytes(damaged[24:28], "little") | (0xF << 23)  # a sample-rate index past the table
    damaged[24:28] = flags.to_bytes(4, "little")
    add("damaged-header.wv", "unreadable").write_bytes(bytes(damaged))  # mutagen raises IndexError on it
    return out
