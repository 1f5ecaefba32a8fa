"""The genre of one audio file, read, and written so that nothing else in the file changes or the file is left
as it was, with one line saying why.

    from genre_cnn.app.tagfile import read_genre, read_genres, write_genres
    read_genres(Path("song.mp3"))                     # ["Jazz"]; [] when the file has no genre
    write_genres(Path("song.mp3"), ["Jazz"])          # only the genre field changes
    write_genres(Path("song.mp3"), ["Jazz"], expect=read_genre(path))   # ... unless it changed meanwhile

Why mutagen: it is the standard pure-Python tag library (beets and MusicBrainz Picard write with it) and it
reads and writes the tags of every common format. Where the genre goes, format by format, is in
`genre_cnn.app.tagformats`; what must stay as it was, container by container, in `genre_cnn.app.tagverify`.

Verify before you replace. The original is never written. Its bytes are copied into a new temporary file in
the same folder, created exclusively (`tempfile.mkstemp`: a name planted there beforehand, a symbolic link
say, is never followed or reused) and handled through its descriptor alone; mutagen writes the copy; the copy
is read back: the genre must be there, every other tag, the stream information and the audio bytes as before
(see `tagverify`); the copy gets the original's owner and permission bits (on the descriptor) and is fsynced;
and only if the original has not changed meanwhile does os.replace put the copy over it in one step (the
folder is then fsynced). Otherwise the temporary file is removed and TagError says, in one line, why the file
is unchanged. A WAV, AIFF or DSDIFF file whose chunk sizes do not add up is refused before anything is
written. A kill leaves the old file or the new one, never a mix; a temporary file left by a killed process is
removed the next time that file is written. Because the file is replaced, its other hard links (if any) keep
the old content; a symbolic link is followed (its target is written, the link stays a link).
"""

from __future__ import annotations

import contextlib
import errno
import glob
import os
import shutil
import stat
import tempfile
from collections import Counter
from pathlib import Path

from genre_cnn.app.placing import short_name
from genre_cnn.app.tagformats import Genre, family, genre_field, load, others, save, set_genre
from genre_cnn.app.tagverify import audio_digest, container_problem
from genre_cnn.audio.sniff import shown
from genre_cnn.errors import GenreCnnError

TMP_SUFFIX = ".genre-cnn-tmp"


class TagError(GenreCnnError):
    """A file whose genre cannot be read or written; the message is one line naming the file."""


class GenreChanged(TagError):
    """The file's genre is no longer the one it had when it was read: nothing was written."""


def _reason(err: BaseException) -> str:
    """A failure in a few words (a full disk said plainly, also when mutagen wraps it)."""
    cause = err
    while cause is not None:
        if getattr(cause, "errno", None) == errno.ENOSPC:
            return "no room left on the disk"
        cause = cause.__cause__ or cause.__context__
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    text = (str(err).splitlines() or [""])[0].strip()[:160]
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _fmt(genres: list[str]) -> str:
    return ", ".join(genres) if genres else "(none)"


def _open_regular(path: Path, shown_as: Path):
    """The file opened for reading, never blocking on a FIFO or device; TagError if it is not a regular file."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise TagError(f"{shown(shown_as)}: no such file (moved or deleted?)") from None
    except OSError as err:
        raise TagError(f"{shown(shown_as)}: cannot be read ({err.strerror or err})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise TagError(f"{shown(shown_as)}: not a regular file; skipped")
    return open(fd, "rb")


def _open(path: Path, f):
    """The mutagen object of an open file, or TagError; whatever the tag library raises on a damaged file
    (an IndexError on a broken WavPack header, say) is this file's one line."""
    try:
        audio = load(f, os.fspath(path))
    except Exception as err:  # noqa: BLE001 - any failure of the tag library on one file is that file's line
        raise TagError(f"{shown(path)}: not readable as tagged audio ({_reason(err)})") from None
    if audio is None:
        raise TagError(f"{shown(path)}: format not supported for tags (mutagen does not know it); skipped")
    return audio


def read_genre(path: Path) -> Genre:
    """What the file says about its genre (genre_cnn.app.tagformats.Genre). Raises TagError."""
    path = Path(path)
    try:
        with _open_regular(path, path) as f:
            audio = _open(path, f)
            try:
                return genre_field(audio, f)
            except Exception as err:  # noqa: BLE001 - as in _open
                raise TagError(f"{shown(path)}: its genre cannot be read ({_reason(err)})") from None
    except OSError as err:
        raise TagError(f"{shown(path)}: cannot be read ({err.strerror or err})") from None


def read_genres(path: Path) -> list[str]:
    """The genres the file names ([] when it has none). Raises TagError (unreadable, unsupported format)."""
    return read_genre(path).shown


def _inspect(path: Path, f, check_container: bool) -> tuple[object, Genre, dict, tuple[str, str]]:
    """(mutagen object, genre, every other tag, audio digests) of the open copy."""
    audio = _open(path, f)
    kind = family(audio)
    if kind is None:
        raise TagError(f"{shown(path)}: genre-cnn tag does not write {type(audio).__name__} files; not changed")
    if check_container and (problem := container_problem(f, kind)):
        raise TagError(f"{shown(path)}: {problem}; not changed, as a tag written into it could land in its audio")
    try:
        return audio, genre_field(audio, f), others(audio, f), audio_digest(f, kind)
    except Exception as err:  # noqa: BLE001 - a layout the checks cannot follow: refuse, never guess
        raise TagError(f"{shown(path)}: its layout cannot be checked ({_reason(err)}); not changed") from None


def _verify(path: Path, before: tuple, after: tuple, values: list[str]) -> None:
    _, old, old_tags, old_audio = before
    _, new, new_tags, new_audio = after
    problems = []
    if new.values != values:
        problems.append(f"the genre read back as {_fmt(new.values)}")
    if new_audio[0] != old_audio[0]:
        problems.append("the audio, or the data around its tags, changed")
    if new_audio[1] != old_audio[1]:
        problems.append("a Vorbis comment would not be kept as stored (one that is not UTF-8, or damaged)")
    if new_tags["info"] != old_tags["info"]:
        changed = sorted(k for k in {**old_tags["info"], **new_tags["info"]}
                         if old_tags["info"].get(k) != new_tags["info"].get(k))
        problems.append(f"the stream information changed ({', '.join(changed)})")
    lost = old_tags.get("stored", Counter()) - new_tags.get("stored", Counter())
    if lost:
        problems.append(f"ID3 frames would be lost or merged ({', '.join(sorted(lost))}: damaged or repeated)")
    elif {k: v for k, v in new_tags.items() if k != "info"} != {k: v for k, v in old_tags.items() if k != "info"}:
        problems.append("other tags changed")
    if problems:
        raise TagError(f"{shown(path)}: not changed: in the written copy {'; '.join(problems)}")


def _remove_stale(path: Path) -> None:
    """Temporary copies of `path` left by processes that no longer run (a killed write)."""
    for tmp in path.parent.glob(f".{glob.escape(short_name(path.name, 180))}.*{TMP_SUFFIX}"):
        pid = tmp.name[len(short_name(path.name, 180)) + 2:].split(".")[0]
        try:
            os.kill(int(pid), 0)
        except (ValueError, PermissionError):
            continue
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)


def _change_copy(given: Path, f, values: list[str], expect: Genre | None, encoding: int | None) -> None:
    """Writes `values` into the open copy `f` and reads it back (see _verify); TagError if anything is off."""
    before = _inspect(given, f, check_container=True)
    if expect is not None and (before[1].values, before[1].shown) != (expect.values, expect.shown):
        raise GenreChanged(f"{shown(given)}: its genre changed meanwhile (now {_fmt(before[1].shown)}); not changed")
    try:
        set_genre(before[0], values, encoding)
        save(before[0], f)
        f.flush()
    except Exception as err:  # noqa: BLE001 - the tag library failing on one file is that file's line
        raise TagError(f"{shown(given)}: its tags could not be written ({_reason(err)}); not changed") from None
    _verify(given, before, _inspect(given, f, check_container=False), values)


def write_genres(path: Path, values: list[str], expect: Genre | None = None, encoding: int | None = None) -> None:
    """Sets the genre field of `path` to `values` (removes it for []), changing nothing else, or leaves the file
    as it was (see the module docstring). `expect`: the genre the file must still have (else GenreChanged);
    `encoding`: the ID3 text encoding to write (default: the old frame's). Raises TagError with one line."""
    given, path = Path(path), Path(os.path.realpath(path))  # through a symbolic link: its target is written
    tmp = None
    try:
        with _open_regular(path, given) as src:
            st = os.fstat(src.fileno())
            mode = stat.S_IMODE(st.st_mode)
            if not mode & 0o222 or not os.access(path, os.W_OK):  # no write bit counts even for root
                raise TagError(f"{shown(given)}: read-only file; not changed")
            _remove_stale(path)
            fd, tmp = tempfile.mkstemp(prefix=f".{short_name(path.name, 180)}.{os.getpid()}.", suffix=TMP_SUFFIX,
                                       dir=path.parent)
            with open(fd, "w+b") as f:
                shutil.copyfileobj(src, f, 1 << 20)
                f.flush()
                _change_copy(given, f, values, expect, encoding)
                with contextlib.suppress(OSError):  # keep the owner when allowed (root tagging a user's files)
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
                os.fchmod(f.fileno(), mode)
                os.fsync(f.fileno())
                now = os.stat(path)
                if (now.st_ino, now.st_size, now.st_mtime_ns) != (st.st_ino, st.st_size, st.st_mtime_ns):
                    raise TagError(f"{shown(given)}: changed by another program while it was being tagged; "
                                   "not changed (run again)")
                if os.lstat(tmp).st_ino != os.fstat(f.fileno()).st_ino:
                    raise TagError(f"{shown(given)}: its temporary copy was replaced by someone else; not changed")
                os.replace(tmp, path)
                tmp = None
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except TagError:
        raise
    except Exception as err:  # noqa: BLE001 - any failure (a full disk, a vanished file...): the original stays
        raise TagError(f"{shown(given)}: could not be written ({_reason(err)}); the file is unchanged") from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
