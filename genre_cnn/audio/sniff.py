"""Before a decoder sees a file: what its first bytes say it is, and C decoders kept quiet on stderr.

    from genre_cnn.audio.sniff import sniff, truncation
    sniff(Path("song.mp3"))     # "audio", "mpeg" or "unknown"; AudioError for text, empty or non-regular files
    truncation(Path("a.wav"))   # the share of its declared audio a WAV or AIFF file holds, if under 1, else None

AudioError (one line, fit for a log) and `shown` (a file name fit for a console) are the ones every reader of
audio uses; genre_cnn.audio.decode, which reads the audio itself, is where the rest of the package imports them from.
"""

from __future__ import annotations

import os
import stat
import struct
import threading
from contextlib import contextmanager
from pathlib import Path

from genre_cnn.errors import GenreCnnError

# Leading bytes of the containers the decoders read ((offset, bytes) pairs): a file that starts with none of
# them is not handed to them blindly. MPEG audio (mp3, mp2, AAC in ADTS) is recognised by its frame sync instead.
AUDIO_MAGIC = (
    (0, b"RIFF"), (0, b"RIFX"), (0, b"RF64"), (0, b"BW64"), (0, b"riff"), (0, b"FORM"), (0, b".snd"), (0, b"dns."),
    (0, b"fLaC"), (0, b"OggS"), (0, b"caff"), (0, b"NIST_1A"), (0, b"Creative Voice File"), (0, b"wvpk"),
    (0, b"MAC "), (0, b"#!AMR"), (0, b"\x30\x26\xb2\x75\x8e\x66\xcf\x11"), (0, b"\x1a\x45\xdf\xa3"),
    (0, b"\x0b\x77"), (4, b"ftyp"),
)  # wav/w64/rf64, aiff, au, flac, ogg/opus, caf, NIST, VOC, WavPack, APE, AMR, wma (ASF), mka/webm, AC3, mp4/m4a
SNIFF_BYTES = 4096


class AudioError(GenreCnnError):
    """A file that cannot be used as audio; the message is one line fit for a log."""


def shown(path: Path | str) -> str:
    """A file name fit for a console or a log: bytes that are not UTF-8 (kept by Python as lone surrogates) are
    written as `\\xff` escapes instead of making the print fail."""
    return os.fsencode(path).decode("utf-8", "backslashreplace")


def sniff(path: Path) -> str:
    """What the first bytes of a regular file say it is: "audio" (a container the decoders know), "mpeg" (an ID3
    tag or an MPEG frame sync: mp3, mp2, AAC), or "unknown". Raises AudioError for what cannot be audio: a missing,
    unreadable or non-regular file, an empty file, or text."""
    try:
        mode = os.stat(path).st_mode
        if not stat.S_ISREG(mode):  # never opened: a FIFO would block, a device never ends
            kind = "a folder" if stat.S_ISDIR(mode) else "a named pipe (FIFO)" if stat.S_ISFIFO(mode) else "a device"
            raise AudioError(f"{shown(path)}: not a regular file ({kind})")
        with open(path, "rb") as f:
            head = f.read(SNIFF_BYTES)
    except OSError as err:
        raise AudioError(f"{shown(path)}: cannot be read ({err.strerror or err})") from None
    if not head:
        raise AudioError(f"{shown(path)}: empty file (0 bytes)")
    if any(head[at:at + len(magic)] == magic for at, magic in AUDIO_MAGIC):
        return "audio"
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return "mpeg"
    if _is_text(head):
        raise AudioError(f"{shown(path)}: not an audio file (it holds text)")
    return "unknown"


PLACEHOLDER_SIZES = (0, 0x7FFFFFFF, 0xFFFFFFFF)  # sizes written by streaming encoders that did not know the length


def truncation(path: Path) -> float | None:
    """For a WAV (RIFF, RIFX) or AIFF file whose audio chunk declares more bytes than the file holds after its
    start (a download or copy cut short), the share it holds, in [0, 1); else None (also for other formats, and
    for the placeholder sizes that streaming encoders write)."""
    try:
        with open(path, "rb") as f:
            head = f.read(12)
            size = os.fstat(f.fileno()).st_size
            if head[:4] in (b"RIFF", b"RIFX") and head[8:12] == b"WAVE":
                order, wanted, extra = "<" if head[:4] == b"RIFF" else ">", b"data", 0
            elif head[:4] == b"FORM" and head[8:12] in (b"AIFF", b"AIFC"):
                order, wanted, extra = ">", b"SSND", 8  # SSND starts with an offset and a block size
            else:
                return None
            at = 12
            for _ in range(64):  # chunks before the audio: fmt, fact, LIST, ...
                chunk = f.read(8)
                if len(chunk) < 8:
                    return None
                declared = struct.unpack(order + "I", chunk[4:])[0]
                if chunk[:4] == wanted:
                    held = size - at - 8 - extra
                    if declared in PLACEHOLDER_SIZES or declared - extra <= max(held, 0):
                        return None
                    return max(held, 0) / (declared - extra)
                at += 8 + declared + (declared & 1)  # chunks are padded to an even size
                f.seek(at)
    except OSError:
        return None
    return None


def _is_text(head: bytes) -> bool:
    """UTF-8 (ASCII included) without NUL bytes, allowing a character cut off at the end of `head`."""
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as err:
        return err.start >= len(head) - 3
    return True


_QUIET_LOCK = threading.Lock()
_quiet_depth, _saved_stderr = 0, -1


@contextmanager
def quiet_stderr(quiet: bool = True):
    """Sends what C libraries write to the process's stderr (file descriptor 2) to /dev/null meanwhile: mpg123
    prints notes such as "Illegal Audio-MPEG-Header" while it searches damaged or foreign data. The descriptor is
    shared by every thread, so this is used only around decoders fed MPEG or unrecognised data."""
    global _quiet_depth, _saved_stderr
    if not quiet:
        yield
        return
    with _QUIET_LOCK:
        if _quiet_depth == 0:
            _saved_stderr = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)
        _quiet_depth += 1
    try:
        yield
    finally:
        with _QUIET_LOCK:
            _quiet_depth -= 1
            if _quiet_depth == 0:
                os.dup2(_saved_stderr, 2)
                os.close(_saved_stderr)
