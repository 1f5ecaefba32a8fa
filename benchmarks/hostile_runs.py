"""Hostile checkpoints and run settings, rerunnable: peak memory (RSS) of loading each tiny hostile checkpoint,
next to a genuine model's, and what train.py answers to each hostile setting.

    .venv/bin/python benchmarks/hostile_runs.py              # both tables
    .venv/bin/python benchmarks/hostile_runs.py --no-train   # checkpoints only

Each checkpoint is loaded by `genre_cnn.inference.predict.load_model` (the path of predict, sort, serve, plot and
export) in a fresh process, so its peak RSS is its own (a fresh Python with torch imported is the floor). Each setting
runs `python train.py` in a fresh process under a temporary --output_root; "folder left" says whether a run
folder was created.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GENRES = [f"g{i}" for i in range(10)]
CHECKPOINTS = {  # name: (class, hyperparameters, full weights (True) or one small tensor)
    "genuine CNN (defaults)": ("WindowClassifier", {}, True),
    "CNN widths [4096, 4096], kernel 63": ("WindowClassifier", {"widths": [4096, 4096], "kernel_size": 63}, False),
    "CNN widths [4096] x 16": ("WindowClassifier", {"widths": [4096] * 16}, False),
    "dense widths [4096] x 16": ("HandcraftedClassifier", {"widths": [4096] * 16}, False),
    "dense widths [4096] x 17": ("HandcraftedClassifier", {"widths": [4096] * 17}, False),
}
SETTINGS = [["--dense.lr", "-1"], ["--dense.dropout", "2"], ["--dense.widths", "[]"], ["--dense.weight_decay", "-1"],
            ["--dense.label_smoothing", "5"], ["--seed", "-1"], ["--data.features.clip_seconds", "100000"],
            ["--trainer.max_epochs", "1e21"], ["--cnn.widths", "[4096,4096]", "--cnn.kernel_size", "63"],
            ["--confg", "x"], ["--resume", "true", "--run_name", "nosuchrun"]]
LOAD = """import resource, sys, time
from genre_cnn.inference.predict import CheckpointError, load_model
start = time.time()
try:
    load_model(sys.argv[1])
    answer = "loaded"
except CheckpointError as err:
    answer = str(err).split(": ", 1)[1]
print(f"{time.time() - start:.2f}\\t{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f}\\t{answer}")
"""


def write_checkpoint(path: Path, cls: str, settings: dict, full: bool) -> None:
    import torch

    from genre_cnn.audio.frontend import FrontEndConfig
    from genre_cnn.models import families

    hp = {"genres": GENRES, "frontend": FrontEndConfig().as_dict(), **settings}
    state = ({f"model.{k}": v for k, v in families.of(cls).build(hp).state_dict().items()} if full
             else {"model.net.head.1.bias": torch.zeros(len(GENRES))})
    torch.save({"genre_cnn_class": cls, "hyper_parameters": hp, "state_dict": state}, path)


def checkpoints(folder: Path) -> None:
    print("| checkpoint | file | refused in | peak RSS | answer |\n|---|---|---|---|---|")
    for name, (cls, settings, full) in CHECKPOINTS.items():
        path = folder / f"{len(os.listdir(folder))}.ckpt"
        write_checkpoint(path, cls, settings, full)
        proc = subprocess.run([sys.executable, "-c", LOAD, str(path)], capture_output=True, text=True, cwd=REPO)
        seconds, rss, answer = (proc.stdout.strip().split("\t") + ["", "", proc.stderr[-200:]])[:3]
        print(f"| {name} | {path.stat().st_size / 1024:.1f} KB | {seconds} s | {rss} MB | {answer[:110]} |")


def settings(folder: Path) -> None:
    print("\n| train.py setting | exit | stderr lines | folder left | time | answer |\n|---|---|---|---|---|---|")
    for args in SETTINGS:
        root = Path(tempfile.mkdtemp(dir=folder))
        start = time.time()
        proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(REPO / "configs" / "demo.yaml"),
                               "--output_root", str(root), *args], capture_output=True, text=True, cwd=root,
                              env={**os.environ, "GENRE_CNN_HOME": str(root)})
        lines = proc.stderr.strip().splitlines()
        left = any((root / d).exists() for d in ("runs", "checkpoints"))
        print(f"| {' '.join(args)} | {proc.returncode} | {len(lines)} | {'yes' if left else 'no'} | "
              f"{time.time() - start:.1f} s | {(lines or [''])[-1][:100]} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--no-train", action="store_true", help="only the checkpoints")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        checkpoints(Path(tmp))
        if not args.no_train:
            settings(Path(tmp))


if __name__ == "__main__":
    main()
