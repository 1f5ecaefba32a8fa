"""Feature-cache build speed on ../shared/gtzan_mini (100 real clips), beside a plain librosa loop.

    .venv/bin/python benchmarks/cache_speed.py [--clips 100] [--workers 2]

Both compute the same kinds of features per clip: 128-bin log-mel + 12-bin chroma and a hand-crafted vector
(centroid, bandwidth, roll-off, flatness, ZCR, RMS, contrast, MFCC, chroma, tempo), chroma with the tuning
fixed at A440 on both sides (the peer is called with tuning=0.0: librosa would otherwise estimate each clip's
tuning, which genre_cnn does not). They are not bit-identical: the peer takes MFCCs, tempo and the rest from
its own STFTs of the waveform, and reports std where genre_cnn stores variance.
genre_cnn's cache uses one torch STFT shared by all features and `--workers` processes (each process starts by
importing torch and librosa, about 2.5 s here: the marginal rate, from a second build of a fifth of the clips,
leaves that out, as a 1000-clip build nearly does); the plain loop (peer.py) calls librosa's feature functions
on the waveform one after another, in one process, as most tutorials do, and also computes the log-mel
spectrogram. The two runs use different numbers of processes, so rates per process are printed too: the
speed-up that is not just more cores.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

from peer import librosa_features, load


def plain_loop(path: Path) -> None:
    """What a plain script computes per clip: the log-mel and chroma tensor, and the hand-crafted vector."""
    import librosa

    y = load(path)
    librosa.power_to_db(librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=512, n_mels=128))
    librosa_features(y, tuning=0.0)  # chroma is among these, tuned as genre_cnn's

GTZAN_MINI = Path(__file__).resolve().parents[2] / "shared" / "gtzan_mini"


def main() -> None:
    from genre_cnn.data.cache import FeatureSettings, build_cache
    from genre_cnn.data.layout import DataError, dataset_clips

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=100)
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--data_dir", type=Path, default=GTZAN_MINI)
    args = parser.parse_args()
    try:
        clips = dataset_clips(args.data_dir)[: args.clips]
    except DataError as err:
        raise SystemExit(f"error: {err} (expects ../shared/gtzan_mini beside the checkout)") from None
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; {len(clips)} clips")

    def build(subset) -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as tmp:
            start = time.perf_counter()
            build_cache(subset, Path(tmp), FeatureSettings(), workers=args.workers, progress=False)
            took = time.perf_counter() - start
            start = time.perf_counter()
            build_cache(subset, Path(tmp), FeatureSettings(), workers=args.workers, progress=False)
            return took, time.perf_counter() - start

    cache_s, rerun_s = build(clips)
    few = max(1, len(clips) // 5)
    few_s, _ = build(clips[:few])
    steady = (len(clips) - few) / (cache_s - few_s)  # the marginal rate, start-up excluded
    plain_loop(clips[0].path)  # librosa's first call compiles numba kernels: keep that out of the loop
    start = time.perf_counter()
    for clip in clips:
        plain_loop(clip.path)
    plain_s = time.perf_counter() - start
    workers = max(1, min(args.workers or os.cpu_count() or 1, len(clips)))  # as build_cache counts them
    plain = len(clips) / plain_s
    print(f"genre_cnn cache, {workers} processes (start-up included): {len(clips) / cache_s:6.1f} clips/s "
          f"({cache_s:.1f} s), {len(clips) / cache_s / workers:6.1f} clips/s per process")
    print(f"genre_cnn cache, marginal rate ({len(clips)} vs {few} clips, start-up excluded): {steady:6.1f} clips/s, "
          f"{steady / workers:6.1f} clips/s per process")
    print(f"genre_cnn cache, second run (all cached):          {rerun_s:6.2f} s")
    print(f"plain librosa loop, 1 process:                     {plain:6.1f} clips/s ({plain_s:.1f} s)")
    print(f"per process, marginal genre_cnn vs plain loop:     {steady / workers / plain:6.1f}x "
          f"(all {workers} processes: {steady / plain:.1f}x)")


if __name__ == "__main__":
    main()
