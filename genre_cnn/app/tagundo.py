"""The undo log of `genre-cnn tag`, and `genre-cnn tag --undo`: every genre a run wrote, put back as it was.

    genre-cnn tag --undo data/tag-logs/RUN.undo.jsonl     # or --undo data/tag-logs/RUN (the --log STEM)
    genre-cnn tag --undo first.undo.jsonl second.undo.jsonl

An undo log is JSON lines: a header {"genre_cnn_undo": 1, "model", "started"}, then per file, written and
fsynced before the file changes, {"file", "previous" (the genre field's values exactly as stored), "encoding"
(an ID3 genre frame's text encoding, or null), "written"}; a file whose write was then refused gets
{"file", "not_written": true}. File names that are not UTF-8 are kept as `\\udcXX` escapes, which JSON reads
back to the same bytes.

Undo takes the logs newest first, by the time each run started (whatever order they are named in), and walks
each file back run by run: a run's change is undone while the file still holds what that run wrote (spelling
aside: "Jazz" and "jazz" are one genre), skipped when the file already holds what it replaced, and stops at a
genre changed since by someone else, which is left alone (with `force`, restored anyway). The file is then
written once, with its genre field exactly as it was (values, and for ID3 the text encoding).
"""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

from genre_cnn.app.tagfile import TagError, read_genre, write_genres
from genre_cnn.audio.sniff import shown
from genre_cnn.errors import GenreCnnError
from genre_cnn.genres import same


class UndoLogError(GenreCnnError):
    """The undo log cannot be written or read: nothing more is changed."""


def json_text(obj, **kwargs) -> str:
    """JSON in which file names that are not UTF-8 (lone surrogates in Python) are `\\udcXX` escapes."""
    return json.dumps(obj, ensure_ascii=False, **kwargs).encode("utf-8", "backslashreplace").decode("utf-8")


def now() -> str:
    """The current UTC time, to the microsecond (two runs in one second still sort)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def append_entry(log: Path, entry: dict) -> None:
    """Appends one JSON line to the undo log and fsyncs it (the folder too when the log is new)."""
    try:
        new = not log.exists()
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "ab") as f:
            f.write((json_text(entry) + "\n").encode())
            f.flush()
            os.fsync(f.fileno())
        if new:
            fd = os.open(log.parent, os.O_RDONLY)
            os.fsync(fd)
            os.close(fd)
    except OSError as err:
        raise UndoLogError(f"{log}: the undo log cannot be written ({err.strerror or err}); stopped before "
                           f"changing {shown(entry.get('file', 'any file'))}") from None


def resolve(given: Path) -> Path:
    """The undo log named by `given`: the file itself, or `given.undo.jsonl` for the --log STEM of a run."""
    given = Path(given)
    if given.is_file():
        return given
    log = given.with_name(given.name.removesuffix(".report.json") + ".undo.jsonl")
    return log if log.is_file() else given


def read_log(log: Path) -> tuple[datetime, list[dict]]:
    """(when the run started, its file entries that were written) of an undo log; a line torn by a kill is
    ignored, and so is the entry of a file whose write was refused. Raises UndoLogError."""
    try:
        text = Path(log).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UndoLogError(f"{log}: cannot be read as an undo log ({getattr(err, 'strerror', None) or err})") \
            from None
    started, entries = None, {}
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not isinstance(entry, dict):
            continue
        if entry.get("genre_cnn_undo") and isinstance(entry.get("started"), str):
            try:
                started = datetime.fromisoformat(entry["started"].replace("Z", "+00:00"))
            except ValueError:
                pass
        elif isinstance(entry.get("file"), str) and entry.get("not_written"):
            entries.pop(entry["file"], None)
        elif isinstance(entry.get("file"), str) and isinstance(entry.get("previous"), list):
            entries[entry["file"]] = entry
    if not entries and '"genre_cnn_undo"' not in text:
        raise UndoLogError(f"{log}: not an undo log of genre-cnn tag")
    if started is None:
        started = datetime.fromtimestamp(Path(log).stat().st_mtime, timezone.utc)
    return started, list(entries.values())


def _fmt(genres: list[str]) -> str:
    return ", ".join(genres) if genres else "(none)"


def _walk_back(current: list[str], runs: list[dict], force: bool) -> tuple[list[str], int | None, str | None]:
    """(the values to restore, their ID3 encoding, why it stopped early or None), the runs newest first."""
    values, encoding, stopped = current, None, None
    for entry in runs:
        if same(values, entry.get("written") or []) or force:
            values, encoding = entry["previous"], entry.get("encoding")
        elif not same(values, entry["previous"]):
            stopped = f"its genre changed since it was tagged (now {_fmt(values)}); left alone (--force restores " \
                      "it anyway)"
            break
    return values, encoding, stopped


def undo(logs: list[Path], force: bool = False) -> dict:
    """Restores the genre every file had before the runs that wrote `logs` (see the module docstring).
    Returns {"restored", "unchanged", "failed"}."""
    runs = sorted((read_log(resolve(log)) for log in logs), key=lambda run: run[0], reverse=True)
    by_file: dict[str, list[dict]] = {}
    for _, entries in runs:
        for entry in entries:
            by_file.setdefault(entry["file"], []).append(entry)
    summary = {"restored": 0, "unchanged": 0, "failed": 0}
    for name, chain in by_file.items():
        path = Path(name)
        try:
            current = read_genre(path)
            values, encoding, stopped = _walk_back(current.values, chain, force)
            if values == current.values and encoding in (None, current.encoding):
                if stopped:
                    raise TagError(f"{shown(path)}: {stopped}")
                summary["unchanged"] += 1
                continue
            write_genres(path, values, expect=current, encoding=encoding)
        except TagError as err:
            print(err, file=sys.stderr)
            summary["failed"] += 1
            continue
        print(f"{shown(path)}: {_fmt(current.values)} -> {_fmt(values)}"
              + (f" (an earlier run's change: {stopped})" if stopped else ""))
        summary["restored"] += 1
    print(f"restored {summary['restored']} file(s); {summary['unchanged']} already as before; "
          f"{summary['failed']} could not be restored", file=sys.stderr)
    return summary
