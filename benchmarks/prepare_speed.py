"""What `prepare_data` costs once the feature cache is complete: Lightning calls it before every fit and test, and a
run of three families calls it ten times.

    .venv/bin/python benchmarks/prepare_speed.py                 # 400 generated 3.5-s clips, 4 genres
    .venv/bin/python benchmarks/prepare_speed.py --clips 2000

Builds the cache once (in a temporary GENRE_CNN_HOME), then times `GenreDataModule.prepare_data()` five times and
counts the cache entries it opens (np.load calls); then times the fingerprint that caching takes of each clip's
decoded audio (genre_cnn.data.duplicates.audio_fingerprint), on a 30-s clip.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=400)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="prepare_speed-"))
    os.environ["GENRE_CNN_HOME"] = str(work / "home")
    import soundfile as sf

    from genre_cnn.data.sources.folder import Folder
    from genre_cnn.data.store import FeatureStore
    from genre_cnn.training.datamodule import GenreDataModule

    rng, sr = np.random.default_rng(0), 22050
    for i in range(args.clips):
        genre = "abcd"[i % 4]
        (work / "clips" / genre).mkdir(parents=True, exist_ok=True)
        sf.write(work / "clips" / genre / f"{genre}.{i:05d}.wav", 0.1 * rng.standard_normal(int(3.5 * sr)), sr)
    dm = GenreDataModule(Folder(str(work / "clips")), FeatureStore(clip_seconds=3.5, workers=2))
    dm.prepare_data()  # builds the cache
    opened = []
    real = np.load
    np.load = lambda *a, **k: opened.append(a[0]) or real(*a, **k)
    times = []
    for _ in range(5):
        start = time.perf_counter()
        dm.prepare_data()
        times.append(time.perf_counter() - start)
    np.load = real
    print(f"prepare_data on a complete cache of {args.clips} clips: median {1000 * np.median(times):.1f} ms, "
          f"min {1000 * min(times):.1f} ms; {len(opened) // 5} cache entries opened per call")
    try:  # what caching adds to each clip to find copies of one recording
        from genre_cnn.data.duplicates import audio_fingerprint
    except ImportError:  # a version without it
        return
    y = (0.1 * rng.standard_normal(30 * sr)).astype(np.float32)  # (samples,) a decoded 30-s clip
    took = []
    for _ in range(21):
        start = time.perf_counter()
        audio_fingerprint(y)
        took.append(time.perf_counter() - start)
    print(f"audio_fingerprint of a 30-s clip: median {1000 * np.median(took):.2f} ms")


if __name__ == "__main__":
    main()
