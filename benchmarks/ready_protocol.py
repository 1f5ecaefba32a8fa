"""How good is the ready model's recipe on music by artists it never heard? The half-split protocol, every system.

    .venv/bin/python benchmarks/ready_protocol.py                  # everything; results cached under --work
    .venv/bin/python benchmarks/ready_protocol.py --skip cnn       # the musicnn heads, dense and the SVM only
    .venv/bin/python benchmarks/ready_protocol.py --skip cnn svm dense --seeds 0 --heads 1   # a quick look

Data: every real clip we have, as configs/ready.yaml reads them (../shared/gtzan_mini, 100 clips of ten genres;
../shared/gtzan_unseen, 90 of classical, jazz and rock, numbers 00070-00099). Protocols:
  half A  train gtzan_mini + gtzan_unseen 00070-00084, test gtzan_unseen 00085-00099 (45 clips; ready.yaml's group B)
  half B  train gtzan_mini + gtzan_unseen 00085-00099, test gtzan_unseen 00070-00084 (45 clips; its group A)
  old     train the 80 train + val clips of gtzan_mini's default split, test all 90 of gtzan_unseen
  cv      5-fold cross-validation on gtzan_mini alone (80 train, 20 test clips a fold, stratified, seed 0):
          artists shared between train and test, so it flatters; reported beside the others, as mean +- std
GTZAN files an artist's clips under neighbouring numbers, so the halves keep most artists apart. Every system
chooses among all ten genres. Reported per system: accuracy and recall per genre over the test clips (three
genres), A and B pooled (90 clips), and per half.

Systems, fixed before running (nothing tuned on the test halves):
- musicnn heads, variants `HEADS`, each trained as `python train.py --config configs/ready.yaml` trains the ready
  model (the one LightningModule, genre_cnn.training.lit.GenreModule, 750 AdamW steps of 32 clips, `SEEDS`);
- dense baseline: the write-up's dense network on the cached hand-crafted vectors, trained the same way;
- cnn: `train.py --config configs/mini.yaml --refit false` on the same clips (split lists; validation: the last
  two gtzan_mini clips of each genre), seed 0; costs tens of minutes per half on 2 loaded cores (`--skip cnn`);
- the SVM peer (benchmarks/peer.py: librosa features + RBF SVM).
Also writes the ready head's out-of-fold calibration: ECE before/after temperature (fitted on one half's
out-of-fold predictions, scored on the other's) and docs/reliability.png.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
SHARED = REPO.parent / "shared"
UNSEEN = ("classical", "jazz", "rock")
BASE = {"embedding": "tags", "widths": [512, 256, 128, 64], "dropout": 0.5, "balanced": True, "schedule": "constant"}
STEPS, BATCH = 750, 32  # AdamW steps of 32 clips, as configs/ready.yaml
HEADS = {  # the first five decided before the first run, the next two before the second, the last before the third
    "dense-tags (the old recipe)": {**BASE, "balanced": False},
    "dense-tags, balanced": BASE,
    "dense-both, balanced": {**BASE, "embedding": "both"},
    "linear-tags, balanced": {**BASE, "widths": []},
    "linear-both, balanced": {**BASE, "embedding": "both", "widths": []},
    "dense-tags, balanced, 5 seeds ensembled": {**BASE, "members": 5},
    "dense-both, balanced, 5 seeds ensembled": {**BASE, "embedding": "both", "members": 5},
    "linear-both, balanced, 5 seeds ensembled": {**BASE, "embedding": "both", "widths": [], "members": 5},
}
SEEDS = (0, 1, 2)  # scores are the mean over these seeds of the head (of the ensembles starting at each)
CV = tuple(f"cv{i}" for i in range(5))  # the folds of the cross-validation on gtzan_mini
PROTOCOLS = ("A", "B", "old", *CV)


def scores(y: np.ndarray, pred: np.ndarray, genres: list[str]) -> dict:
    """Accuracy and recall of each of UNSEEN (the test genres) and their mean."""
    recall = {g: float(np.mean(pred[y == genres.index(g)] == genres.index(g))) for g in UNSEEN}
    return {"acc": float(np.mean(pred == y)), "mean_recall": float(np.mean(list(recall.values()))), **recall}


def line(name: str, s: dict) -> str:
    note = (f"sd {s['acc_std']:.1%} over seeds; ECE {s['ece_before']:.3f} -> {s['ece_after']:.3f}"
            if "ece_after" in s else "")
    return (f"| {name} | {s['acc']:.1%} | {s['mean_recall']:.1%} | " + " | ".join(f"{s[g]:.1%}" for g in UNSEEN)
            + f" | {note} |")


def protocols(keys: list[str], unseen: set[str], mini_train80: set[str]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{protocol: (train rows, test rows)} for every name of PROTOCOLS."""
    from sklearn.model_selection import StratifiedKFold

    from genre_cnn.data.splits import group_split

    groups = ready_config()["data"]["split"]["groups"]
    rows = {k: i for i, k in enumerate(keys)}
    halves = {}
    for name, fold in (("A", 1), ("B", 0)):  # half A tests gtzan_unseen 00085-00099: the config's group B
        split = group_split(keys, groups, fold)
        halves[name] = (np.array([rows[k] for k in split["train"]]), np.array([rows[k] for k in split["test"]]))
    old_train = np.array([i for i, k in enumerate(keys) if k in mini_train80])
    old_test = np.array([i for i, k in enumerate(keys) if k in unseen])
    parts = {**halves, "old": (old_train, old_test)}
    mini = np.array([i for i, k in enumerate(keys) if k not in unseen])
    folds = StratifiedKFold(len(CV), shuffle=True, random_state=0).split(mini, keys_genres([keys[i] for i in mini]))
    parts.update({name: (mini[train], mini[test]) for name, (train, test) in zip(CV, folds)})
    return parts


def ready_config() -> dict:
    import yaml

    return yaml.safe_load((REPO / "configs" / "ready.yaml").read_text())


def fit(family: str, settings: dict, x: np.ndarray, y: np.ndarray, genres: list[str], seed: int):
    """A GenreModule of `family` trained on vectors x (N, D), labels y (N,) as train.py trains the ready model:
    STEPS AdamW steps of BATCH shuffled clips, the scaler and class counts of these rows; in eval mode."""
    import lightning as L
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    from genre_cnn.audio.frontend import FrontEndConfig
    from genre_cnn.models import families
    from genre_cnn.training.lit import build_module

    L.seed_everything(seed, verbose=False)
    module = build_module(families.get(family), genres, FrontEndConfig(), settings)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    module.model.set_scaler(xt.double().mean(0), xt.double().std(0))
    module.set_class_counts(torch.bincount(yt, minlength=len(genres)))
    trainer = L.Trainer(max_steps=STEPS, max_epochs=-1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, DataLoader(TensorDataset(xt, yt), batch_size=BATCH, shuffle=True))
    return module.model.eval()


def out_of_fold(keys, y, x, genres, parts, head: dict, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The half-split protocol for one head: (test rows, their labels, their logits (rows, 1, n)), both halves."""
    import torch

    rows, logits = [], []
    for half in ("A", "B"):
        train, test = parts[half]
        model = fit("musicnn", head, x[train], y[train], genres, seed)
        with torch.no_grad():
            logits.append(model.window_logits(torch.from_numpy(x[test])).numpy())  # (rows, 1, n)
        rows.append(test)
    rows_all = np.concatenate(rows)
    return rows_all, y[rows_all], np.concatenate(logits)


def with_cv(result: dict[str, dict]) -> dict[str, dict]:
    """`result` with its per-fold entries cv0..cv4 replaced by "cv": the folds' mean accuracy and their std."""
    accs = [result.pop(fold)["acc"] for fold in CV]
    return {**result, "cv": {"acc": float(np.mean(accs)), "std": float(np.std(accs, ddof=1))}}


def cross_fitted(logits: np.ndarray, labels: np.ndarray, half: np.ndarray) -> dict:
    """Out-of-fold window logits (N, 1, n) of two halves (`half` (N,) 0 or 1): each half's probabilities under the
    temperature fitted on the other half. {"temperatures", "raw", "probs", "ece_before", "ece_after"}."""
    from genre_cnn.training.calibration import clip_probs, expected_calibration_error, fit_temperature

    calibrated, temps = np.zeros((len(labels), logits.shape[-1])), []
    for h in (0, 1):
        temps.append(fit_temperature(logits[half != h], labels[half != h]))
        calibrated[half == h] = clip_probs(logits[half == h], temps[-1])
    raw = clip_probs(logits, 1.0)
    return {"temperatures": temps, "raw": raw, "probs": calibrated, "labels": labels,
            "ece_before": expected_calibration_error(raw, labels),
            "ece_after": expected_calibration_error(calibrated, labels)}


def head_results(keys, y, x, genres, parts, heads: dict, seeds: tuple[int, ...]) -> dict[str, dict]:
    """{variant: {"A+B": scores and the cross-fitted ECE, "A": ..., "B": ..., "old": ...}}, each the mean over
    `seeds`."""
    import torch

    out = {}
    for name, head in heads.items():
        per: dict[str, list[dict]] = {}
        for seed in seeds:
            preds, logits = {}, {}
            for p in PROTOCOLS:
                train, test = parts[p]
                model = fit("musicnn", head, x[train], y[train], genres, seed)
                with torch.no_grad():
                    logits[p] = model.window_logits(torch.from_numpy(x[test])).numpy()  # (rows, 1, n)
                preds[p] = logits[p][:, 0].argmax(-1)
                per.setdefault(p, []).append(scores(y[test], preds[p], genres))
            ab = np.concatenate([parts["A"][1], parts["B"][1]])
            pooled = scores(y[ab], np.concatenate([preds["A"], preds["B"]]), genres)
            cal = cross_fitted(np.concatenate([logits["A"], logits["B"]]), y[ab],
                               np.repeat([0, 1], [len(parts["A"][1]), len(parts["B"][1])]))
            per.setdefault("A+B", []).append({**pooled, "ece_before": cal["ece_before"], "ece_after": cal["ece_after"]})
        out[name] = with_cv({p: {k: float(np.mean([s[k] for s in v])) for k in v[0]} for p, v in per.items()})
        out[name]["A+B"]["acc_std"] = float(np.std([s["acc"] for s in per["A+B"]], ddof=1)) if len(seeds) > 1 else 0.0
        ab = out[name]["A+B"]
        print(f"{name}: " + ", ".join(f"{p} {s['acc']:.1%}" for p, s in out[name].items())
              + f"; A+B sd {ab['acc_std']:.1%}, ECE {ab['ece_before']:.3f} -> {ab['ece_after']:.3f}", flush=True)
    return out


def svm_results(keys, y, paths: dict[str, Path], parts, work: Path) -> dict[str, dict]:
    from peer import librosa_features, load, rbf_svm

    cache = work / "peer_features.npy"
    if cache.is_file():
        feats = np.load(cache)
    else:
        feats = np.stack([librosa_features(load(paths[k])) for k in keys])  # (N, VALUES)
        np.save(cache, feats)
    out, preds = {}, {}
    for p in PROTOCOLS:
        train, test = parts[p]
        preds[p] = rbf_svm().fit(feats[train], y[train]).predict(feats[test])
        out[p] = scores(y[test], preds[p], sorted(set(keys_genres(keys))))
    ab = np.concatenate([parts["A"][1], parts["B"][1]])
    out["A+B"] = scores(y[ab], np.concatenate([preds["A"], preds["B"]]), sorted(set(keys_genres(keys))))
    return with_cv(out)


def keys_genres(keys: list[str]) -> list[str]:
    return [k.split("/")[0] for k in keys]


def dense_results(keys, y, genres, hand: np.ndarray, parts, seeds: tuple[int, ...]) -> dict[str, dict]:
    """The dense baseline: the write-up's dense network (dropout 0.3) on the cached 91-value hand-crafted vectors
    (the feature cache of train.py), standardised on the training rows, trained as the heads are (unweighted, as
    train.py trains it by default)."""
    import torch

    per: dict[str, list[dict]] = {}
    for seed in seeds:
        preds = {}
        for p in PROTOCOLS:
            train, test = parts[p]
            model = fit("dense", {}, hand[train], y[train], genres, seed)
            with torch.no_grad():
                preds[p] = model(torch.from_numpy(hand[test])).argmax(-1).numpy()
            per.setdefault(p, []).append(scores(y[test], preds[p], genres))
        ab = np.concatenate([parts["A"][1], parts["B"][1]])
        per.setdefault("A+B", []).append(scores(y[ab], np.concatenate([preds["A"], preds["B"]]), genres))
    return with_cv({p: {k: float(np.mean([s[k] for s in v])) for k in v[0]} for p, v in per.items()})


def family_results(keys, y, genres, parts, work: Path, families: list[str]) -> dict[str, dict]:
    """The CNN through train.py on split lists for halves A and B (cached per half in `work`)."""
    from genre_cnn.training.train import main as train_main

    preds: dict[str, dict[str, np.ndarray]] = {}
    for p in ("A", "B"):
        train, test = parts[p]
        lists = work / f"lists_{p}"
        lists.mkdir(parents=True, exist_ok=True)
        mini_keys = [keys[i] for i in train if "/gtzan_mini/" in keys[i]]
        val = {k for g in genres for k in sorted(k for k in mini_keys if k.startswith(g + "/"))[-2:]}
        for name, rows in (("train", [keys[i] for i in train if keys[i] not in val]), ("valid", sorted(val)),
                           ("test", [keys[i] for i in test])):
            (lists / f"{name}_filtered.txt").write_text("\n".join(rows) + "\n")
        for fam in families:
            done = work / f"result_{p}_{fam}.json"
            if not done.is_file():
                both = json.dumps([str(SHARED / "gtzan_mini"), str(SHARED / "gtzan_unseen")])
                res = train_main(["--config", str(REPO / "configs" / "mini.yaml"), "--refit", "false",
                                  "--data.source.data_dir", both, "--data.split.kind", "lists",
                                  "--data.split.lists_dir", str(lists), "--models", f"[{fam}]",
                                  "--output_root", str(work / "out"), "--trainer.enable_progress_bar", "false"])
                done.write_text(json.dumps(res[fam]))
            cm = np.array(json.loads(done.read_text())["confusion"])
            preds.setdefault(fam, {})[p] = cm
    out = {}
    for fam, cms in preds.items():
        out[fam] = {}
        for p, cm in [*cms.items(), ("A+B", sum(cms.values()))]:
            recall = {g: float(cm[genres.index(g), genres.index(g)] / cm[genres.index(g)].sum()) for g in UNSEEN}
            out[fam][p] = {"acc": float(np.trace(cm) / cm.sum()), "mean_recall": float(np.mean(list(recall.values()))),
                           **recall}
    return out


def calibration(keys, y, x, genres, parts, head: dict, out_png: Path) -> dict:
    """The ready head's temperature fitted on one half's out-of-fold logits and scored on the other's, both ways."""
    from genre_cnn.training.calibration import reliability

    rows, labels, logits = out_of_fold(keys, y, x, genres, parts, head, seed=0)
    res = cross_fitted(logits, labels, np.repeat([0, 1], [len(rows) // 2, len(rows) - len(rows) // 2]))
    raw, calibrated = res["raw"], res["probs"]
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 4.2), layout="constrained")
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="grey", lw=1, ls="--", label="perfect calibration")
    for probs, label in ((raw, f"T = 1, ECE {res['ece_before']:.3f}"),
                         (calibrated, f"fitted T, ECE {res['ece_after']:.3f}")):
        bins = reliability(probs, labels)
        ax.plot([b[0] for b in bins], [b[1] for b in bins], marker="o", label=label)
    ax.set(xlabel="top-genre probability (bin mean)", ylabel="accuracy in the bin", xlim=(0, 1), ylim=(0, 1.02),
           title="ready head, 90 out-of-fold clips")
    ax.legend(loc="upper left", fontsize=8)
    fig.savefig(out_png, dpi=110)
    return res


def main() -> None:
    from sklearn.model_selection import train_test_split

    from genre_cnn.audio.features import SpectralFeatures
    from genre_cnn.data.sources.folder import Folder
    from genre_cnn.data.store import FeatureStore
    from genre_cnn.models.families.musicnn import MusicnnClassifier as M

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/ready_protocol"), help="cache of slow results")
    parser.add_argument("--skip", nargs="*", default=[], choices=["heads", "cnn", "dense", "svm"])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--heads", type=int, default=len(HEADS), help="the first N variants of HEADS only")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    import torch

    torch.set_num_threads(1)  # batches of 32 small vectors: a second thread only adds contention
    start = time.time()
    cfg = ready_config()
    source = Folder(cfg["data"]["source"]["init_args"]["data_dir"])
    store = FeatureStore()
    store.prepare(source, M.features(None))
    clips = store.clipset(source, M.features(None), M.cached, M.pool)
    keys, y, x, genres = clips.keys, clips.labels, clips.features.astype(np.float32), clips.genres  # (N, 250)
    store.prepare(source, SpectralFeatures())
    hand = store.clipset(source, SpectralFeatures(), "hand")
    assert hand.keys == keys
    paths = {c.key: c.path for c in source.clips()}
    unseen = {k for k in keys if "/gtzan_unseen/" in k}
    mini = sorted(k for k in keys if k not in unseen)
    train80, _ = train_test_split(mini, test_size=0.2, stratify=keys_genres(mini), random_state=0)
    parts = protocols(keys, unseen, set(train80))
    seeds, heads = tuple(args.seeds), dict(list(HEADS.items())[:args.heads])
    results = {}
    if "heads" not in args.skip:
        results.update({f"musicnn {k}": v for k, v in head_results(keys, y, x, genres, parts, heads, seeds).items()})
    if "svm" not in args.skip:
        results["peer: librosa features + RBF SVM"] = svm_results(keys, y, paths, parts, args.work)
    if "dense" not in args.skip:
        results["dense baseline, hand-crafted features"] = dense_results(keys, y, genres,
                                                                         hand.features.astype(np.float32), parts, seeds)
    if "cnn" not in args.skip:
        results.update(family_results(keys, y, genres, parts, args.work, ["cnn"]))
    print(f"\nmachine: 2 cores, no GPU; {time.time() - start:.0f} s\n")
    for p, title in (("A+B", "half-split, A and B pooled (90 test clips)"), ("A", "half A"), ("B", "half B"),
                     ("old", "old protocol: 80 gtzan_mini clips -> 90 gtzan_unseen")):
        print(f"{title}\n| system | accuracy | mean recall | {' | '.join(UNSEEN)} | |\n|---|---|---|---|---|---|---|")
        for name, r in results.items():
            if p in r:
                print(line(name, r[p]))
        print()
    print("5-fold CV on gtzan_mini alone (all ten genres; artists shared between folds)\n| system | accuracy, mean "
          "+- std over folds |\n|---|---|")
    for name, r in results.items():
        print(f"| {name} | " + (f"{r['cv']['acc']:.1%} +- {r['cv']['std']:.1%} |" if "cv" in r else "not run |"))
    print()
    cal = calibration(keys, y, x, genres, parts, cfg["musicnn"], REPO / "docs" / "reliability.png")
    print(f"ready head calibration (out-of-fold, cross-fitted): temperatures {cal['temperatures'][0]:.2f} / "
          f"{cal['temperatures'][1]:.2f}, ECE {cal['ece_before']:.3f} -> {cal['ece_after']:.3f}; docs/reliability.png")
    probs, labels = cal["probs"], cal["labels"]
    right = probs.argmax(1) == labels
    for threshold in (0.5, 0.6, 0.7, 0.8, 0.9):
        unsure = probs.max(1) < threshold
        print(f"  --min-confidence {threshold}: wrong answers to _unsure/ {np.sum(unsure & ~right)}/{np.sum(~right)}, "
              f"right answers kept {np.sum(~unsure & right)}/{np.sum(right)}")


if __name__ == "__main__":
    main()
