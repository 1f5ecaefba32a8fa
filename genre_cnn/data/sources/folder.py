"""Any collection laid out one folder per genre, or several such collections as one dataset: the genres are the
sub-folders' names.

    python -m genre_cnn.data.sources Folder ~/music       # its genres and clip counts
    python train.py --data.source Folder --data.source.data_dir ~/music
    python train.py --data.source Folder --data.source.data_dir [../shared/gtzan_mini,../shared/gtzan_unseen]

Accepted layouts: `<data_dir>/<genre>/`, and GTZAN's `genres/<genre>/`, `genres_original/<genre>/` or
`Data/genres_original/<genre>/` (genre_cnn.data.layout.find_genre_root); a genre folder may hold sub-folders.
Files with other extensions are logged once and left out; empty genre folders are not classes. With several
folders, the genres are those of any of them and a clip's key names its folder (`rock/gtzan_mini/rock.00001.wav`),
so that two collections may hold files of the same name.
"""

from __future__ import annotations

from pathlib import Path

from genre_cnn.data.layout import GTZAN_GENRES, Clip, DataError, discover_genres, find_clips, find_genre_root
from genre_cnn.data.sources import Source
from genre_cnn.paths import resolve


class Folder(Source):
    """Args:
    data_dir: the collection's folder, or a list of them (one dataset; relative paths are taken from the working
        directory if they exist there, else from the source checkout, as in configs/).
    """

    name = "folder"

    def __init__(self, data_dir: str | list[str]):
        self.data_dirs = [resolve(d) for d in ([data_dir] if isinstance(data_dir, (str, Path)) else data_dir)]
        if not self.data_dirs:
            raise DataError("--data.source.data_dir: no folder given")
        super().__init__(self.data_dirs[0])

    def genre_root(self, data_dir: Path | None = None) -> Path:
        """The folder whose sub-folders are genres; DataError saying what to do if there is none."""
        data_dir = data_dir or self.data_dir
        root = find_genre_root(data_dir)
        if root is None:
            from genre_cnn.data.download import OFFLINE_HELP

            raise DataError(f"no audio found in {data_dir} (expected one folder per genre). " + OFFLINE_HELP)
        return root

    def ensure(self) -> None:
        for data_dir in self.data_dirs:
            self.genre_root(data_dir)

    def genres(self) -> list[str]:
        return self._genres({d: self.genre_root(d) for d in self.data_dirs})

    @staticmethod
    def _genres(roots: dict[Path, Path]) -> list[str]:
        found = {g for root in roots.values() for g in discover_genres(root)}
        return list(GTZAN_GENRES) if found == set(GTZAN_GENRES) else sorted(found)

    def clips(self) -> list[Clip]:
        roots = {d: self.genre_root(d) for d in self.data_dirs}
        genres = tuple(self._genres(roots))
        if len(roots) == 1:
            return find_clips(roots[self.data_dir], genres)
        clips = [clip for d, root in roots.items()
                 for clip in find_clips(root, tuple(g for g in genres if (root / g).is_dir()), f"{d.name}/")]
        return sorted(clips, key=lambda clip: clip.key)

    def cache_source(self) -> str:
        return " + ".join(str(d.resolve()) for d in self.data_dirs)

    def describe(self) -> str:
        return super().describe() if len(self.data_dirs) == 1 else " + ".join(d.name for d in self.data_dirs)
