"""Dataset layouts: where a folder-per-genre collection keeps its clips, and the GTZAN genre list.

    from genre_cnn.data.layout import dataset_clips
    clips = dataset_clips(Path("data/gtzan"))   # [Clip(path, genre)], sorted; odd files and folders logged once
    python -m genre_cnn.data.layout DATA_DIR        # lists what would be used, and what is skipped and why

Accepted layouts: `genres/<genre>/` (the original tarball), `genres_original/<genre>/` or
`Data/genres_original/<genre>/` (Kaggle), and `<data_dir>/<genre>/` (any folder-per-genre collection); a genre
folder may hold sub-folders (albums), searched too. Only files with AUDIO_EXTENSIONS count; reading them is
genre_cnn.audio.decode's job. A clip's key is its genre and its path below the genre folder, so two files of one
genre with the same name in different folders are two clips.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from genre_cnn.audio.decode import AUDIO_EXTENSIONS
from genre_cnn.errors import GenreCnnError

log = logging.getLogger(__name__)

# The one source of truth for GTZAN's classes, in the canonical order.
GTZAN_GENRES: tuple[str, ...] = (
    "blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock",
)

_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """Logs a warning about the data once per process: a run builds a DataModule per model family (and one
    for a refit), and each lists and caches the same folder."""
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning("%s", message)


def say_once(message: str) -> None:
    """Logs a line of information about the data once per process (see `warn_once`)."""
    if message not in _WARNED:
        _WARNED.add(message)
        log.info("%s", message)


class DataError(GenreCnnError):
    """A dataset that cannot be used at all (missing, or no usable file); the message says what to do."""


def csv_rows(path: Path, what: str) -> list[dict[str, str]]:
    """The rows of a CSV file whose header names the columns `path` and `genre` (others kept), read as UTF-8 with
    or without a byte-order mark (as spreadsheets save it); DataError naming `what` the file should be otherwise."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            rows = list(csv.DictReader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as err:
        raise DataError(f"{path}: unreadable as a CSV of {what} ({err})") from None
    if rows and not {"path", "genre"} <= set(rows[0]):
        raise DataError(f"{path}: needs a header row naming the columns path and genre")
    return rows


@dataclass(frozen=True)
class Clip:
    """One audio file of a dataset. `key` is `genre/name`, unique in its dataset and stable across machines: `name`
    is the file's path below its dataset's folder for that genre (`a/b.wav`), or just its file name (the default),
    relative and without `..`; the feature cache files a clip under its key (genre_cnn.data.cache.entry_path), or,
    when the dataset kind knows it, under `content`, a digest of the file's audio without its tags (hex): its
    features then stay valid whatever the file's path, name, tags, genre or modification time."""

    path: Path
    genre: str
    name: str = ""
    content: str = ""

    def __post_init__(self) -> None:
        key = Path(self.key)
        if key.is_absolute() or any(p in ("..", ".") for p in key.parts) or not self.genre:
            raise ValueError(f"clip {self.key!r}: a genre, then a relative path without '..'")

    @property
    def key(self) -> str:
        return f"{self.genre}/{self.name or self.path.name}"


def find_genre_root(data_dir: Path) -> Path | None:
    """The folder whose sub-folders are genres, for any supported layout, or None if there is none.

    Accepts `genres/<genre>/` (original tarball), `genres_original/<genre>/` or `Data/genres_original/`
    (Kaggle), and `<data_dir>/<genre>/` (any folder-per-genre collection).
    """
    for candidate in (data_dir / "genres", data_dir / "genres_original", data_dir / "Data" / "genres_original",
                      data_dir):
        if candidate.is_dir() and any(_has_audio(d) for d in candidate.iterdir() if d.is_dir()):
            return candidate
    return None


def _files(folder: Path) -> Iterator[tuple[str, str]]:
    """(path below `folder`, file name) of every file under it, sub-folders included (hidden ones and links to
    folders left out), in sorted order; one directory read per folder, no stat of a plain file."""
    with os.scandir(folder) as found:
        entries = sorted((e for e in found if not e.name.startswith(".")), key=lambda e: e.name)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from ((f"{entry.name}/{rel}", name) for rel, name in _files(Path(entry.path)))
        elif entry.is_file():
            yield entry.name, entry.name


def _is_audio(name: str) -> bool:
    return os.path.splitext(name)[1].lower() in AUDIO_EXTENSIONS


def _has_audio(folder: Path) -> bool:
    return any(_is_audio(name) for _, name in _files(folder))


def discover_genres(genre_root: Path) -> tuple[str, ...]:
    """Genre names of a folder-per-genre collection: GTZAN's canonical order if it is GTZAN, else sorted."""
    names = sorted(d.name for d in genre_root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if set(names) == set(GTZAN_GENRES):
        return GTZAN_GENRES
    usable = [n for n in names if _has_audio(genre_root / n)]
    for empty in sorted(set(names) - set(usable)):
        warn_once(f"{genre_root / empty}: empty genre folder, no audio files: not a class")
    return tuple(usable)


def find_clips(genre_root: Path, genres: tuple[str, ...], prefix: str = "") -> list[Clip]:
    """Every audio file under `genre_root/<genre>/` (sub-folders too), sorted by key; other files are logged and
    ignored. A clip's name is its path below the genre folder, after `prefix` (e.g. "gtzan_mini/")."""
    clips: list[Clip] = []
    for genre in genres:
        folder = genre_root / genre
        if not folder.is_dir():
            warn_once(f"no folder for genre {genre!r} in {genre_root}: that class has no clips")
            continue
        every = list(_files(folder))
        files = [rel for rel, name in every if _is_audio(name)]
        ignored = [name for _, name in every if not _is_audio(name)]
        if ignored:
            warn_once(f"{folder}: ignored {len(ignored)} file(s) with unknown extensions ("
                      + ", ".join(ignored[:3]) + (", ...)" if len(ignored) > 3 else ")"))
        if not files:
            warn_once(f"{folder}: empty genre folder, no audio files")
        clips.extend(Clip(folder / rel, genre, prefix + rel) for rel in files)
    return clips


def dataset_clips(data_dir: Path) -> list[Clip]:
    """Every clip of a folder-per-genre dataset in any supported layout; DataError if there is none."""
    root = find_genre_root(data_dir)
    if root is None:
        raise DataError(f"{data_dir}: no folder-per-genre audio found")
    return find_clips(root, discover_genres(root))


def main() -> None:
    import argparse

    from genre_cnn.audio.decode import AudioError, load_audio
    from genre_cnn.audio.frontend import FrontEndConfig

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--sample-rate", type=int, default=FrontEndConfig().sample_rate, help="Hz")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        clips = dataset_clips(args.data_dir)
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    bad = 0
    for clip in clips:
        try:
            load_audio(clip.path, args.sample_rate)
        except AudioError as err:
            bad += 1
            log.warning("skipped %s", err)
    print(f"{args.data_dir}: {len({c.genre for c in clips})} genres, {len(clips) - bad} usable clips, {bad} skipped")


if __name__ == "__main__":
    main()
