"""Sort a music library by genre: each track appears under DEST/<genre>/, a manifest says what went where.

    genre-cnn sort ~/Music/unsorted ~/Music/by-genre                  # links, manifest, progress bar with ETA
    genre-cnn sort ~/Music/unsorted ~/Music/by-genre --keep-path      # by-genre/reggae/Artist/Album/01 x.mp3
    genre-cnn sort SRC DEST --copy --min-confidence 0.6 --dry-run      # copies; shows the plan, changes nothing
    sort_library(Predictor.open(), [Path("unsorted")], Path("by-genre"))  # from Python (genre_cnn.inference.session)

How a track appears in DEST: a hard link when SRC and DEST are on the same filesystem (no extra space), else a
symbolic link to the original's real path; `--symlink` always makes symbolic links, `--copy` independent
copies. A hard link is the original file under a second name: a tag editor that writes in place changes the
original too. Only --copy gives files that can be edited without touching the originals.
`--keep-path` mirrors each track's folders below SRC under its genre folder; without it every track of a
genre lands in one folder (a clash of names gets ` (2)`).

Guarantees: originals are only read, never moved, modified or overwritten; nothing in DEST is ever replaced
(a new name is created exclusively; a copy is written to `.NAME.PID.partial`, fsynced, then linked to its
name, and removed on any failure). One sort at a time per DEST (a lock file); DEST's own genre folders are
never taken as new tracks, whether DEST lies inside SRC or SRC inside DEST. Each placement is written to a
journal first, so a track placed but not yet in DEST/manifest.csv (killed run, full disk) is recognised by
the next run and recorded, never placed twice; unfinished copies of a killed run are removed by the next.
Which folder (genre_cnn.inference.session.choose_genres, the rule `tag` and the beets plugin follow too): its top
genre's, or DEST/_unsure/ for a track whose top genre is below `min_confidence`; with a model that knows what it
does not know, a track it judges "unfamiliar" (music unlike its genres) goes to DEST/_unsure/ too and one it judges
"not music" to DEST/_not_music/.
DEST/manifest.csv gets one row per sorted track (file, genre, probability, model, folder, dest, verdict: the
model's verdict, empty for a model without one), fsynced row by row; a rerun skips every track already in it,
also once a spreadsheet has re-saved it (see genre_cnn.app.placing), and a manifest whose header cannot be read
stops the run (SortError). A track that cannot be placed is one line on stderr and makes the exit code 1; a full
disk stops the run. A summary line ends the run.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from functools import partial
from pathlib import Path

from genre_cnn.app.placing import TableError, append_row, candidate_names, place, read_rows, same_track
from genre_cnn.audio.decode import DECODE_EXTENSIONS
from genre_cnn.audio.sniff import shown
from genre_cnn.errors import GenreCnnError
from genre_cnn.inference.predict import expand_paths
from genre_cnn.inference.session import Predictor, choose_genres, verdict, verdict_text

MANIFEST = "manifest.csv"
JOURNAL = ".genre-cnn-sort.journal"  # placements begun: "file will appear in dir as name (or name (N))"
LOCK = ".genre-cnn-sort.lock"
COLUMNS = ["file", "genre", "probability", "model", "folder", "dest", "verdict"]
JOURNAL_COLUMNS = [*COLUMNS[:5], "verdict", "dir", "name"]
UNSURE, NOT_MUSIC = "_unsure", "_not_music"
FOLDERS = {"below": UNSURE, "unfamiliar": UNSURE, "not music": NOT_MUSIC}  # where a track without a genre goes
COUNTED = {"below": "unsure", "unfamiliar": "unfamiliar", "not music": "not_music"}  # ... and its summary count
PARTIAL = re.compile(r"^\..+\.\d+\.partial$")  # an unfinished copy: .NAME.PID.partial
STOP = {errno.ENOSPC, errno.EDQUOT, errno.EROFS}  # DEST can take nothing more: the run stops


class SortError(GenreCnnError):
    """DEST cannot be used (not writable, or another sort is writing into it)."""


def read_manifest(path: Path) -> set[str]:
    """The source files a manifest lists (a spreadsheet's re-save of it included). Raises SortError for a
    manifest whose header cannot be read, rather than placing the whole library again."""
    try:
        return {row["file"] for row in read_rows(path, COLUMNS) if row.get("file")}
    except TableError as err:
        raise SortError(str(err)) from None


def folder_name(genre: str) -> str:
    """A genre as one safe path component."""
    name = "".join("_" if c in "/\\\0" else c for c in genre).strip().lstrip(".")
    return name or "_unnamed"


def _unreadable(lines: list[str], err: OSError) -> None:
    lines.append(f"{err.filename}: cannot read this folder ({err.strerror}); its tracks are not sorted")


def gather(sources: list[Path], dest: Path, own: set[str]) -> tuple[dict[Path, tuple[str, Path]], list[str],
                                                                   list[str], int]:
    """The audio files under `sources`: {file: (manifest key, path to mirror under a genre folder)}, sorted,
    each once; one line per unusable path or unreadable folder; one line per folder without audio; and how
    many files were left alone because they lie in DEST's own folders `own` (compared by real path, so
    symlinks do not hide DEST)."""
    real_dest = Path(os.path.realpath(dest))
    mine = [real_dest / name for name in own]
    found: dict[Path, tuple[str, Path]] = {}
    lines: list[str] = []
    empty: list[str] = []
    seen: set[Path] = set()
    skipped = 0
    for src in map(Path, sources):
        if not src.is_dir():
            files, errors = expand_paths([src])
        else:
            errors, candidates = [], []
            for folder, dirs, names in os.walk(src, onerror=partial(_unreadable, errors)):
                if Path(os.path.realpath(folder)) == real_dest:
                    dirs[:] = [d for d in dirs if d not in own]
                dirs.sort()
                candidates += [Path(folder, n) for n in sorted(names) if Path(n).suffix.lower() in DECODE_EXTENSIONS]
            files, unusable = expand_paths(candidates)
            errors += unusable
            if not candidates and not errors:
                empty.append(f"{src}: no audio files in this folder (looked for {', '.join(DECODE_EXTENSIONS)})")
        lines += errors
        for f in files:
            real = Path(os.path.realpath(f.parent)) / f.name  # the entry itself, not what a symlink points to
            if any(real.is_relative_to(m) for m in mine):
                skipped += 1
            elif real not in seen:
                seen.add(real)
                found[f] = (str(real), f.relative_to(src) if src.is_dir() else Path(f.name))
    return found, lines, empty, skipped


@contextmanager
def locked(dest: Path, keep: list[Path]) -> Iterator[None]:
    """Holds DEST for one sort: made if needed, checked writable, locked against a second sort (SortError
    otherwise); unfinished copies left by a killed run are removed and its journal is reconciled."""
    try:
        dest.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=dest):  # a read-only DEST is found before any prediction
            pass
        fd = os.open(dest / LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise SortError(f"{dest}: cannot write here ({err.strerror}); choose a writable DEST") from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 20, 0).decode(errors="replace").strip() or "?"
            raise SortError(f"{dest}: another genre-cnn sort (process {pid}) is sorting into it; "
                            "run this one when it has finished") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        swept = sweep_partials(dest, keep)
        if swept:
            print(f"{dest}: removed {swept} unfinished cop{'y' if swept == 1 else 'ies'} left by an interrupted "
                  "sort", file=sys.stderr)
        recovered = recover(dest)
        if recovered:
            print(f"{dest / MANIFEST}: recorded {recovered} track(s) placed by an interrupted sort",
                  file=sys.stderr)
        yield
    finally:
        os.close(fd)


def sweep_partials(dest: Path, keep: list[Path]) -> int:
    """Removes every `.NAME.PID.partial` under DEST (DEST is locked: none is being written), not looking
    into the folders `keep` (sources that lie inside DEST); returns how many."""
    keep_real = {os.path.realpath(k) for k in keep}
    removed = 0
    for folder, dirs, names in os.walk(dest):
        dirs[:] = [d for d in dirs if os.path.realpath(os.path.join(folder, d)) not in keep_real]
        for name in filter(PARTIAL.match, names):
            Path(folder, name).unlink(missing_ok=True)
            removed += 1
    return removed


def recover(dest: Path) -> int:
    """Adds to the manifest each journalled track that was placed but not recorded (the run was killed or
    the manifest could not be written), then empties the journal; returns how many were added."""
    manifest, journal = dest / MANIFEST, dest / JOURNAL
    done, added = read_manifest(manifest), 0
    try:
        rows = read_rows(journal, JOURNAL_COLUMNS)
    except TableError:
        rows = []  # not ours to read: the manifest says what was placed
    for row in rows:
        if row.get("file") in done or not row.get("name"):
            continue
        for name in candidate_names(row["name"]):
            candidate = Path(row["dir"]) / name
            if not os.path.lexists(candidate):
                break
            if same_track(Path(row["file"]), candidate):
                append_row(manifest, {**row, "dest": str(candidate)}, COLUMNS)
                done.add(row["file"])
                added += 1
                break
    journal.unlink(missing_ok=True)
    return added


def sort_library(predictor: Predictor, sources: list[Path], dest: Path, min_confidence: float = 0.5,
                 copy: bool = False, dry_run: bool = False, max_windows: int | None = None,
                 workers: int | None = None, progress: bool = True, symlink: bool = False,
                 keep_path: bool = False) -> dict:
    """Sorts every audio file under `sources` into `dest` with `predictor`'s answers (see the module docstring);
    returns counts: {"sorted", "unsure" (below min_confidence), "unfamiliar", "not_music", "already", "failed"
    (unreadable), "unplaced", "skipped" (DEST's own), "genres": Counter of folders, "stopped": why the run stopped
    early or None}. Raises SortError when DEST cannot be used."""
    from tqdm import tqdm

    dest = Path(dest)
    manifest, journal = dest / MANIFEST, dest / JOURNAL
    how = "copy" if copy else "symlink" if symlink else "link"
    own = {folder_name(g) for g in predictor.genres} | {UNSURE, NOT_MUSIC}
    found, errors, empty, skipped = gather(sources, dest, own)
    summary = {"sorted": 0, "unsure": 0, "unfamiliar": 0, "not_music": 0, "already": 0, "failed": 0, "unplaced": 0,
               "skipped": skipped, "genres": Counter(), "stopped": None}
    for line in [*errors, *empty]:
        print(line, file=sys.stderr)
    summary["failed"] = len(errors)
    if not found:
        print(f"nothing to sort: no audio files in {', '.join(map(str, sources))}"
              + (f" ({skipped} already in {dest}'s genre folders)" if skipped else ""), file=sys.stderr)
        return summary
    inside = [Path(s) for s in sources if Path(os.path.realpath(s)).is_relative_to(os.path.realpath(dest))]
    with nullcontext() if dry_run else locked(dest, inside):
        done = read_manifest(manifest)
        todo = [f for f, (key, _) in found.items() if key not in done and os.path.abspath(f) not in done]
        summary["already"] = len(found) - len(todo)
        unrecorded = False
        results = predictor.predict_many(todo, 1, max_windows, workers, progress, desc="sorting")
        for n, (path, res, error) in enumerate(results):
            if error:
                tqdm.write(error, file=sys.stderr)
                summary["failed"] += 1
                continue
            if "warning" in res:
                tqdm.write(f"warning: {res['warning']}", file=sys.stderr)
            decision = choose_genres(res, 1, min_confidence)
            genre, probability = decision.top["genre"], decision.top["probability"]
            folder = folder_name(genre) if decision.genres else FOLDERS[decision.reason]
            key, mirror = found[path]
            where = dest / folder / (mirror.parent if keep_path else "")
            row = {"file": key, "genre": genre, "probability": f"{probability:.6f}", "model": predictor.description,
                   "folder": folder, "verdict": (verdict(res) or {}).get("verdict", "")}
            if dry_run:
                said = verdict_text(res) if decision.reason in ("unfamiliar", "not music") else f"{probability:.0%}"
                tqdm.write(f"would {how} {shown(path)} -> {shown(where)}/ ({genre} {said})")
            else:
                try:
                    append_row(journal, {**row, "dir": os.path.abspath(where), "name": path.name}, JOURNAL_COLUMNS)
                    target = place(path, where, how)
                except OSError as err:
                    tqdm.write(f"{shown(path)}: could not be placed in {shown(where)} ({err.strerror or err})",
                               file=sys.stderr)
                    summary["unplaced"] += 1
                    if err.errno in STOP:
                        summary["stopped"] = f"{dest}: {err.strerror}; stopped, {len(todo) - n - 1} track(s) " \
                                             "not tried; make room and run again"
                        break
                    continue
                try:
                    append_row(manifest, {**row, "dest": str(target)}, COLUMNS)
                except OSError as err:
                    unrecorded = True  # the journal says where it is
                    summary["stopped"] = f"{manifest}: could not be written ({err.strerror}); stopped; {path} " \
                                         f"is in {target} and the next run records it"
                    break
            summary["sorted"] += 1
            if decision.reason in COUNTED:
                summary[COUNTED[decision.reason]] += 1
            summary["genres"][folder] += 1
        results.close()
        if not dry_run and not unrecorded:
            journal.unlink(missing_ok=True)
    if summary["stopped"]:
        print(summary["stopped"], file=sys.stderr)
    genres = ", ".join(f"{g} {n}" for g, n in sorted(summary["genres"].items()))
    print(f"{'would sort' if dry_run else 'sorted'} {summary['sorted']} track(s) ({genres or 'none'}); "
          f"{summary['unsure']} below {min_confidence:.0%} in {UNSURE}/; "
          + (f"{summary['unfamiliar']} unfamiliar in {UNSURE}/; " if summary["unfamiliar"] else "")
          + (f"{summary['not_music']} not music in {NOT_MUSIC}/; " if summary["not_music"] else "")
          + f"{summary['already']} already in the manifest; {summary['failed']} could not be read"
          + (f"; {summary['unplaced']} could not be placed" if summary["unplaced"] else "")
          + (f"; {skipped} left alone in {dest}'s genre folders" if skipped else "")
          + ("" if dry_run or not manifest.exists() else f"; manifest: {manifest}"), file=sys.stderr)
    return summary
