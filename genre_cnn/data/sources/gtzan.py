"""GTZAN (Tzanetakis & Cook 2002): 1000 clips of 30 s, ten genres; downloaded when missing.

    python -m genre_cnn.data.sources Gtzan ~/gtzan       # its genres and clip counts
    python train.py --data.source.data_dir ~/gtzan       # the default dataset kind of train.py

The ten genres are GTZAN's, in its order, whatever the folders hold; a folder of another genre is an error that
points to `--data.source Folder`. The download (genre_cnn.data.download) is resumable and checksummed.
"""

from __future__ import annotations

from pathlib import Path

from genre_cnn.data.layout import GTZAN_GENRES, Clip, discover_genres, find_clips, find_genre_root
from genre_cnn.data.sources.folder import Folder
from genre_cnn.errors import SettingsError
from genre_cnn.paths import home


class Gtzan(Folder):
    """Args:
    data_dir: where GTZAN is, in any of its layouts (default: `<home>/data/gtzan`, see genre_cnn.paths.home).
    download: fetch GTZAN when data_dir holds no audio.
    """

    name = "gtzan"

    def __init__(self, data_dir: str | None = None, download: bool = True):
        super().__init__(data_dir or str(home() / "data" / "gtzan"))
        self.download, self.default_place = download, data_dir is None

    def ensure(self) -> None:
        if self.download and find_genre_root(self.data_dir) is None:
            from genre_cnn.data.download import download_gtzan

            download_gtzan(self.data_dir)
        super().ensure()

    def genres(self) -> list[str]:
        return list(GTZAN_GENRES)

    def clips(self) -> list[Clip]:
        return find_clips(self.genre_root(), tuple(self.genres()))

    def genre_root(self, data_dir: Path | None = None) -> Path:
        root = super().genre_root(data_dir)
        foreign = sorted(set(discover_genres(root)) - set(GTZAN_GENRES))
        if foreign:
            shown = ", ".join(foreign[:5]) + (", ..." if len(foreign) > 5 else "")
            raise SettingsError(f"--data.source.data_dir {self.data_dir} has genre folders that are not GTZAN's "
                                f"({shown}): for your own collection add --data.source Folder")
        return root
