"""`genre-cnn serve` speed: from upload to answer for one 30-s clip, over HTTP on localhost.

    .venv/bin/python benchmarks/serve_speed.py [--ckpt CKPT] [--file FILE]

Serves the app on a free localhost port (in this process, a background thread), posts the file to
/api/analyse once as a warm-up, then 5 times, and prints the median wall time from the start of the upload
to the parsed JSON answer (audio decoding, front end, every window, the two PNGs, the JSON), and the
median time of the model adapter `analyse` alone, with the machine and its load average. Default: the model
`genre-cnn serve` answers with, on a real 30-s GTZAN clip of ../shared/gtzan_mini.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

CLIP = Path(__file__).resolve().parents[2] / "shared" / "gtzan_mini" / "genres" / "jazz" / "jazz.00005.wav"


def main() -> None:
    import torch

    from genre_cnn.app.serve import make_app, serve_in_thread
    from genre_cnn.app.serve_analysis import analyse
    from genre_cnn.inference.session import Predictor

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None)
    parser.add_argument("--file", type=Path, default=CLIP)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    model = Predictor.open(args.ckpt, "torch")  # as `genre-cnn serve` opens it
    url, stop = serve_in_thread(make_app(model))
    body = args.file.read_bytes()
    times, answer = [], {}
    try:
        for run in range(args.runs + 1):  # the first one warms up
            req = urllib.request.Request(f"{url}/api/analyse?name={args.file.name}", data=body, method="POST")
            start = time.perf_counter()
            with urllib.request.urlopen(req, timeout=120) as resp:
                answer = json.loads(resp.read())
            if run:
                times.append(time.perf_counter() - start)
    finally:
        stop()
    def time_adapter() -> list[float]:
        runs = []
        for _ in range(args.runs):
            start = time.perf_counter()
            analyse(model, args.file)
            runs.append(time.perf_counter() - start)
        return runs

    with ThreadPoolExecutor(1) as pool:  # a worker thread, as in the server (torch's threading differs there)
        adapter = pool.submit(time_adapter).result()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    top = max(zip(answer["probabilities"], answer["genres"]))
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores ({cpu}), torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    print(f"model: {answer['model']} ({model.checkpoint}); file: {args.file.name}, {answer['duration']:.1f} s, "
          f"{len(body) / 1e6:.2f} MB, {len(answer['window_times'])} windows; top genre {top[1]} {100 * top[0]:.1f}%")
    print(f"upload to answer: {1000 * statistics.median(times):.0f} ms (median of {args.runs}; "
          f"min {1000 * min(times):.0f}, max {1000 * max(times):.0f})")
    print(f"of which the adapter `analyse` (decoding, front end, windows): {1000 * statistics.median(adapter):.0f} ms;"
          " the rest is the two PNGs, JSON and HTTP")


if __name__ == "__main__":
    main()
