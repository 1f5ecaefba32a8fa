"""The genre field of one audio file, read and written with mutagen, never left half-written.

    from genre_cnn.app.tagfile import read_genres, write_genres
    read_genres(Path("song.mp3"))                   # ["Jazz"]; [] when the file has no genre
    write_genres(Path("song.mp3"), ["jazz"])        # only the genre field changes
    write_genres(Path("song.mp3"), [])              # the genre field removed

Why mutagen: it is the standard pure-Python tag library (beets and MusicBrainz Picard write with it), it
reads and writes the tags of every common format, and it changes only the tag blocks: the audio data is
copied as it was. Where the genre goes:

    ID3v2 TCON             MP3, and the ID3 chunk of WAV and AIFF (also TrueAudio, DSF); new tags are ID3v2.4,
                           an existing ID3v2.3 tag stays v2.3
    Vorbis comment GENRE   FLAC, Ogg Vorbis, Opus, Speex
    MP4 (c)gen atom        M4A, MP4, ALAC
    APEv2 Genre            Monkey's Audio, WavPack, Musepack, OptimFROG
    WM/Genre               WMA
Several genres are separate values (several ID3 strings, GENRE comments or (c)gen values, the way players read
them), never one "rock; pop" string.

A safe write: mutagen rewrites a file in place, so a kill during its save could leave a half-written file.
It never touches the original here: the file is copied to `.<name>.<pid>.genre-cnn-tmp` in the same folder,
mutagen saves the copy, the copy gets the original's permission bits and is fsynced, and os.replace puts it
over the original in one step (then the folder is fsynced). A kill leaves the old file or the new one, never
a mix; a temporary file left by a killed process is removed the next time that file is written.
Because the file is replaced, its other hard links (if any) keep the old content; a symbolic link is
followed (its target is written, the link stays a link).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import stat
from pathlib import Path

from genre_cnn.errors import GenreCnnError

TMP_SUFFIX = ".genre-cnn-tmp"


class TagError(GenreCnnError):
    """A file whose genre cannot be read or written; the message is one line naming the file."""


def _field(tags) -> tuple[str, str]:
    """(kind, key) of the genre field in a mutagen tag object."""
    from mutagen.apev2 import APEv2
    from mutagen.asf import ASFTags
    from mutagen.id3 import ID3
    from mutagen.mp4 import MP4Tags
    from mutagen.oggvorbis import VCommentDict

    for cls, kind, key in ((ID3, "id3", "TCON"), (VCommentDict, "vorbis", "genre"), (MP4Tags, "mp4", "\xa9gen"),
                           (APEv2, "ape", "Genre"), (ASFTags, "asf", "WM/Genre")):
        if isinstance(tags, cls):
            return kind, key
    raise TypeError(type(tags).__name__)


def _reason(err: BaseException) -> str:
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    return (str(err).splitlines() or [""])[0].strip()[:160] or type(err).__name__


def _open(path: Path):
    """The mutagen object of a file, with its tags (created empty when the file has none yet)."""
    import mutagen

    try:
        audio = mutagen.File(path)
    except (OSError, mutagen.MutagenError) as err:
        if not os.path.lexists(path):
            raise TagError(f"{path}: no such file (moved or deleted?)") from None
        raise TagError(f"{path}: not readable as tagged audio ({_reason(err)})") from None
    if audio is None:
        raise TagError(f"{path}: format not supported for tags (mutagen does not know it); skipped")
    if audio.tags is None:
        try:
            audio.add_tags()
        except Exception:  # noqa: BLE001 - a format without tags (raw AAC, AC-3, ...)
            raise TagError(f"{path}: {type(audio).__name__} files carry no tags; skipped") from None
    try:
        _field(audio.tags)
    except TypeError:
        raise TagError(f"{path}: no genre field in its {type(audio.tags).__name__} tags; skipped") from None
    return audio


def _get(tags) -> list[str]:
    kind, key = _field(tags)
    if kind == "id3":
        frame = tags.get(key)
        return [str(t) for t in frame.text] if frame is not None else []
    if kind == "ape":
        return list(tags[key]) if key in tags else []
    return [str(v) for v in tags.get(key, [])]


def _set(tags, genres: list[str]) -> None:
    kind, key = _field(tags)
    if not genres:
        if kind == "id3":
            tags.delall(key)
        elif key in tags:
            del tags[key]
    elif kind == "id3":
        from mutagen.id3 import TCON

        tags.setall(key, [TCON(encoding=3, text=list(genres))])  # UTF-8, one string per genre
    else:
        tags[key] = list(genres)


def read_genres(path: Path) -> list[str]:
    """The genre values of a file ([] when it has none). Raises TagError (unreadable, unsupported format)."""
    return [g for g in _get(_open(Path(path)).tags) if g.strip()]


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _remove_stale(path: Path) -> None:
    """Temporary copies of `path` left by processes that no longer run (a killed write)."""
    for tmp in path.parent.glob(f".{glob.escape(path.name)}.*{TMP_SUFFIX}"):
        pid = tmp.name[len(path.name) + 2: -len(TMP_SUFFIX)]
        try:
            os.kill(int(pid), 0)
        except (ValueError, PermissionError):
            continue
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)


def write_genres(path: Path, genres: list[str]) -> None:
    """Sets the genre field of `path` to `genres` (removes it for []), changing nothing else, atomically (see
    the module docstring). Raises TagError with one line (unreadable, unsupported, read-only, disk full...)."""
    shown, path = Path(path), Path(os.path.realpath(path))  # through a symbolic link: its target is written
    try:
        st = path.stat()
    except FileNotFoundError:
        raise TagError(f"{shown}: no such file (moved or deleted?)") from None
    mode = stat.S_IMODE(st.st_mode)
    if not mode & 0o222 or not os.access(path, os.W_OK):  # no write bit counts even for root
        raise TagError(f"{shown}: read-only file; not changed")
    _remove_stale(path)
    tmp = path.parent / f".{path.name}.{os.getpid()}{TMP_SUFFIX}"
    try:
        shutil.copyfile(path, tmp)
        audio = _open(tmp)
        _set(audio.tags, genres)
        kind, _ = _field(audio.tags)
        if kind == "id3":  # keep an ID3v2.3 tag v2.3 (values separated by NUL, as v2.4), else v2.4
            version = 3 if audio.tags.version[:2] == (2, 3) else 4
            audio.save(v2_version=version, v23_sep=None)
        else:
            audio.save()
        with contextlib.suppress(OSError):  # keep the owner when allowed (root tagging a user's files)
            os.chown(tmp, st.st_uid, st.st_gid)
        os.chmod(tmp, mode)
        _fsync(tmp)
        os.replace(tmp, path)
        _fsync(path.parent)
    except TagError as err:
        raise TagError(str(err).replace(str(tmp), str(shown))) from None
    except Exception as err:  # noqa: BLE001 - any failure (a full disk, a vanished file...): the original stays
        what = "no room left on the disk" if getattr(err, "errno", None) == errno.ENOSPC else _reason(err)
        raise TagError(f"{shown}: could not be written ({what}); the file is unchanged") from None
    finally:
        tmp.unlink(missing_ok=True)
