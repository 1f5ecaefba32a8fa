"""The demo: generated clips of four synthetic "genres" (genre_cnn.data.demo): everything runs without a download.

    python -m genre_cnn.data.sources demo /tmp/demo       # generates the clips, then lists them

Models trained on it are never chosen without `--ckpt` (genre_cnn.models.checkpoint.dataset_kind).
"""

from __future__ import annotations

from pathlib import Path

from genre_cnn.data.sources.folder import Folder


class Demo(Folder):
    """Args: data_dir, demo_clips_per_genre, clip_seconds (each clip's length), sample_rate (Hz)."""

    name = "demo"

    def __init__(self, data_dir: Path, demo_clips_per_genre: int = 12, clip_seconds: float = 8.0,
                 sample_rate: int = 22050):
        super().__init__(data_dir)
        self.clips_per_genre, self.seconds, self.sample_rate = demo_clips_per_genre, clip_seconds, sample_rate

    def ensure(self) -> None:
        from genre_cnn.data.demo import make_demo_dataset

        make_demo_dataset(self.data_dir, self.clips_per_genre, self.seconds, self.sample_rate, seed=0)

    def genres(self) -> list[str]:
        from genre_cnn.data.demo import DEMO_GENRES

        return list(DEMO_GENRES)
