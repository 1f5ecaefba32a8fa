"""Write the predicted genre into each audio file's own tags, with a JSON report and an undo log.

    genre-cnn tag ~/Music/untagged                     # files without a genre get their top genre
    genre-cnn tag song.mp3 --dry-run                   # song.mp3: (none) -> jazz (0.93, genre_cnn/ready/...)
    genre-cnn tag ~/Music --overwrite --count 2 --min-confidence 0.3
    genre-cnn tag --undo data/tag-logs/RUN.undo.jsonl  # every file it names back to its previous genre

What is written: the top `count` genres whose probability is at least `min_confidence`, as separate values
(a file whose top genre is below it is left alone). Only the genre field changes, written safely (see
`genre_cnn.app.tagfile`). Files that already carry a genre are skipped unless `overwrite`; a read-only file,
and a file with more than one hard link (its other names would keep the old content) unless `force`, are
skipped with one line each.

The undo log (JSON lines: a header, then {"file", "previous", "written"} per file) gets each file's entry,
fsynced, before that file is changed, so after any interruption (even kill -9) it names every file that may
have changed; `undo` restores the previous values of every file it names (a file whose genre was changed
again since is left alone unless `force`). The JSON report lists every file with what happened to it.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

from genre_cnn.app.library import predict_many
from genre_cnn.app.tagfile import TagError, read_genres, write_genres
from genre_cnn.errors import GenreCnnError
from genre_cnn.inference.predict import expand_paths
from genre_cnn.paths import atomic_write_text, home


class UndoLogError(GenreCnnError):
    """The undo log cannot be written or read: nothing more is changed."""


def model_label(checkpoint: Path) -> str:
    """A short name of a model for tags and reports: the checkpoint's last three path parts, no suffix."""
    return "/".join(Path(checkpoint).with_suffix("").parts[-3:])


def default_log_stem() -> Path:
    """data/tag-logs/<UTC time>-<pid> under the project folder (GENRE_CNN_HOME moves it)."""
    return home() / "data" / "tag-logs" / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}"


def append_entry(log: Path, entry: dict) -> None:
    """Appends one JSON line to the undo log and fsyncs it (the folder too when the log is new)."""
    try:
        new = not log.exists()
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            f.write((json.dumps(entry, ensure_ascii=False) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        if new:
            fd = os.open(log.parent, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    except OSError as err:
        raise UndoLogError(f"{log}: the undo log cannot be written ({err.strerror or err}); stopped before "
                           f"changing {entry.get('file', 'any file')}") from None


def _fmt(genres: list[str]) -> str:
    return ", ".join(genres) if genres else "(none)"


def _check(path: Path, overwrite: bool, force: bool) -> tuple[str, list[str], str | None]:
    """(status, previous genres, reason): "todo", or "skipped"/"failed" with a one-line reason."""
    try:
        previous = read_genres(path)
    except TagError as err:
        return "failed", [], str(err)
    if previous and not overwrite:
        return "skipped", previous, f"{path}: has a genre ({_fmt(previous)}); kept (--overwrite replaces it)"
    try:
        st = path.stat()
    except OSError as err:
        return "failed", previous, f"{path}: {err.strerror or err}"
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        return "failed", previous, f"{path}: read-only file; skipped"
    if st.st_nlink > 1 and not force:
        return "failed", previous, (f"{path}: has {st.st_nlink} hard links; skipped (--force tags this name as a "
                                    "new file, the other links keep the untagged one)")
    return "todo", previous, None


def tag_files(spec, runner, paths: list[Path], model: str, count: int = 1, min_confidence: float = 0.5,
              overwrite: bool = False, dry_run: bool = False, force: bool = False, log_stem: Path | None = None,
              max_windows: int | None = None, workers: int | None = None, progress: bool = True) -> dict:
    """Tags every audio file under `paths` (see the module docstring).

    Args:
        spec, runner: the model (see genre_cnn.app.library.predict_many); model: its name in reports.
        log_stem: the undo log is `<stem>.undo.jsonl`, the report `<stem>.report.json` (default:
            `default_log_stem()`).
    Returns {"tagged", "skipped", "unsure", "failed", "genres": Counter, "undo_log", "report", "files": [...]}.
    Raises UndoLogError when the undo log cannot be written (no file is changed without its entry).
    """
    from tqdm import tqdm

    stem = Path(os.path.abspath(log_stem)) if log_stem else default_log_stem()
    log, report = stem.with_name(stem.name + ".undo.jsonl"), stem.with_name(stem.name + ".report.json")
    files, errors = expand_paths(paths)
    summary = {"tagged": 0, "skipped": 0, "unsure": 0, "failed": len(errors), "genres": Counter(),
               "undo_log": None if dry_run else str(log), "report": str(report), "files": []}
    rows = summary["files"]
    rows.extend({"file": line.split(": ")[0], "status": "failed", "reason": line} for line in errors)
    for line in errors:
        print(line, file=sys.stderr)
    todo, previous = [], {}
    for path in files:
        status, previous[path], reason = _check(path, overwrite, force)
        if status == "todo":
            todo.append(path)
            continue
        summary[status] += 1
        rows.append({"file": str(path), "status": status, "previous": previous[path], "reason": reason})
        if status == "failed":
            print(reason, file=sys.stderr)
    if todo and not dry_run:
        append_entry(log, {"genre_cnn_undo": 1, "model": model, "started": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                                          time.gmtime())})
    workers = workers or (None if len(todo) >= 4 else 1)  # worker start-up costs more than a few files
    for path, res, error in predict_many(spec, todo, count, max_windows, workers, progress, runner, desc="tagging"):
        row = {"file": str(path), "previous": previous[path], "model": model}
        rows.append(row)
        if error:
            tqdm.write(error, file=sys.stderr)
            summary["failed"] += 1
            row.update(status="failed", reason=error)
            continue
        chosen = [t for t in res["top"][:count] if t["probability"] >= min_confidence]
        genres, probs = [t["genre"] for t in chosen], [round(t["probability"], 6) for t in chosen]
        row.update(genres=genres, probabilities=probs, top=res["top"])
        if not chosen:
            top = res["top"][0]
            tqdm.write(f"{path}: top genre {top['genre']} ({top['probability']:.2f}) is below "
                       f"--min-confidence {min_confidence:g}; not tagged", file=sys.stderr)
            summary["unsure"] += 1
            row["status"] = "unsure"
            continue
        if dry_run:
            tqdm.write(f"{path}: {_fmt(previous[path])} -> {', '.join(genres)} "
                       f"({', '.join(f'{p:.2f}' for p in probs)}, {model})")
            row["status"] = "would tag"
        else:
            append_entry(log, {"file": os.path.abspath(path), "previous": previous[path], "written": genres})
            try:
                write_genres(path, genres)
            except TagError as err:
                tqdm.write(str(err), file=sys.stderr)
                summary["failed"] += 1
                row.update(status="failed", reason=str(err))
                continue
            row["status"] = "tagged"
        summary["tagged"] += 1
        summary["genres"].update(genres[:1])
    try:
        atomic_write_text(report, json.dumps({"model": model, "dry_run": dry_run, "undo_log": summary["undo_log"],
                                              "files": rows}, indent=2, ensure_ascii=False) + "\n")
    except OSError as err:
        print(f"{report}: the report could not be written ({err.strerror or err})", file=sys.stderr)
        summary["report"] = None
    genres = ", ".join(f"{g} {n}" for g, n in sorted(summary["genres"].items()))
    print(f"{'would tag' if dry_run else 'tagged'} {summary['tagged']} file(s) ({genres or 'none'}); "
          f"{summary['skipped']} already had a genre; {summary['unsure']} below {min_confidence:g}; "
          f"{summary['failed']} could not be tagged; report: {summary['report']}"
          + (f"; undo: genre-cnn tag --undo {log}" if summary["tagged"] and not dry_run else ""), file=sys.stderr)
    return summary


def read_log(log: Path) -> list[dict]:
    """The file entries of an undo log (a line torn by a kill is ignored). Raises UndoLogError."""
    try:
        text = Path(log).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UndoLogError(f"{log}: cannot be read as an undo log ({getattr(err, 'strerror', None) or err})") \
            from None
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("file"), str) and isinstance(entry.get("previous"), list):
            entries.append(entry)
    if not entries and '"genre_cnn_undo"' not in text:
        raise UndoLogError(f"{log}: not an undo log of genre-cnn tag")
    return entries


def undo(logs: list[Path], force: bool = False) -> dict:
    """Restores the genre every file had before the runs that wrote `logs` (see the module docstring).
    Returns {"restored", "unchanged", "failed"}."""
    first: dict[str, list[str]] = {}
    last: dict[str, list[str]] = {}
    for log in logs:
        for entry in read_log(log):
            first.setdefault(entry["file"], entry["previous"])
            last[entry["file"]] = entry.get("written") or []
    summary = {"restored": 0, "unchanged": 0, "failed": 0}
    for name, previous in first.items():
        path = Path(name)
        try:
            current = read_genres(path)
            if current == previous:
                summary["unchanged"] += 1
                continue
            if current != last[name] and not force:
                raise TagError(f"{path}: its genre changed since it was tagged (now {_fmt(current)}); left alone "
                               "(--force restores it anyway)")
            write_genres(path, previous)
        except TagError as err:
            print(err, file=sys.stderr)
            summary["failed"] += 1
            continue
        print(f"{path}: {_fmt(current)} -> {_fmt(previous)}")
        summary["restored"] += 1
    print(f"restored {summary['restored']} file(s); {summary['unchanged']} already as before; "
          f"{summary['failed']} could not be restored", file=sys.stderr)
    return summary
