"""Which musicnn (MSD) layer makes the best genre features? Linear and MLP probes on per-clip embeddings.

    .venv/bin/python benchmarks/musicnn_layers.py [--refresh]

Each clip of ../shared/gtzan_mini (100, ten genres) and ../shared/gtzan_unseen (90, classical/jazz/rock, artists
mini does not hold) is embedded once (mean over its 3-s patches; cached in home()/data/musicnn_layers.npz)
as: taggram (50), penultimate (200), pooled (1506), penultimate+taggram (250). Probes: standardise + logistic
regression (C=1), standardise + MLP 512-256-128-64 ReLU (sklearn). Reported per feature set and probe:
- cv: 5-fold stratified CV accuracy on mini (StratifiedKFold(5, shuffle=True, random_state=0)), mean +- std;
- unseen <- 100: trained on all of mini, recall on unseen per genre (classical/jazz/rock) and their mean;
- unseen <- 80: trained on the train+val 80 of train_test_split(sorted keys, test_size=0.2, stratify, random_state=0).
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np

SHARED = Path(__file__).resolve().parents[2] / "shared"
UNSEEN_GENRES = ("classical", "jazz", "rock")


def embed_set(data_dir: Path) -> dict[str, np.ndarray]:
    """{"keys", "genres", "taggram", "penultimate", "pooled"} of every clip of a folder-per-genre set, sorted by key."""
    from genre_cnn.audio.decode import load_audio
    from genre_cnn.audio.frontend import FrontEnd
    from genre_cnn.data.layout import dataset_clips
    from genre_cnn.models.musicnn import FRONTEND, embed, load_pretrained

    model, front = load_pretrained(), FrontEnd(FRONTEND)
    clips = sorted(dataset_clips(data_dir), key=lambda c: c.key)
    rows = []
    for i, clip in enumerate(clips):
        out = embed(model, front, load_audio(clip.path, FRONTEND.sample_rate))
        rows.append({k: v.numpy() for k, v in out.items()})
        print(f"\r{data_dir.name}: {i + 1}/{len(clips)}", end="", flush=True)
    print()
    return {"keys": np.array([c.key for c in clips]), "genres": np.array([c.genre for c in clips]),
            **{k: np.stack([r[k] for r in rows]) for k in rows[0]}}  # (clips, dim) each


def embeddings(refresh: bool) -> dict[str, dict[str, np.ndarray]]:
    from genre_cnn.paths import atomic_write, home

    cache = home() / "data" / "musicnn_layers.npz"
    if cache.is_file() and not refresh:
        z = np.load(cache)
        return {s: {k.split("/", 1)[1]: z[k] for k in z.files if k.startswith(s + "/")} for s in ("mini", "unseen")}
    sets = {"mini": embed_set(SHARED / "gtzan_mini"), "unseen": embed_set(SHARED / "gtzan_unseen")}
    buf = io.BytesIO()
    np.savez(buf, **{f"{s}/{k}": v for s, d in sets.items() for k, v in d.items()})
    atomic_write(cache, lambda f: f.write(buf.getvalue()))
    return sets


def probes() -> dict[str, object]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return {"logreg": lambda: make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000)),
            "mlp": lambda: make_pipeline(StandardScaler(), MLPClassifier((512, 256, 128, 64), max_iter=1000,
                                                                         random_state=0))}


def unseen_recall(make, x_train, y_train, x_test, y_test) -> list[float]:
    pred = make().fit(x_train, y_train).predict(x_test)
    return [float(np.mean(pred[y_test == g] == g)) for g in UNSEEN_GENRES]


def main() -> None:
    from sklearn.model_selection import StratifiedKFold, train_test_split

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--refresh", action="store_true", help="recompute the embeddings")
    sets = embeddings(parser.parse_args().refresh)
    mini, unseen = sets["mini"], sets["unseen"]
    y, y_unseen = mini["genres"], unseen["genres"]
    train80, _ = train_test_split(np.arange(len(y)), test_size=0.2, stratify=y, random_state=0)  # keys are sorted
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(y, y))

    def features(d: dict[str, np.ndarray], name: str) -> np.ndarray:
        return np.concatenate([d[k] for k in name.split("+")], axis=1)  # (clips, dim)

    head = (f"{'features':26s} {'probe':6s} {'cv (mini, 5-fold)':>17s} | "
            f"{'unseen <- 100: cla  jaz  roc  mean':>35s} | {'unseen <- 80: cla  jaz  roc  mean':>34s}")
    print(head + "\n" + "-" * len(head))
    for name in ("taggram", "penultimate", "pooled", "penultimate+taggram"):
        x, x_unseen = features(mini, name), features(unseen, name)
        for probe, make in probes().items():
            cv = [np.mean(make().fit(x[tr], y[tr]).predict(x[te]) == y[te]) for tr, te in folds]
            all100 = unseen_recall(make, x, y, x_unseen, y_unseen)
            some80 = unseen_recall(make, x[train80], y[train80], x_unseen, y_unseen)
            cells = [" ".join(f"{r:4.2f}" for r in (*rec, np.mean(rec))) for rec in (all100, some80)]
            print(f"{name + f' ({x.shape[1]})':26s} {probe:6s} {np.mean(cv):9.3f} +- {np.std(cv):.3f} | "
                  f"{cells[0]:>35s} | {cells[1]:>34s}")


if __name__ == "__main__":
    main()
