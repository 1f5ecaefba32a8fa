"""Throughput on a music library, and what `--max-windows` costs in accuracy.

    .venv/bin/python benchmarks/library_speed.py --ckpt CKPT [--tracks 50] [--dir /tmp/genre_cnn_library]
    .venv/bin/python benchmarks/library_speed.py --ckpt CKPT --accuracy [--windows 1 2 4 8]

Speed: builds (once, then reuses) a folder of --tracks full-length tracks, each 4 minutes of eight
consecutive gtzan_mini clips of one genre, half MP3 (libsndfile >= 1.1 writes it) and half FLAC. Then, in one
run, tracks/s of:
  - today's way: `predict_files` with the PyTorch model in this process, one file at a time (model load excluded);
  - `genre-cnn predict DIR --json` (ONNX Runtime, one worker per core), as a fresh process, start included;
  - the same with `--max-windows 8`;
  - `genre-cnn sort DIR DEST` into an empty DEST, with every window and with `--max-windows 8`.
Accuracy: top-1 accuracy with every window and with N evenly spaced windows, on the real 30-s clips of
../shared/gtzan_unseen (artists the gtzan_mini models never heard) and of ../shared/gtzan_mini (seen in
training by a gtzan_mini model: an agreement check more than an accuracy), and how often the N-window answer
equals the every-window answer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's genre_cnn, whatever is installed
SHARED = REPO.parent / "shared"


def make_library(folder: Path, tracks: int) -> list[Path]:
    import soundfile as sf

    from genre_cnn.data.layout import dataset_clips

    clips = dataset_clips(SHARED / "gtzan_mini")
    by_genre: dict[str, list[Path]] = {}
    for c in clips:
        by_genre.setdefault(c.genre, []).append(c.path)
    genres = sorted(by_genre)
    files = []
    for i in range(tracks):
        genre = genres[i % len(genres)]
        path = folder / f"{genre} {i:03d}.{'mp3' if i % 2 == 0 else 'flac'}"
        files.append(path)
        if path.is_file():
            continue
        pool = by_genre[genre]
        parts = [sf.read(pool[(i // len(genres) + k) % len(pool)], dtype="float32")[0] for k in range(8)]
        folder.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        sf.write(tmp, np.concatenate(parts), 22050, format=path.suffix[1:].upper())
        tmp.rename(path)
    return files


def cli_rate(args: list[str], n: int) -> tuple[float, float]:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "genre_cnn.app.cli", *args, "--no-progress"], check=True, cwd=REPO,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    return n / seconds, seconds


def speed(ckpt: Path, folder: Path, tracks: int) -> None:
    from genre_cnn.inference.api import predict_files
    from genre_cnn.inference.session import Predictor

    files = make_library(folder, tracks)
    Predictor.open(ckpt)  # its ONNX graph made once, before timing
    model = Predictor.open(ckpt, "torch")
    start = time.perf_counter()
    results, errors = predict_files(model, files, progress=False)
    base = len(files) / (time.perf_counter() - start)
    assert len(results) == len(files), errors
    rows = [("predict_files, PyTorch, one process, one file at a time (today)", base, len(files) / base)]
    common = ["--ckpt", str(ckpt)]
    rows.append(("genre-cnn predict DIR (ONNX, workers)", *cli_rate(["predict", str(folder), "--json", *common],
                                                                     len(files))))
    rows.append(("genre-cnn predict DIR --max-windows 8", *cli_rate(
        ["predict", str(folder), "--json", "--max-windows", "8", *common], len(files))))
    for extra in ([], ["--max-windows", "8"]):
        with tempfile.TemporaryDirectory(dir=folder.parent) as dest:
            rows.append((f"genre-cnn sort DIR DEST {' '.join(extra)}".rstrip(), *cli_rate(
                ["sort", str(folder), dest, *extra, *common], len(files))))
    print(f"{len(files)} tracks of 4 min (half MP3, half FLAC) in {folder}; model {ckpt}")
    print(f"machine: {os.cpu_count()} CPU cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    for name, rate, seconds in rows:
        print(f"  {name:<66} {rate:6.2f} tracks/s  ({seconds:6.1f} s, {rate / base:4.1f}x today)")


def accuracy(ckpt: Path, windows: list[int]) -> None:
    from genre_cnn.data.layout import dataset_clips
    from genre_cnn.inference.session import Predictor

    predictor = Predictor.open(ckpt)
    print(f"model {predictor.description}; windows of a 30-s clip: every one (19 for the CNN) vs N")
    for name in ("gtzan_unseen", "gtzan_mini"):
        clips = [c for c in dataset_clips(SHARED / name) if c.genre in predictor.genres]
        answers = {}
        for n in [None, *windows]:
            answers[n] = [predictor.predict_file(c.path, 1, n)["top"][0]["genre"] for c in clips]
        truth = [c.genre for c in clips]
        for n, got in answers.items():
            acc = np.mean([g == t for g, t in zip(got, truth)])
            same = np.mean([g == a for g, a in zip(got, answers[None])])
            print(f"  {name} ({len(clips)} clips), {'every window' if n is None else f'{n} windows':>13}: "
                  f"accuracy {acc:6.1%}, same answer as every window {same:6.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None, help="the model (default: the default model)")
    parser.add_argument("--tracks", type=int, default=50)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "genre_cnn_library")
    parser.add_argument("--accuracy", action="store_true", help="measure --max-windows' effect on accuracy")
    parser.add_argument("--windows", type=int, nargs="+", default=[1, 2, 4, 8])
    args = parser.parse_args()
    from genre_cnn.inference.session import choose_checkpoint

    ckpt, _ = choose_checkpoint(args.ckpt)
    if args.accuracy:
        accuracy(ckpt, args.windows)
    else:
        speed(ckpt, args.dir, args.tracks)


if __name__ == "__main__":
    main()
