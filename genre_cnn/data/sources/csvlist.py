"""A dataset listed in a CSV file: one row per clip, its audio file's path and its genre.

    python -m genre_cnn.data.sources CsvList clips.csv         # its genres and clip counts
    python train.py --data.source CsvList --data.source.csv clips.csv

The file has a header row naming the columns `path` and `genre` (others are ignored); a relative path is taken
from the CSV file's folder. The genres are those of the rows, sorted. Rows whose file is missing or whose genre is
empty are logged once and left out; a clip's key is its genre and its path as listed (below the CSV's folder), so
files of the same name in different folders are different clips.
"""

from __future__ import annotations

from pathlib import Path

from genre_cnn.data.layout import Clip, DataError, csv_rows, warn_once
from genre_cnn.data.sources import Source
from genre_cnn.paths import resolve


class CsvList(Source):
    """Args:
    csv: the CSV file (columns `path` and `genre`).
    """

    name = "csv"

    def __init__(self, csv: str):
        self.csv = resolve(csv)
        super().__init__(self.csv.parent)

    def _rows(self) -> list[tuple[Path, str, str]]:
        """(file, genre, key name) of every usable row, in file order."""
        rows = csv_rows(self.csv, "clips")
        if not rows:
            raise DataError(f"{self.csv}: needs a header row naming the columns path and genre")
        found, bad, seen = [], 0, set()
        for row in rows:
            listed, genre = Path((row["path"] or "").strip()), (row["genre"] or "").strip()
            path = (self.data_dir / listed).resolve()
            if not genre or genre.startswith("/") or ".." in genre.split("/") or not path.is_file():
                bad += 1
                continue
            try:
                name = path.relative_to(self.data_dir.resolve()).as_posix()
            except ValueError:  # outside the CSV's folder: its absolute path names it
                name = path.relative_to(path.anchor).as_posix()
            if (genre, name) not in seen:  # a row listed twice is one clip
                seen.add((genre, name))
                found.append((path, genre, name))
        if bad:
            warn_once(f"{self.csv}: {bad} row(s) without an existing file or a usable genre: left out")
        return found

    def ensure(self) -> None:
        if not self._rows():
            raise DataError(f"{self.csv}: no row names an existing audio file with its genre")

    def genres(self) -> list[str]:
        return sorted({genre for _, genre, _ in self._rows()})

    def clips(self) -> list[Clip]:
        return sorted((Clip(path, genre, name) for path, genre, name in self._rows()), key=lambda c: c.key)

    def cache_source(self) -> str:
        return str(self.csv)

    def describe(self) -> str:
        return str(self.csv)
