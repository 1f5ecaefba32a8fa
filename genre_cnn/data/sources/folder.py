"""Any collection laid out one folder per genre: the genres are its sub-folders' names.

    python -m genre_cnn.data.sources folder ~/music       # its genres and clip counts

Accepted layouts: `<data_dir>/<genre>/`, and GTZAN's `genres/<genre>/`, `genres_original/<genre>/` or
`Data/genres_original/<genre>/` (genre_cnn.data.layout.find_genre_root). Files with other extensions are logged once
and left out; empty genre folders are not classes.
"""

from __future__ import annotations

from pathlib import Path

from genre_cnn.data.layout import Clip, DataError, discover_genres, find_clips, find_genre_root
from genre_cnn.data.sources import Source


class Folder(Source):
    """Args: data_dir (the collection)."""

    name = "folder"

    def genre_root(self) -> Path:
        """The folder whose sub-folders are genres; DataError saying what to do if there is none."""
        root = find_genre_root(self.data_dir)
        if root is None:
            from genre_cnn.data.download import OFFLINE_HELP

            raise DataError(f"no audio found in {self.data_dir} (expected one folder per genre). " + OFFLINE_HELP)
        return root

    def ensure(self) -> None:
        self.genre_root()

    def genres(self) -> list[str]:
        return list(discover_genres(self.genre_root()))

    def clips(self) -> list[Clip]:
        return find_clips(self.genre_root(), tuple(self.genres()))
