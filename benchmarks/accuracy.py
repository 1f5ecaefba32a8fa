"""Accuracy on real music: 5-fold cross-validation by track on ../shared/gtzan_mini (100 GTZAN clips).

    .venv/bin/python benchmarks/accuracy.py                  # all folds, writes BENCHMARKS.md's accuracy table
    .venv/bin/python benchmarks/accuracy.py --folds 0 1      # some folds only, prints and writes nothing else

Every system sees the same folds (stratified by track, seed 0): (a) the CNN and (b) the dense baseline,
trained by `train.py` as a user would, with configs/small_data.yaml (validation carved from each fold's
training part and used to watch the run, then a refit on train + val; the test part is never seen),
and (c) a plain peer measured in the same run: librosa features (benchmarks/peer.py) + scikit-learn RBF
SVM, trained on the fold's train + validation tracks. Clip-level accuracy and macro-F1 are reported as
mean +- std over the folds.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from peer import librosa_features, load, rbf_svm

REPO = Path(__file__).resolve().parents[1]
GTZAN_MINI = REPO.parent / "shared" / "gtzan_mini"
NUM_FOLDS = 5


def svm_fold(dm, features: dict[str, np.ndarray]) -> tuple[float, float]:
    """The peer on one fold: fit on train + val, test on test. Returns (accuracy, macro-F1)."""
    from sklearn.metrics import accuracy_score, f1_score

    genre = {k: k.split("/")[0] for k in features}
    fit = dm.split["train"] + dm.split["val"]
    model = rbf_svm().fit(np.stack([features[k] for k in fit]), [genre[k] for k in fit])
    pred = model.predict(np.stack([features[k] for k in dm.split["test"]]))
    truth = [genre[k] for k in dm.split["test"]]
    return accuracy_score(truth, pred), f1_score(truth, pred, average="macro")


def fmt(values: list[float], pct: bool = True) -> str:
    m, s = float(np.mean(values)), float(np.std(values))
    return f"{100 * m:.1f}% +- {100 * s:.1f}" if pct else f"{m:.3f} +- {s:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--folds", type=int, nargs="*", default=list(range(NUM_FOLDS)))
    parser.add_argument("--data_dir", type=Path, default=GTZAN_MINI)
    parser.add_argument("--print_only", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--recipe", type=Path, default=REPO / "configs" / "small_data.yaml",
                        help="the training config of (a) and (b)")
    parser.add_argument("train_args", nargs="*", help="extra train.py options after --, e.g. -- --cnn.lr 3e-3")
    args = parser.parse_args()
    if not (args.data_dir / "genres").is_dir():
        raise SystemExit(f"{args.data_dir}: no clips (expects ../shared/gtzan_mini beside the checkout)")
    from genre_cnn.audio import dataset_clips
    from genre_cnn.datamodule import GenreDataModule
    from genre_cnn.train import main as train

    clips = dataset_clips(args.data_dir)
    start = time.time()
    features = {c.key: librosa_features(load(c.path)) for c in clips}
    peer_features_s = time.time() - start
    scores: dict[str, dict[str, list[float]]] = {s: {"acc": [], "f1": []} for s in ("cnn", "dense", "svm")}
    seconds = {"cnn": 0.0, "dense": 0.0}
    with tempfile.TemporaryDirectory() as out:
        for fold in args.folds:
            common = ["--data.dataset", "folder", "--data.data_dir", str(args.data_dir), "--data.split", "kfold",
                      "--data.num_folds", str(NUM_FOLDS), "--data.fold", str(fold)]
            results = train(["--config", str(args.recipe), *common, "--output_root", out, "--run_name", f"fold{fold}",
                             "--trainer.enable_progress_bar", "false", *args.train_args])
            dm = GenreDataModule(dataset="folder", data_dir=str(args.data_dir), split="kfold", num_folds=NUM_FOLDS,
                                 fold=fold)
            dm.setup("test")
            for name in results:
                scores[name]["acc"].append(results[name]["clip_acc"])
                scores[name]["f1"].append(results[name]["macro_f1"])
                seconds[name] += results[name]["train_seconds"]
            acc, f1 = svm_fold(dm, features)
            scores["svm"]["acc"].append(acc)
            scores["svm"]["f1"].append(f1)
            print(f"fold {fold}: " + ", ".join(f"{s} {100 * v['acc'][-1]:.0f}%" for s, v in scores.items() if v["acc"]),
                  flush=True)

    names = {"cnn": "(a) CNN, log-mel + chroma, 3-s windows averaged",
             "dense": "(b) dense baseline, hand-crafted features",
             "svm": "(c) peer: librosa features + RBF SVM"}
    folds = " ".join(map(str, args.folds))
    lines = [
        f"Command: `.venv/bin/python benchmarks/accuracy.py{' --folds ' + folds if len(args.folds) < NUM_FOLDS else ''}"
        f"{' --recipe ' + str(args.recipe) if args.recipe != REPO / 'configs' / 'small_data.yaml' else ''}"
        f"{' -- ' + ' '.join(args.train_args) if args.train_args else ''}`  ",
        f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, no GPU; torch {__import__('torch').__version__}; "
        f"{time.strftime('%Y-%m-%d')}.  ",
        f"Data: {len(clips)} clips of gtzan_mini, stratified {NUM_FOLDS}-fold CV by track, folds {folds}; "
        "the test part of a fold is never used for training, early stopping or tuning.",
        "",
        "| system | clip accuracy (mean +- std) | macro-F1 | per fold | train time |",
        "|---|---|---|---|---|",
    ]
    for s, v in scores.items():
        if not v["acc"]:
            continue
        per_fold = " ".join(f"{100 * a:.0f}" for a in v["acc"])
        time_s = f"{seconds[s]:.0f} s" if s in seconds else f"{peer_features_s:.0f} s features + < 1 s SVM"
        lines.append(f"| {names[s]} | {fmt(v['acc'])} | {fmt(v['f1'], pct=False)} | {per_fold} | {time_s} |")
    table = "\n".join(lines)
    print("\n" + table)
    if len(args.folds) == NUM_FOLDS and not args.print_only:
        path = REPO / "BENCHMARKS.md"
        text = path.read_text() if path.is_file() else "# Benchmarks\n"
        block = f"<!-- accuracy:start -->\n{table}\n<!-- accuracy:end -->"
        if "<!-- accuracy:start -->" in text:
            text = re.sub(r"<!-- accuracy:start -->.*<!-- accuracy:end -->", lambda _: block, text, flags=re.S)
        else:
            text += f"\n## Accuracy on real music (gtzan_mini, 5-fold CV)\n\n{block}\n"
        path.write_text(text)
        print(f"written to {path}")


if __name__ == "__main__":
    sys.exit(main())
