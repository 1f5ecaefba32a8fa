"""How long the feature cache takes to show its first clip: the wait before the progress bar moves.

    .venv/bin/python benchmarks/cache_startup.py [--clips 4] [--workers 2] [--kind spectral|musicnn]

Each measurement is a fresh Python process (as `python train.py` is) that builds the cache of the first `--clips`
clips of ../shared/gtzan_mini into a new folder; it prints the seconds from the process's start until the cache
module is imported, until the first clip is written, and until all are. "cold" gives the process an empty numba
cache (NUMBA_CACHE_DIR) and an empty project home (GENRE_CNN_HOME: musicnn's converted weights are made again),
as a fresh clone has; "warm" runs again with both kept.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

GTZAN_MINI = Path(__file__).resolve().parents[2] / "shared" / "gtzan_mini"

CHILD = """
import json, sys, threading, time
from pathlib import Path
started = time.time()
from genre_cnn.data.layout import dataset_clips
from genre_cnn.data.cache import FeatureSettings, build_cache
from genre_cnn.models.musicnn import MusicnnEmbeddings
imported = time.time() - started
clips, cache, kind, workers = dataset_clips(Path(sys.argv[1]))[: int(sys.argv[2])], Path(sys.argv[3]), sys.argv[4], \\
    int(sys.argv[5])
first = []

def watch():
    while not first:
        if any(cache.rglob("*.npz")):
            first.append(time.time() - started)
        time.sleep(0.05)

threading.Thread(target=watch, daemon=True).start()
settings = FeatureSettings(MusicnnEmbeddings()) if kind == "musicnn" else FeatureSettings()
build_cache(clips, cache, settings, workers=workers, progress=False)
done = time.time() - started
time.sleep(0.1)
print(json.dumps({"import": imported, "first": first[0] if first else done, "all": done}))
"""


def measure(args: argparse.Namespace, home: Path, numba: Path, cache: Path) -> dict:
    env = {**os.environ, "GENRE_CNN_HOME": str(home), "NUMBA_CACHE_DIR": str(numba)}
    proc = subprocess.run([sys.executable, "-c", CHILD, str(args.data_dir), str(args.clips), str(cache), args.kind,
                           str(args.workers)], env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the measured process failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--kind", choices=("spectral", "musicnn"), default="spectral")
    parser.add_argument("--data_dir", type=Path, default=GTZAN_MINI)
    args = parser.parse_args()
    if not (args.data_dir / "genres").is_dir():
        raise SystemExit(f"error: no clips at {args.data_dir} (expects ../shared/gtzan_mini beside the checkout)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.1f}; {args.clips} clips, {args.workers} workers, {args.kind} features")
    with tempfile.TemporaryDirectory() as tmp:
        home, numba = Path(tmp) / "home", Path(tmp) / "numba"
        for run in ("cold", "warm"):
            t = measure(args, home, numba, Path(tmp) / f"cache-{run}")
            print(f"{run}: imports {t['import']:5.1f} s, first clip written {t['first']:5.1f} s, "
                  f"all {args.clips} {t['all']:5.1f} s (from the process's start)")


if __name__ == "__main__":
    main()
