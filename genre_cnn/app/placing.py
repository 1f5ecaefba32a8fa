"""Putting files into a sorted library safely: rows that are never torn, copies that are all or nothing,
names that never replace anything. Used by `genre_cnn.app.sort` (`genre-cnn sort`).

    from genre_cnn.app.placing import place
    place(Path("song.mp3"), Path("by-genre/jazz"), how="copy")    # by-genre/jazz/song.mp3, or "song (2).mp3"
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


def read_rows(path: Path) -> list[dict]:
    """The rows of a CSV file with a header (a torn last line, from a killed run, is ignored)."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8", errors="replace")
    return list(csv.DictReader(io.StringIO(text if text.endswith("\n") else text[: text.rfind("\n") + 1])))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def append_row(path: Path, row: list, columns: list[str]) -> None:
    """Appends one CSV row (and the header to a new file) under an exclusive lock, then fsyncs; if that fails
    (a full disk) the file is cut back to what it was, so no torn row is left."""
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        end = os.lseek(fd, 0, os.SEEK_END)
        if end == 0:
            head = (",".join(columns) + "\n").encode()
        else:
            head = b"" if os.pread(fd, 1, end - 1) == b"\n" else b"\n"  # close a row torn by a killed run
        try:
            _write_all(fd, head + buffer.getvalue().encode("utf-8"))
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
        staged = folder / f".{src.name[:200]}.{os.getpid()}.partial"
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
