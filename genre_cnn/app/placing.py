"""Putting files into a sorted library safely: rows that are never torn, copies that are all or nothing,
names that never replace anything. Used by `genre_cnn.app.sort` (`genre-cnn sort`).

    from genre_cnn.app.placing import place, read_rows
    place(Path("song.mp3"), Path("by-genre/jazz"), how="copy")    # by-genre/jazz/song.mp3, or "song (2).mp3"
    read_rows(Path("by-genre/manifest.csv"), ["file", "genre"])   # the rows, whatever a spreadsheet made of it

Tables (the manifest, the journal) are CSV files read as a spreadsheet may have re-saved them: with a UTF-8
byte-order mark, `;` or tab separators, CRLF line ends; new rows are appended in the file's own separator.
File names are kept byte for byte, UTF-8 or not (`surrogateescape`), so a Latin-1 name from an old archive
finds its row again. A row goes into a table's own columns, so a manifest begun by an earlier version (without a
column added since) stays a table. A table whose header cannot be read is refused (TableError), never taken as empty.
"""

from __future__ import annotations

import csv
import errno
import fcntl
import filecmp
import io
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from genre_cnn.errors import GenreCnnError

DELIMITERS = ",;\t|"


class TableError(GenreCnnError):
    """A manifest or journal whose header cannot be read: refused rather than taken as empty."""


def short_name(name: str, limit: int) -> str:
    """`name` cut to at most `limit` bytes as the file system stores it, never inside a UTF-8 character (file
    names are limited to 255 bytes, not characters)."""
    raw = os.fsencode(name)
    if len(raw) <= limit:
        return name
    cut = limit
    while cut > 0 and 0x80 <= raw[cut] < 0xC0:  # a continuation byte: back to the character's start
        cut -= 1
    return os.fsdecode(raw[:cut])


def _decode(data: bytes) -> str:
    return data.decode("utf-8-sig", errors="surrogateescape")


def _names(header: str, sep: str) -> list[str]:
    """The column names of a header line, as read_rows compares them."""
    return [c.strip().lower() for c in next(csv.reader([header], delimiter=sep), [])]


def _delimiter(header: str, columns: list[str]) -> str | None:
    """The separator under which `header` names the first of `columns`, or None."""
    for sep in DELIMITERS:
        if columns[0] in _names(header, sep):
            return sep
    return None


def read_rows(path: Path, columns: list[str]) -> list[dict]:
    """The rows of a CSV table whose header holds `columns[0]` (a torn last line, from a killed run, is
    ignored); [] for a missing or empty file. Raises TableError for a header it cannot read."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as err:
        raise TableError(f"{path}: cannot be read ({err.strerror or err})") from None
    text = _decode(data)
    if not text.strip():
        return []
    text = text if text.endswith("\n") else text[: text.rfind("\n") + 1]
    header = text.splitlines()[0] if text else _decode(data).splitlines()[0]
    sep = _delimiter(header, columns)
    if sep is None:
        raise TableError(f"{path}: its header does not name the columns {', '.join(columns)} (first line: "
                         f"{header[:80]!r}); move it away or fix it, it is not read as empty")
    reader = csv.DictReader(io.StringIO(text), delimiter=sep)
    reader.fieldnames = [c.strip().lower() for c in reader.fieldnames or []]
    return list(reader)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def append_row(path: Path, row: dict[str, str], columns: list[str]) -> None:
    """Appends one CSV row (and the header `columns` to a new file) under an exclusive lock, in the file's own
    separator and the order of its own header (a column it lacks is left out, one it has beyond `columns` left
    empty), then fsyncs; if that fails (a full disk) the file is cut back to what it was, so no torn row is left."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        end = os.lseek(fd, 0, os.SEEK_END)
        header = _decode(os.pread(fd, 4096, 0)).splitlines()[0] if end else ""
        sep = _delimiter(header, columns) or ","
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n", delimiter=sep)
        if end == 0:
            writer.writerow(columns)
            head, order = b"", columns
        else:
            head = b"" if os.pread(fd, 1, end - 1) == b"\n" else b"\n"  # close a row torn by a killed run
            order = _names(header, sep)
        writer.writerow([row.get(c, "") for c in order])
        try:
            _write_all(fd, head + buffer.getvalue().encode("utf-8", "surrogateescape"))
            os.fsync(fd)
        except BaseException:
            os.ftruncate(fd, end)
            raise
    finally:
        os.close(fd)


def copy_file(src: Path, staged: Path) -> None:
    """Copies `src` to the new file `staged` (bytes, then times and mode), fsynced; on any failure (a full
    disk, an interrupt) nothing of `staged` is left."""
    fd = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with open(src, "rb") as fin, open(fd, "wb") as fout:
            shutil.copyfileobj(fin, fout, 1 << 20)
            fout.flush()
            os.fsync(fout.fileno())
        shutil.copystat(src, staged)
    except BaseException:
        staged.unlink(missing_ok=True)
        raise


def candidate_names(name: str) -> Iterator[str]:
    stem, suffix = os.path.splitext(name)
    yield name
    yield from (f"{stem} ({i}){suffix}" for i in range(2, 10_000))


def same_track(src: Path, candidate: Path) -> bool:
    """Whether `candidate` in DEST is `src` itself (a link) or a finished copy of it."""
    try:
        if os.path.samefile(candidate, src):
            return True
        return (not candidate.is_symlink() and candidate.stat().st_size == src.stat().st_size
                and filecmp.cmp(src, candidate, shallow=False))
    except OSError:
        return False


def place(src: Path, folder: Path, how: str = "link") -> Path:
    """Makes `src` appear in `folder` under its own name, or `stem (N)suffix` if taken; returns the new path
    (or the existing one if it already is that file). Never replaces anything in `folder`.
    `how`: "link" (hard link, else a symbolic link), "symlink" or "copy"."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = None
    if how == "copy":  # a finished copy under a temporary name, then linked to its final name exclusively
        staged = folder / f".{short_name(src.name, 200)}.{os.getpid()}.partial"
        staged.unlink(missing_ok=True)  # ours: DEST is locked
        copy_file(src, staged)
    try:
        for name in candidate_names(src.name):
            target = folder / name
            if os.path.lexists(target):
                try:
                    if how != "copy" and os.path.samefile(target, src):
                        return target
                except OSError:
                    pass
                continue
            try:
                if staged is not None:
                    _finish_copy(staged, target)
                elif how == "symlink":
                    os.symlink(os.path.realpath(src), target)
                else:
                    _link(src, target)
                return target
            except FileExistsError:  # made meanwhile by someone else: next name
                continue
        raise OSError(errno.EEXIST, f"no free name for {src.name}")
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)


def _finish_copy(staged: Path, target: Path) -> None:
    try:
        os.link(staged, target)  # exclusive: fails if target exists
    except OSError as err:  # a filesystem without hard links (FAT, exFAT): rename, DEST being locked
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EMLINK) or os.path.lexists(target):
            raise
        os.rename(staged, target)


def _link(src: Path, target: Path) -> None:
    try:
        os.link(src, target)
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        os.symlink(os.path.realpath(src), target)
