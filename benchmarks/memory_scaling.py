"""Peak memory and throughput of CNN training as the dataset grows: features in RAM, read from disk, streamed.

    .venv/bin/python benchmarks/memory_scaling.py [--clips 1000 4000 16000] [--seconds 5] [--steps 60]

For each size, generated demo clips (genre_cnn.data.demo, `--seconds` long) are cached once, then each path
trains the CNN for `--steps` batches of 32 random windows in a fresh process (`--data.features.in_memory true`,
then `false`, then `--data.streaming true`: LitData shards, written beforehand), with the real DataModule and
Trainer: set-up (loading the features) and training alike. The
table gives each process's peak RSS (ru_maxrss), the training windows/s after the first 10 steps, and what the
training loader alone takes a batch (50 batches before training). Data and
cache go under --root (default: a temporary folder, removed at the end).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

GENRES = 4  # the demo's four synthetic genres


PATHS = {"ram": "in RAM", "disk": "from disk", "stream": "streamed (LitData)"}


def data_module(root: Path, clips: int, seconds: float, path: str | None):
    from genre_cnn.data.sources.demo import Demo
    from genre_cnn.data.store import FeatureStore
    from genre_cnn.training.datamodule import GenreDataModule

    return GenreDataModule(Demo(str(root / f"demo-{clips}"), clips // GENRES, seconds),
                           FeatureStore(clip_seconds=seconds, in_memory=None if path is None else path == "ram"),
                           window_seconds=3.0, batch_size=32, streaming=path == "stream")


def one(root: Path, clips: int, seconds: float, path: str, steps: int) -> dict:
    """Trains for `steps` batches in this process; its peak RSS and windows/s."""
    import lightning as L
    import torch

    from genre_cnn.models import families
    from genre_cnn.training.lit import build_module

    torch.set_num_threads(os.cpu_count() or 1)

    class Timer(L.Callback):
        start = 0.0

        def on_train_batch_start(self, trainer, module, batch, i):
            if trainer.global_step == 10:  # steps, not batches of an epoch: a small set's epoch ends before --steps
                self.start = time.perf_counter()

    dm = data_module(root, clips, seconds, path)
    dm.setup("fit")
    batches = iter(dm.train_dataloader())
    next(batches)
    start = time.perf_counter()
    for _ in range(50):  # the loader alone: what reading the features costs a batch
        next(batches)
    loader_ms = (time.perf_counter() - start) / 50 * 1000
    timer = Timer()
    model = build_module(families.get("cnn"), dm.genres, dm.frontend, {})
    trainer = L.Trainer(accelerator="cpu", max_steps=steps, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, callbacks=[timer])
    trainer.fit(model, datamodule=dm)
    seconds_taken = time.perf_counter() - timer.start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MB
    return {"path": path, "peak_rss_mb": peak, "windows_per_s": (steps - 10) * 32 / seconds_taken,
            "features_mb": dm.clipset.features.nbytes / 2**20, "loader_ms": loader_ms}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, nargs="+", default=[1000, 4000, 16000])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--root", type=Path, default=None)
    parser.add_argument("--paths", nargs="+", choices=list(PATHS), default=list(PATHS))
    parser.add_argument("--one", nargs=2, metavar=("CLIPS", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    root = args.root or Path(tempfile.mkdtemp(prefix="memory_scaling-"))
    os.environ["GENRE_CNN_HOME"] = str(root)  # the cache too goes under root (and to the processes started here)
    if args.one:
        print(json.dumps(one(root, int(args.one[0]), args.seconds, args.one[1], args.steps)))
        return
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, {platform.python_version()}; "
          f"{args.seconds:g}-s clips, {args.steps} steps of 32 windows")
    rows = []
    try:
        for clips in args.clips:
            start = time.time()
            data_module(root, clips, args.seconds, None).prepare_data()  # generates and caches once
            print(f"{clips} clips generated and cached in {time.time() - start:.0f} s", flush=True)
            if "stream" in args.paths:
                start = time.time()
                data_module(root, clips, args.seconds, "stream").prepare_data()  # the shards, once
                print(f"  their training clips written as LitData shards in {time.time() - start:.0f} s", flush=True)
            for path in args.paths:
                out = subprocess.run([sys.executable, __file__, "--root", str(root), "--seconds", str(args.seconds),
                                      "--steps", str(args.steps), "--one", str(clips), path],
                                     capture_output=True, text=True, check=True)
                rows.append({"clips": clips, **json.loads(out.stdout.strip().splitlines()[-1])})
                print(rows[-1], flush=True)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)
    print("\n| clips | features (MB) | path | peak RSS (MB) | windows/s | loader alone (ms a batch) |\n"
          "|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['clips']} | {r['features_mb']:.0f} | {PATHS[r['path']]} | {r['peak_rss_mb']:.0f} "
              f"| {r['windows_per_s']:.0f} | {r['loader_ms']:.1f} |")


if __name__ == "__main__":
    main()
