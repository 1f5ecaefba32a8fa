"""Accuracy on real music: first on music by artists the models never heard, then 5-fold CV on gtzan_mini.

    .venv/bin/python benchmarks/accuracy.py                    # both protocols, writes BENCHMARKS.md's tables
    .venv/bin/python benchmarks/accuracy.py --folds            # unseen artists only (prints, writes nothing)
    .venv/bin/python benchmarks/accuracy.py --seeds 0 1 --folds --print_only -- --models [cnn] --cnn.lr 3e-3
    .venv/bin/python benchmarks/accuracy.py --out runs/bench -- --resume true   # reuse what a call there finished

(1) Unseen artists: every system is trained on the 80 train + val clips of gtzan_mini's default split
(random 8:2 by track, data seed 0: the split of configs/mini.yaml; the systems of train.py carve their
validation from those 80 and refit on all 80) and tested on ../shared/gtzan_unseen: 90 clips of classical,
jazz and rock by artists gtzan_mini mostly does not hold. The models still choose among all ten genres; any
other answer counts as wrong. Reported: recall per genre and its mean over the three, mean +- sample std over
training seeds. (2) 5-fold CV by track on gtzan_mini's 100 clips: artist-overlapping (clips 00000-00009 of a
genre often share an artist, so a test fold holds artists the training folds hold too) and flattering.

Systems: every model that train.py returns (`results`: cnn, dense and musicnn by default), trained as a user would
with --recipe (configs/small_data.yaml), plus the peer: librosa features (benchmarks/peer.py) + RBF SVM
fitted on the same training clips. Each model is tested on gtzan_unseen through its tested checkpoint
(`results[name]["checkpoint"]`), in `predict_clips`.
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
GTZAN_UNSEEN = REPO.parent / "shared" / "gtzan_unseen"
NUM_FOLDS = 5
NAMES = {"cnn": "CNN, log-mel + chroma, 3-s windows averaged", "dense": "dense baseline, hand-crafted features",
         "musicnn": "musicnn transfer: dense head on the pretrained tagger's tag logits",
         "svm": "peer: librosa features + RBF SVM"}


def predict_clips(checkpoint: str | Path, files: list[Path]) -> list[str]:
    """The genre a trained checkpoint predicts for each whole file (the one place that uses the prediction API)."""
    from genre_cnn.inference.api import load_model, predict_files

    results, errors = predict_files(load_model(Path(checkpoint), "torch"), files, top_k=1, progress=False)
    if errors:
        raise SystemExit("cannot predict: " + "; ".join(errors))
    return [r["top"][0]["genre"] for r in results]


def recalls(truth: list[str], pred: list[str]) -> dict[str, float]:
    """Recall of each true genre (in sorted order) and their mean under "mean"."""
    out = {g: float(np.mean([p == g for t, p in zip(truth, pred, strict=True) if t == g])) for g in sorted(set(truth))}
    return {**out, "mean": float(np.mean(list(out.values())))}


def svm(features: dict[str, np.ndarray], fit: list[str], test: list[str]) -> tuple[list[str], float]:
    """The peer fitted on the `fit` keys, predicting the `test` keys; returns predictions and fit + predict seconds."""
    start = time.perf_counter()
    model = rbf_svm().fit(np.stack([features[k] for k in fit]), [k.split("/")[0] for k in fit])
    pred = list(model.predict(np.stack([features[k] for k in test])))
    return pred, time.perf_counter() - start


def fmt(values: list[float], pct: bool = True) -> str:
    """Mean +- sample standard deviation (ddof=1; 0 for a single value)."""
    m, s = float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
    return f"{100 * m:.1f}% +- {100 * s:.1f}" if pct else f"{m:.3f} +- {s:.3f}"


def paired(scores: dict[str, list[float]], unit: str) -> list[str]:
    """The CNN against every other system, paired by seed or fold: mean difference, paired t-test, sign test."""
    from scipy.stats import binomtest, ttest_rel

    lines = []
    for other in (s for s in scores if s != "cnn" and "cnn" in scores):
        diff = np.subtract(scores["cnn"], scores[other])
        wins, losses = int((diff > 0).sum()), int((diff < 0).sum())
        sign = binomtest(wins, wins + losses).pvalue if wins + losses else 1.0
        t = ttest_rel(scores["cnn"], scores[other]).pvalue if len(diff) > 1 and diff.std() > 0 else float("nan")
        floor = 2 * 0.5 ** len(diff)  # the smallest p a two-sided sign test can give with this many pairs
        verdict = ("significant at 5% by both tests" if max(t, sign) < 0.05 else
                   "not significant at 5%" if min(t, sign) >= 0.05 else
                   f"significant at 5% by the t-test only (the sign test cannot go below p = {floor:.3f} here)")
        lines.append(f"- CNN - {other}: {100 * diff.mean():+.1f} points over {len(diff)} {unit}s "
                     f"(CNN ahead in {wins}, behind in {losses}); paired t-test p = {t:.3f}, sign test p = {sign:.3f}: "
                     f"{verdict}.")
    return lines


def train_args(data_dir: Path, out: str, run: str, split: list[str], recipe: Path, extra: list[str]) -> list[str]:
    return ["--config", str(recipe), "--data.source", "Folder", "--data.source.data_dir", str(data_dir), *split,
            "--output_root", out, "--run_name", run, "--trainer.enable_progress_bar", "false", *extra]


def unseen(args, features: dict, out: str) -> tuple[list[str], dict]:
    """Protocol (1); returns the markdown lines and each system's per-seed mean recall."""
    from genre_cnn.data.layout import dataset_clips
    from genre_cnn.data.sources.folder import Folder
    from genre_cnn.data.splits import Split
    from genre_cnn.training.datamodule import GenreDataModule
    from genre_cnn.training.train import main as train

    clips = dataset_clips(args.unseen_dir)
    files, truth = [c.path for c in clips], [c.genre for c in clips]
    per: dict[str, list[dict]] = {}
    seconds: dict[str, float] = {}
    for seed in args.seeds:
        results = train(train_args(args.data_dir, out, f"unseen-seed{seed}", ["--data.split.kind", "random"],
                                   args.recipe, ["--seed", str(seed), *args.train_args]))
        for name, r in results.items():
            per.setdefault(name, []).append(recalls(truth, predict_clips(r["checkpoint"], files)))
            seconds[name] = seconds.get(name, 0.0) + r["train_seconds"]
        dm = GenreDataModule(Folder(str(args.data_dir)), split=Split("random"))
        dm.setup("test")
        pred, s = svm(features, dm.split["train"] + dm.split["val"], [c.key for c in clips])
        per.setdefault("svm", []).append(recalls(truth, pred))
        seconds["svm"] = seconds.get("svm", 0.0) + s
        print(f"seed {seed}: " + ", ".join(f"{n} {100 * v[-1]['mean']:.1f}%" for n, v in per.items()), flush=True)
    genres = sorted(set(truth))
    lines = [f"| system | mean recall over {', '.join(genres)} | " + " | ".join(genres) + " | per seed | train time, "
             "all seeds |", "|---" * (len(genres) + 4) + "|"]
    for name, runs in per.items():
        cells = [fmt([r[g] for r in runs]) for g in ["mean", *genres]]
        each = " ".join(f"{100 * r['mean']:.1f}" for r in runs)
        time_s = (f"{seconds[name]:.0f} s" if name != "svm" else
                  f"{args.peer_seconds:.0f} s features (190 clips) + {seconds[name]:.2f} s SVM")
        lines.append(f"| {NAMES.get(name, name)} | " + " | ".join(cells) + f" | {each} | {time_s} |")
    means = {n: [r["mean"] for r in runs] for n, runs in per.items()}
    note = ("- The seeds share one test set of 90 clips by few artists: these tests measure training noise, not how "
            "much the ranking would move on other unseen artists.")
    return [*lines, "", *paired(means, "seed"), note], means


def crossval(args, features: dict, out: str) -> list[str]:
    """Protocol (2): the 5-fold CV on gtzan_mini; returns the markdown lines."""
    from sklearn.metrics import accuracy_score, f1_score

    from genre_cnn.data.sources.folder import Folder
    from genre_cnn.data.splits import Split
    from genre_cnn.training.datamodule import GenreDataModule
    from genre_cnn.training.train import main as train

    scores: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = {}
    for fold in args.folds:
        split = ["--data.split.kind", "kfold", "--data.split.num_folds", str(NUM_FOLDS), "--data.split.fold", str(fold)]
        results = train(train_args(args.data_dir, out, f"fold{fold}", split, args.recipe, args.train_args))
        for name, r in results.items():
            scores.setdefault(name, {"acc": [], "f1": []})
            scores[name]["acc"].append(r["clip_acc"])
            scores[name]["f1"].append(r["macro_f1"])
            seconds[name] = seconds.get(name, 0.0) + r["train_seconds"]
        dm = GenreDataModule(Folder(str(args.data_dir)), split=Split("kfold", num_folds=NUM_FOLDS, fold=fold))
        dm.setup("test")
        pred, s = svm(features, dm.split["train"] + dm.split["val"], dm.split["test"])
        truth = [k.split("/")[0] for k in dm.split["test"]]
        scores.setdefault("svm", {"acc": [], "f1": []})
        scores["svm"]["acc"].append(accuracy_score(truth, pred))
        scores["svm"]["f1"].append(f1_score(truth, pred, average="macro"))
        seconds["svm"] = seconds.get("svm", 0.0) + s
        print(f"fold {fold}: " + ", ".join(f"{n} {100 * v['acc'][-1]:.0f}%" for n, v in scores.items()), flush=True)
    lines = ["| system | clip accuracy | macro-F1 | per fold | train time, all folds |", "|---|---|---|---|---|"]
    for name, v in scores.items():
        per_fold = " ".join(f"{100 * a:.0f}" for a in v["acc"])
        time_s = f"{seconds[name]:.0f} s" if name != "svm" else f"{seconds[name]:.2f} s SVM (features as above)"
        cells = f"{fmt(v['acc'])} | {fmt(v['f1'], pct=False)} | {per_fold} | {time_s}"
        lines.append(f"| {NAMES.get(name, name)} | {cells} |")
    return [*lines, "", *paired({n: v["acc"] for n, v in scores.items()}, "fold")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="training seeds of protocol (1)")
    parser.add_argument("--folds", type=int, nargs="*", default=list(range(NUM_FOLDS)),
                        help="folds of protocol (2); none to skip it")
    parser.add_argument("--data_dir", type=Path, default=GTZAN_MINI)
    parser.add_argument("--unseen_dir", type=Path, default=GTZAN_UNSEEN)
    parser.add_argument("--print_only", action="store_true", help="do not write BENCHMARKS.md")
    parser.add_argument("--out", type=Path, default=None,
                        help="keep the runs here (default: a temporary folder); with `-- --resume true` a second "
                             "call reuses the models a first call finished (same options) instead of training them")
    parser.add_argument("--recipe", type=Path, default=REPO / "configs" / "small_data.yaml",
                        help="the training config of train.py's models")
    parser.add_argument("train_args", nargs="*", help="extra train.py options after --, e.g. -- --cnn.lr 3e-3")
    args = parser.parse_args()
    for d in (args.data_dir, args.unseen_dir):
        if not (d / "genres").is_dir():
            raise SystemExit(f"{d}: no clips (expects ../shared/gtzan_mini and gtzan_unseen beside the checkout)")
    import torch

    from genre_cnn.data.layout import dataset_clips

    start = time.perf_counter()
    features = {c.key: librosa_features(load(c.path)) for c in dataset_clips(args.data_dir)}
    unseen_features = {c.key: librosa_features(load(c.path)) for c in dataset_clips(args.unseen_dir)}
    args.peer_seconds = time.perf_counter() - start
    features_all = {**features, **unseen_features}  # keys are genre/file names: the two sets do not collide
    assert len(features_all) == len(features) + len(unseen_features)
    device = f"GPU {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "no GPU"
    command = " ".join(["benchmarks/accuracy.py", *sys.argv[1:]])
    lines = [f"Command: `.venv/bin/python {command}`  ",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores, {device}; torch {torch.__version__}; "
             f"{time.strftime('%Y-%m-%d')}.  ", ""]
    with tempfile.TemporaryDirectory() as tmp:
        out = str(args.out or tmp)
        if args.seeds:
            table, _ = unseen(args, features_all, out)
            seeds = " ".join(map(str, args.seeds))
            lines += [f"**(1) Unseen artists**: trained on the 80 train + val clips of gtzan_mini's default split, "
                      f"tested on the {len(unseen_features)} clips of gtzan_unseen; recall per genre (a prediction of "
                      f"any other of the ten genres is wrong), mean +- sample std over training seeds {seeds} "
                      "(the SVM has no seed: its std is 0 by construction).", "", *table, ""]
        if args.folds:
            table = crossval(args, features, out)
            lines += [f"**(2) 5-fold CV on gtzan_mini, artist-overlapping**: stratified by track, folds "
                      f"{' '.join(map(str, args.folds))}, mean +- sample std over folds. Clips 00000-00009 of a genre "
                      "often share an artist, so a test fold holds artists the training folds hold too: this "
                      "measures recognising recordings more than genres, and flatters every system.", "", *table]
    block = "\n".join(lines).rstrip()
    print("\n" + block)
    if args.seeds and len(args.folds) == NUM_FOLDS and not args.print_only:
        path = REPO / "BENCHMARKS.md"
        text = path.read_text() if path.is_file() else "# Benchmarks\n"
        block = f"<!-- accuracy:start -->\n{block}\n<!-- accuracy:end -->"
        if "<!-- accuracy:start -->" in text:
            text = re.sub(r"<!-- accuracy:start -->.*<!-- accuracy:end -->", lambda _: block, text, flags=re.S)
        else:
            text += f"\n## Accuracy on real music\n\n{block}\n"
        path.write_text(text)
        print(f"written to {path}")


if __name__ == "__main__":
    sys.exit(main())
