"""Sort a music library by genre: each track appears under DEST/<genre>/, a manifest says what went where.

    genre-cnn sort ~/Music/unsorted ~/Music/by-genre                  # links, manifest, progress bar with ETA
    genre-cnn sort SRC DEST --copy --min-confidence 0.6 --dry-run      # copies; shows the plan, changes nothing

How a track appears in DEST (decided here, once): a hard link when SRC and DEST are on the same filesystem
(no extra space; it keeps working when the original is moved or renamed), else a symbolic link to the
original's absolute path (a hard link cannot cross filesystems, and a silent copy would double the size of
a library); `--copy` makes independent copies. A link is the same file as the original: a tag editor
run on DEST changes the original too; use --copy when that matters.

Guarantees: originals are only read, never moved, modified or overwritten; a new name in DEST is created
exclusively (link or rename-free exclusive link of a finished copy), so a clash with an existing file gets a
suffix, `name (2).mp3`, and nothing in DEST is ever replaced. Tracks whose top genre is below
`--min-confidence` go to DEST/_unsure/. DEST/manifest.csv gets one row per sorted track (file, genre,
probability, model, folder, dest), appended under an exclusive lock and fsynced row by row, so a killed or
concurrent run leaves whole rows; a rerun skips every track already in it. An unreadable file is one line
on stderr and is retried by the next run. A summary line ends the run.
"""

from __future__ import annotations

import csv
import errno
import io
import os
import shutil
import sys
from collections import Counter
from pathlib import Path

from genre_cnn.library import predict_many
from genre_cnn.predict import expand_paths

MANIFEST = "manifest.csv"
COLUMNS = ["file", "genre", "probability", "model", "folder", "dest"]
UNSURE = "_unsure"


def read_manifest(path: Path) -> set[str]:
    """The source files a manifest lists (a torn last line, from a killed run, is ignored)."""
    if not path.is_file():
        return set()
    text = path.read_text(encoding="utf-8", errors="replace")
    rows = list(csv.DictReader(io.StringIO(text if text.endswith("\n") else text[: text.rfind("\n") + 1])))
    return {row["file"] for row in rows if row.get("file")}


def append_row(path: Path, row: list) -> None:
    """Appends one CSV row (and the header to a new file) under an exclusive lock, then fsyncs."""
    import fcntl

    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerow(row)
    with open(path, "a+b") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        end = f.seek(0, os.SEEK_END)
        head = b""
        if end == 0:
            head = (",".join(COLUMNS) + "\n").encode()
        else:
            f.seek(end - 1)
            head = b"" if f.read(1) == b"\n" else b"\n"  # close a row torn by a killed run
        f.write(head + buffer.getvalue().encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def folder_name(genre: str) -> str:
    """A genre as one safe path component."""
    name = "".join("_" if c in "/\\\0" else c for c in genre).strip().lstrip(".")
    return name or "_unnamed"


def place(src: Path, folder: Path, copy: bool) -> Path:
    """Makes `src` appear in `folder` under its own name, or `stem (N)suffix` if taken; returns the new path
    (or the existing one if it already is that file). Never replaces anything in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    staged = None
    if copy:  # a finished copy under a temporary name, then linked to its final name exclusively
        staged = folder / f".{src.name}.{os.getpid()}.partial"
        shutil.copy2(src, staged)
    try:
        for i in range(1, 10_000):
            target = folder / (src.name if i == 1 else f"{src.stem} ({i}){src.suffix}")
            if os.path.lexists(target):
                try:
                    if not copy and os.path.samefile(target, src):
                        return target
                except OSError:
                    pass
                continue
            try:
                if staged is not None:
                    os.link(staged, target)
                else:
                    _link(src, target)
                return target
            except FileExistsError:  # made meanwhile by someone else: next name
                continue
        raise OSError(f"{folder}: no free name for {src.name}")
    finally:
        if staged is not None:
            staged.unlink(missing_ok=True)


def _link(src: Path, target: Path) -> None:
    try:
        os.link(src, target)
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        os.symlink(os.path.abspath(src), target)


def _inside(path: Path, folder: Path) -> bool:
    return Path(os.path.abspath(path)).is_relative_to(os.path.abspath(folder))


def sort_library(spec, runner, sources: list[Path], dest: Path, min_confidence: float = 0.5, copy: bool = False,
                 dry_run: bool = False, max_windows: int | None = None, workers: int | None = None,
                 progress: bool = True) -> dict:
    """Sorts every audio file under `sources` into `dest` (see the module docstring); returns counts:
    {"sorted", "unsure", "already", "failed", "genres": Counter}. `spec`/`runner`: see genre_cnn.library."""
    from tqdm import tqdm

    dest = Path(dest)
    manifest = dest / MANIFEST
    done = read_manifest(manifest)
    files, errors = expand_paths(sources)
    files = [f for f in files if not _inside(f, dest)]  # never sort DEST's own entries
    todo = [f for f in files if os.path.abspath(f) not in done]
    summary = {"sorted": 0, "unsure": 0, "already": len(files) - len(todo), "failed": len(errors),
               "genres": Counter()}
    for line in errors:
        print(line, file=sys.stderr)
    for path, res, error in predict_many(spec, todo, 1, max_windows, workers, progress, runner, desc="sorting"):
        if error:
            tqdm.write(error, file=sys.stderr)
            summary["failed"] += 1
            continue
        genre, probability = res["top"][0]["genre"], res["top"][0]["probability"]
        folder = folder_name(genre) if probability >= min_confidence else UNSURE
        summary["sorted"] += 1
        summary["unsure"] += folder == UNSURE
        summary["genres"][folder] += 1
        if dry_run:
            tqdm.write(f"would {'copy' if copy else 'link'} {path} -> {dest / folder}/ ({genre} {probability:.0%})")
            continue
        try:
            target = place(path, dest / folder, copy)
        except OSError as err:
            tqdm.write(f"{path}: could not be placed in {dest / folder} ({err.strerror or err})", file=sys.stderr)
            summary["failed"] += 1
            summary["sorted"] -= 1
            continue
        append_row(manifest, [os.path.abspath(path), genre, f"{probability:.6f}", runner.description, folder,
                              str(target)])
    genres = ", ".join(f"{g} {n}" for g, n in sorted(summary["genres"].items()))
    verb = "would sort" if dry_run else "sorted"
    print(f"{verb} {summary['sorted']} track(s) ({genres or 'none'}); {summary['unsure']} below "
          f"{min_confidence:.0%} in {UNSURE}/; {summary['already']} already in the manifest; "
          f"{summary['failed']} could not be read" + ("" if dry_run else f"; manifest: {manifest}"), file=sys.stderr)
    return summary
