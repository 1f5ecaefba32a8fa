"""Throughput of `genre-cnn predict --ray` (Ray Data, local) against the one-machine worker processes, in tracks/s.

    .venv/bin/python benchmarks/ray_speed.py [--tracks 40] [--ckpt genre_cnn/ready/musicnn_gtzan_mini.ckpt]

On the first --tracks real 30-s clips of ../shared/gtzan_mini, with the model `genre-cnn predict` would use for
--ckpt (its ONNX graph): one local Ray (`ray.init(num_cpus=2)`, started once, its start-up timed apart), then
`predict_on_ray` into a fresh results folder with 1 and with 2 actors (their start-up included), then the same
files through `Predictor.predict_many` (genre_cnn.inference.session) with 1 and 2 worker processes (their start-up
included). Each row is one run; the answers of every run are checked to be the same.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's genre_cnn, whatever is installed
GTZAN_MINI = REPO.parent / "shared" / "gtzan_mini"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tracks", type=int, default=40)
    parser.add_argument("--ckpt", type=Path, default=REPO / "genre_cnn" / "ready" / "musicnn_gtzan_mini.ckpt")
    args = parser.parse_args()
    if not (GTZAN_MINI / "genres").is_dir():
        sys.exit(f"ray_speed: the real clips are not at {GTZAN_MINI} (../shared/gtzan_mini beside the checkout)")
    import ray

    from genre_cnn.app.cluster import predict_on_ray
    from genre_cnn.app.cluster_results import read_results
    from genre_cnn.inference.session import Predictor

    clips = sorted((GTZAN_MINI / "genres").rglob("*.wav"))
    files = [str(p) for p in clips[:: max(1, len(clips) // args.tracks)][: args.tracks]]
    predictor = Predictor.open(args.ckpt, "onnx")
    load = os.getloadavg()[0]
    start = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    print(f"ray.init(num_cpus=2): {time.perf_counter() - start:.1f} s")
    answers, rows = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for workers in (1, 2):
            out = str(Path(tmp) / f"ray{workers}.parquet")
            start = time.perf_counter()
            predict_on_ray(predictor, files, out, workers=workers, progress=False)
            took = time.perf_counter() - start
            rows.append((f"--ray, {workers} actor(s)", took))
            answers[rows[-1][0]] = {r["file"]: r["top"][0]["genre"] for r in read_results(out)}
    ray.shutdown()
    for workers in (1, 2):
        start = time.perf_counter()
        out = list(predictor.predict_many([Path(f) for f in files], workers=workers))
        rows.append((f"worker processes, {workers}", time.perf_counter() - start))
        answers[rows[-1][0]] = {str(p): r["top"][0]["genre"] for p, r, _ in out}
    same = all(a == answers[rows[0][0]] for a in answers.values())
    print(f"{len(files)} real 30-s clips of gtzan_mini; model: {predictor.description}")
    print(f"machine: {os.cpu_count()} cores; load average at the start: {load:.2f}")
    for name, took in rows:
        print(f"{name:<26} {len(files) / took:5.2f} tracks/s ({took:.1f} s, start-up included)")
    print(f"same top genre for every file in every run: {same}")


if __name__ == "__main__":
    main()
