"""The demo: generated clips of four synthetic "genres" (genre_cnn.data.demo): everything runs without a download.

    python -m genre_cnn.data.sources Demo /tmp/demo       # generates the clips, then lists them
    python train.py --data.source Demo --data.source.clips_per_genre 12     # configs/demo.yaml

Models trained on it are never chosen without `--ckpt` (genre_cnn.models.checkpoint.dataset_kind).
"""

from __future__ import annotations

from genre_cnn.data.layout import Clip, find_clips
from genre_cnn.data.sources.folder import Folder
from genre_cnn.errors import SettingsError
from genre_cnn.paths import home


class Demo(Folder):
    """Args:
    data_dir: where the clips are generated (default: `<home>/data/demo`).
    clips_per_genre: clips generated for each of the four genres.
    seconds: each clip's length.
    sample_rate: of the generated clips (Hz).
    """

    name = "demo"
    generated = True

    def __init__(self, data_dir: str | None = None, clips_per_genre: int = 12, seconds: float = 8.0,
                 sample_rate: int = 22050):
        super().__init__(data_dir or str(home() / "data" / "demo"))
        self.default_place = data_dir is None
        for option, value, low in (("clips_per_genre", clips_per_genre, 1), ("seconds", seconds, 1.0),
                                   ("sample_rate", sample_rate, 4000)):
            if value < low:
                raise SettingsError(f"--data.source.{option} must be >= {low}, got {value}")
        self.clips_per_genre, self.seconds, self.sample_rate = clips_per_genre, seconds, sample_rate

    def ensure(self) -> None:
        from genre_cnn.data.demo import make_demo_dataset

        make_demo_dataset(self.data_dir, self.clips_per_genre, self.seconds, self.sample_rate, seed=0)

    def genres(self) -> list[str]:
        from genre_cnn.data.demo import DEMO_GENRES

        return list(DEMO_GENRES)

    def clips(self) -> list[Clip]:
        return find_clips(self.genre_root(), tuple(self.genres()))
