"""Prediction speed on CPU: model time for one 30-s clip, and `genre-cnn predict` start-to-answer.

    .venv/bin/python benchmarks/predict_speed.py [--ckpt CKPT] [--file FILE]

Model time is `predict_waveform` alone (front end + every half-overlapping 3-s window + average), the
median of 20 runs after a warm-up, with torch's default threads. Start-to-answer is the wall time of
`genre-cnn predict FILE --json` as a fresh process (Python start, imports, checkpoint, audio, model),
the median of 5 runs. Default: the CNN of the latest run, on a real 30-s GTZAN clip.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

CLIP = Path(__file__).resolve().parents[2] / "shared" / "gtzan_mini" / "genres" / "jazz" / "jazz.00005.wav"


def main() -> None:
    import torch

    from genre_cnn.audio import load_audio
    from genre_cnn.predict import latest_checkpoint, load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None)
    parser.add_argument("--file", type=Path, default=CLIP)
    args = parser.parse_args()
    ckpt = args.ckpt or latest_checkpoint()
    model = load_model(ckpt)
    y = torch.from_numpy(load_audio(args.file, model.sample_rate))  # (samples,)
    model.predict_waveform(y)
    times = []
    for _ in range(20):
        start = time.perf_counter()
        model.predict_waveform(y)
        times.append(time.perf_counter() - start)
    model_ms = 1000 * statistics.median(times)

    walls = []
    for _ in range(5):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "genre_cnn.cli", "predict", str(args.file), "--json"], check=True,
                       capture_output=True)
        walls.append(time.perf_counter() - start)

    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"model: {type(model).__name__} ({ckpt}); file: {args.file.name}, {len(y) / model.sample_rate:.1f} s")
    print(f"model time for the whole clip: {model_ms:.1f} ms (median of 20)")
    print(f"genre-cnn predict, start to answer: {statistics.median(walls):.2f} s (median of 5)")


if __name__ == "__main__":
    main()
