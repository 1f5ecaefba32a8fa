"""Write the predicted genre into each audio file's own tags, with a JSON report and an undo log.

    genre-cnn tag ~/Music/untagged                     # files without a genre get their top genre
    genre-cnn tag song.mp3 --dry-run                   # song.mp3: (none) -> Jazz (0.93, genre_cnn/ready/...)
    genre-cnn tag ~/Music --overwrite --count 2 --min-confidence 0.3
    genre-cnn tag ~/Music --genre-map genres.txt       # your own spellings (genre_cnn.genres)
    genre-cnn tag --undo data/tag-logs/RUN             # every file it names back to its previous genre

What is written (genre_cnn.inference.session.choose_genres, the rule `sort` and the beets plugin follow too): the
top `count` genres whose probability is at least `min_confidence`, as separate values (a file whose top genre is
below it is left alone; so is a file that a model knowing what it does not know judges "not music" or
"unfamiliar", and the report and the summary count those), in the usual spellings (Hip-Hop, Jazz...; see
genre_cnn.genres). Only the genre field changes, or the file is left as it was (see `genre_cnn.app.tagfile`).
A file that already carries a genre is kept unless `overwrite`; its genre is read again just before the
write, so a genre set while the run predicted is kept too. A genre that differs from the prediction only in
spelling ("jazz" for "Jazz") is kept as it is. Read-only files are skipped, one line each. Files with other
hard links (a `genre-cnn sort` library, say) are left alone unless `force`: the write replaces the file, so
this name would get the tagged file and the other names would keep the untagged one; the run says so once,
up front, with what to do instead (tag the originals before sorting them, or sort with --symlink or --copy).

The undo log (see genre_cnn.app.tagundo) gets each file's entry, fsynced, before that file is changed, so
after any interruption (even kill -9) it names every file that may have changed. The JSON report lists every
file with what happened to it.
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from pathlib import Path

from genre_cnn.app.tagfile import TagError, read_genre, write_genres
from genre_cnn.app.tagundo import append_entry, json_text, now
from genre_cnn.audio.sniff import shown
from genre_cnn.genres import display, same
from genre_cnn.inference.predict import expand_paths
from genre_cnn.inference.session import Predictor, choose_genres, verdict, verdict_text
from genre_cnn.paths import atomic_write_text, home

HARD_LINKS = ("{n} file(s) have other hard links (as `genre-cnn sort` makes): tagging one name would give it a new "
              "file and leave the other names with the untagged one, so they are left alone. Tag the originals "
              "before sorting them (`genre-cnn tag SRC`, then `genre-cnn sort SRC DEST`), or sort with --symlink "
              "(tags written through the links show in both places) or --copy; --force tags these names alone")


def default_log_stem() -> Path:
    """data/tag-logs/<UTC time>-<pid> under the project folder (GENRE_CNN_HOME moves it)."""
    return home() / "data" / "tag-logs" / f"{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{os.getpid()}"


def _fmt(genres: list[str]) -> str:
    return ", ".join(genres) if genres else "(none)"


def _check(path: Path, overwrite: bool, force: bool) -> tuple[str, list[str], str | None]:
    """(status, previous genres, reason): "todo", or "skipped"/"linked"/"failed" with a one-line reason."""
    try:
        previous = read_genre(path).shown
    except TagError as err:
        return "failed", [], str(err)
    if previous and not overwrite:
        return "skipped", previous, f"{shown(path)}: has a genre ({_fmt(previous)}); kept (--overwrite replaces it)"
    try:
        st = path.stat()
    except OSError as err:
        return "failed", previous, f"{shown(path)}: {err.strerror or err}"
    if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
        return "failed", previous, f"{shown(path)}: read-only file; skipped"
    if st.st_nlink > 1 and not force:
        return "linked", previous, f"{shown(path)}: has {st.st_nlink} hard links; left alone (--force tags this name)"
    return "todo", previous, None


def _write(path: Path, genres: list[str], log: Path, overwrite: bool) -> tuple[str, str | None]:
    """Writes one file's genres after reading its genre again: ("tagged" | "skipped" | "failed", reason)."""
    try:
        current = read_genre(path)
    except TagError as err:
        return "failed", str(err)
    if current.shown and not overwrite:
        return "skipped", f"{shown(path)}: got a genre while this run predicted ({_fmt(current.shown)}); kept"
    if same(current.shown, genres):
        return "skipped", f"{shown(path)}: already has {_fmt(current.shown)}; kept as it is spelled"
    append_entry(log, {"file": os.path.abspath(path), "previous": current.values, "encoding": current.encoding,
                       "written": genres})
    try:
        write_genres(path, genres, expect=current)
    except TagError as err:
        append_entry(log, {"file": os.path.abspath(path), "not_written": True})
        return "failed", str(err)
    return "tagged", None


def tag_files(predictor: Predictor, paths: list[Path], count: int = 1, min_confidence: float = 0.5,
              overwrite: bool = False, dry_run: bool = False, force: bool = False, log_stem: Path | None = None,
              max_windows: int | None = None, workers: int | None = None, progress: bool = True,
              mapping: dict[str, str] | None = None) -> dict:
    """Tags every audio file under `paths` (see the module docstring) with `predictor`'s answers (its `label`
    names it in the undo log and the report).

    Args:
        log_stem: the undo log is `<stem>.undo.jsonl`, the report `<stem>.report.json` (default:
            `default_log_stem()`).
        mapping: the user's genre spellings (genre_cnn.genres.load_mapping).
    Returns {"tagged", "skipped", "unsure" (below min_confidence), "not_music" (judged not music or unfamiliar),
    "linked", "failed", "genres": Counter, "undo_log", "report", "files": [...]}. Raises UndoLogError when the
    undo log cannot be written (no file is changed without its entry).
    """
    from tqdm import tqdm

    stem = Path(os.path.abspath(log_stem)) if log_stem else default_log_stem()
    log, report = stem.with_name(stem.name + ".undo.jsonl"), stem.with_name(stem.name + ".report.json")
    files, errors = expand_paths(paths)
    model = predictor.label
    summary = {"tagged": 0, "skipped": 0, "unsure": 0, "not_music": 0, "linked": 0, "failed": len(errors),
               "genres": Counter(),
               "undo_log": None if dry_run else str(log), "report": str(report), "files": []}
    rows = summary["files"]
    rows.extend({"file": str(e.file), "status": "failed", "reason": str(e)} for e in errors)
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
    if summary["linked"]:
        print(HARD_LINKS.format(n=summary["linked"]), file=sys.stderr)
    if todo and not dry_run:
        append_entry(log, {"genre_cnn_undo": 1, "model": model, "started": now()})
    for path, res, error in predictor.predict_many(todo, count, max_windows, workers, progress, desc="tagging"):
        row = {"file": str(path), "previous": previous[path], "model": model}
        rows.append(row)
        if error:
            tqdm.write(str(error), file=sys.stderr)
            summary["failed"] += 1
            row.update(status="failed", reason=str(error))
            continue
        decision = choose_genres(res, count, min_confidence)
        chosen = decision.genres
        genres, probs = [display(t["genre"], mapping) for t in chosen], [round(t["probability"], 6) for t in chosen]
        row.update(genres=genres, probabilities=probs, top=res["top"])
        if verdict(res):
            row["music"] = verdict(res)
        if decision.reason == "below":
            top = decision.top
            tqdm.write(f"{shown(path)}: top genre {display(top['genre'], mapping)} ({top['probability']:.2f}) is "
                       f"below --min-confidence {min_confidence:g}; not tagged", file=sys.stderr)
            summary["unsure"] += 1
            row["status"] = "unsure"
            continue
        if not chosen:  # the model does not judge it to be music
            tqdm.write(f"{shown(path)}: {verdict_text(res)}; not tagged", file=sys.stderr)
            summary["not_music"] += 1
            row["status"] = decision.reason
            continue
        if dry_run:
            tqdm.write(f"{shown(path)}: {_fmt(previous[path])} -> {', '.join(genres)} "
                       f"({', '.join(f'{p:.2f}' for p in probs)}, {model})")
            status, reason = "would tag", None
        else:
            status, reason = _write(path, genres, log, overwrite)
        row.update(status=status, reason=reason)
        if reason:
            tqdm.write(reason, file=sys.stderr)
        if status in ("tagged", "would tag"):
            summary["tagged"] += 1
            summary["genres"].update(genres[:1])
        else:
            summary[status] += 1
    try:
        atomic_write_text(report, json_text({"model": model, "dry_run": dry_run, "undo_log": summary["undo_log"],
                                             "files": rows}, indent=2) + "\n")
    except OSError as err:
        print(f"{report}: the report could not be written ({err.strerror or err})", file=sys.stderr)
        summary["report"] = None
    genres = ", ".join(f"{g} {n}" for g, n in sorted(summary["genres"].items()))
    print(f"{'would tag' if dry_run else 'tagged'} {summary['tagged']} file(s) ({genres or 'none'}); "
          f"{summary['skipped']} already had a genre; {summary['unsure']} below {min_confidence:g}; "
          + (f"{summary['not_music']} not music or unfamiliar: left alone; " if summary["not_music"] else "")
          + (f"{summary['linked']} left alone (hard links); " if summary["linked"] else "")
          + f"{summary['failed']} could not be tagged; report: {summary['report']}"
          + (f"; undo: genre-cnn tag --undo {log}" if summary["tagged"] and not dry_run else ""), file=sys.stderr)
    return summary

