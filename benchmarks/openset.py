"""Does the ready model know what it does not know? Every open-set variant on music (both accuracy protocols), on
non-music and unfamiliar music (the shipped model, as `predict` answers), and on mixes of two genres.

    .venv/bin/python benchmarks/openset.py                 # answers and embeddings cached under --work
    .venv/bin/python benchmarks/openset.py --work DIR

Data: the 190 real clips of configs/ready.yaml (../shared/gtzan_mini, gtzan_unseen; their cached clip-mean musicnn
embeddings, as training sees them), the tune non-music the ready model's detector is fitted on (genre_cnn.data.nonmusic,
cached by the feature store as training caches it), the test sets of benchmarks/openset_sources.py, and mixes of two
genres made from the real clips (equal loudness, summed). Every recording of a set is heard as `predict` hears it
(genre_cnn.inference.track: whole, or windows spread over a long one): the shipped model's answer, and the mean
embedding of the windows read, which the other variants score.

Variants (`VARIANTS`, decided before the first run, each with the rule fixed in advance: the threshold that keeps
97.5% of the training music scored out of fold, 5 folds; the negatives-trained ones see only the tune sets):
  none   a genre is given when the calibrated top probability reaches sort's default 0.7 (no detector)
  msp    max softmax probability (Hendrycks & Gimpel 2017) of the calibrated head
  energy the head's free energy, T logsumexp(logits / T) (Liu et al. 2020)
  maha   class-conditional Mahalanobis distance, shared Ledoit-Wolf covariance (Lee et al. 2018), 250-d embedding;
         maha95: the same at keep 95%; maha-pen / maha-tags: on the 200-d penultimate layer / the 50 tag logits
  knn    distance to the 5th nearest training clip, standardised and L2-normalised (Sun et al. 2022)
  tags   musicnn's own largest tag probability
  reject logistic regression music vs the tune sets' non-music (a reject class), P(music)
  maha+reject  both must accept (genre_cnn.models.openset with its music gate): the detector the ready model ships
"Placed" = the variant accepts and the top probability reaches 0.7. Measured on music by both protocols of
benchmarks/ready_protocol.py, heads trained as train.py trains the ready model: the half split (head, temperature
and detectors fitted without the test half; temperatures cross-fitted between the halves) and 5-fold CV on
gtzan_mini (temperature fitted on the training rows' out-of-fold logits); then the shipped model on every set (its
own detector for maha+reject, the others fitted on all 190 clips), AUROC (half-split fits), verdicts and mixes.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
MIN_CONFIDENCE = 0.7  # sort's and tag's default
KEEP = 0.975
VARIANTS = ("none", "msp", "energy", "maha", "maha95", "maha-pen", "maha-tags", "knn", "tags", "reject",
            "maha+reject")


def clips() -> tuple[list[str], np.ndarray, np.ndarray, list[str], dict[str, Path]]:
    """The ready model's clips as training sees them: keys, labels (N,), clip-mean embeddings (N, 250), genres,
    paths."""
    from ready_protocol import ready_config

    from genre_cnn.data.sources.folder import Folder
    from genre_cnn.data.store import FeatureStore
    from genre_cnn.models.families.musicnn import MusicnnClassifier as M

    source, store = Folder(ready_config()["data"]["source"]["init_args"]["data_dir"]), FeatureStore()
    store.prepare(source, M.features(None))
    c = store.clipset(source, M.features(None), M.cached, M.pool)
    return c.keys, c.labels, c.features.astype(np.float32), c.genres, {k.key: k.path for k in source.clips()}


def tune_negatives() -> np.ndarray:
    """The tune non-music as the ready model's build sees it (genre_cnn.training.openset.negative_vectors): (K, 250)."""
    from genre_cnn.audio.decode import PREDICT_MIN_SECONDS
    from genre_cnn.data.nonmusic import NonMusic
    from genre_cnn.data.store import FeatureStore
    from genre_cnn.models.families.musicnn import MusicnnClassifier as M

    source, store = NonMusic(), FeatureStore(min_seconds=PREDICT_MIN_SECONDS)
    store.prepare(source, M.features(None))
    return store.clipset(source, M.features(None), M.cached, M.pool).features.astype(np.float32)


def heard(model, files: list[Path], cache: Path) -> dict[str, dict]:
    """{file: {"emb": the mean embedding of the windows read (250,), "probs" (n,), "verdict", "familiarity",
    "music"}} as `predict` answers with `model` (a file it skips is left out); cached in `cache` (.npz)."""
    from genre_cnn.errors import GenreCnnError
    from genre_cnn.inference.torch_runner import TorchRunner
    from genre_cnn.inference.track import track_answer

    class Recording(TorchRunner):
        def openset(self, means):  # called once a track, on the mean the answer is made from
            self.mean = means[0]
            return super().openset(means)

    done = {k: v for k, v in np.load(cache).items()} if cache.is_file() else {}
    runner = Recording(model)
    for f in (f for f in files if str(f) not in done):
        try:
            a = track_answer(runner, f)
        except GenreCnnError:
            done[str(f)] = np.full(1, np.nan)  # skipped by prediction too
            continue
        done[str(f)] = np.concatenate([runner.mean, a.probs, [runner.verdicts.index(a.music["verdict"]),
                                                              a.music["familiarity"], a.music["music_probability"]]])
    np.savez(cache, **done)
    n = len(model.genres)
    return {str(f): {"emb": v[:250].astype(np.float32), "probs": v[250:250 + n], "verdict": int(v[250 + n]),
                     "familiarity": v[251 + n], "music": v[252 + n]}
            for f in files if (v := done[str(f)]).size > 1}


def head_logits(x_train, y_train, genres, head, x_eval: list[np.ndarray], folds: int = 5):
    """Logits of a head fitted on the training rows for each array of `x_eval` (none: no such fit), and out-of-fold
    logits of the training rows (each fold's head fitted without it); heads trained as train.py trains them."""
    import torch
    from ready_protocol import fit

    from genre_cnn.models.openset import fold_of

    out = []
    if x_eval:
        model = fit("musicnn", head, x_train, y_train, genres, 0)
        with torch.no_grad():
            out = [model(torch.from_numpy(x)).numpy() for x in x_eval]
    oof = np.zeros((len(y_train), len(genres)), np.float32)
    fold = fold_of(y_train, folds)
    for f in range(folds):
        m = fit("musicnn", head, x_train[fold != f], y_train[fold != f], genres, 0)
        with torch.no_grad():
            oof[fold == f] = m(torch.from_numpy(x_train[fold == f])).numpy()
    return out, oof


def fit_variants(xm, ym, oof_logits, t, xneg, classes: int) -> dict:
    """{variant: accept(x, logits) -> (accepted (B,) bool, score (B,), higher = more like the training music)}."""
    import torch

    from genre_cnn.models.openset import fit_detector, fold_of

    def by_rule(train_scores):
        return np.quantile(train_scores, 1 - KEEP, method="lower")

    def softmax(logits):
        e = np.exp(logits / t - (logits / t).max(1, keepdims=True))
        return e / e.sum(1, keepdims=True)

    def energy(logits):
        z = logits / t
        return t * (z.max(1) + np.log(np.exp(z - z.max(1, keepdims=True)).sum(1)))

    def tags(x):
        return (1 / (1 + np.exp(-x[:, 200:]))).max(1)

    out = {"none": lambda x, lg: (np.ones(len(x), bool), softmax(lg).max(1))}
    for name, fn in (("msp", lambda x, lg: softmax(lg).max(1)), ("energy", lambda x, lg: energy(lg)),
                     ("tags", lambda x, lg: tags(x))):
        floor = by_rule(fn(xm, oof_logits))
        out[name] = lambda x, lg, fn=fn, floor=floor: (fn(x, lg) >= floor, fn(x, lg))
    for name, part, keep in (("maha", "both", KEEP), ("maha95", "both", 0.95), ("maha-pen", "penultimate", KEEP),
                             ("maha-tags", "tags", KEEP)):
        det = fit_detector(xm, ym, classes=classes, part=part, keep=keep)

        def maha(x, lg, det=det):
            with torch.no_grad():
                d = det.distance(torch.from_numpy(x)).numpy()
            return d <= det.max_distance.item(), -d
        out[name] = maha
    mean, std = xm.mean(0), xm.std(0) + 1e-6

    def unit(x):
        z = (x - mean) / std
        return z / np.linalg.norm(z, axis=1, keepdims=True)

    fold, k = fold_of(ym, 5), 5
    oof = np.concatenate([np.sort(1 - unit(xm[fold == f]) @ unit(xm[fold != f]).T, 1)[:, k - 1] for f in range(5)])
    limit = np.quantile(oof, KEEP, method="higher")

    def knn(x, lg):
        d = np.sort(1 - unit(x) @ unit(xm).T, 1)[:, k - 1]
        return d <= limit, -d
    out["knn"] = knn
    for name, gate_distance in (("reject", False), ("maha+reject", True)):
        det = fit_detector(xm, ym, xneg, classes=classes, music_gate=True)
        if not gate_distance:
            det.max_distance.fill_(float("inf"))

        def full(x, lg, det=det):
            with torch.no_grad():
                _, music, verdict = det(torch.from_numpy(x))
            return verdict.numpy() == 0, music.numpy()
        out[name] = full
    return out


def auroc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a random positive > that of a random negative), ties half."""
    from scipy.stats import rankdata

    r = rankdata(np.r_[pos, neg])
    return float((r[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2) / (len(pos) * len(neg)))


def top_probability(logits: np.ndarray, t: float) -> np.ndarray:
    z = logits / t
    p = np.exp(z - z.max(1, keepdims=True))
    return (p / p.sum(1, keepdims=True)).max(1)


def placed(variant, x, logits, t) -> tuple[np.ndarray, np.ndarray]:
    """(given a genre (B,) bool, accepted by the variant (B,) bool): accepted and calibrated top probability >= 0.7."""
    accepted, _ = variant(x, logits)
    return accepted & (top_probability(logits, t) >= MIN_CONFIDENCE), accepted


def protocol_fits(keys, y, x, genres, head, tune_neg, test_neg, mixes_of) -> dict[str, dict]:
    """{part: {"test", "lg", "t", "variants", ...}} for the half split's A and B and the five CV folds."""
    from ready_protocol import CV, keys_genres, protocols
    from sklearn.model_selection import train_test_split

    from genre_cnn.training.calibration import fit_temperature

    unseen = {k for k in keys if "/gtzan_unseen/" in k}
    mini = sorted(k for k in keys if k not in unseen)
    train80, _ = train_test_split(mini, test_size=0.2, stratify=keys_genres(mini), random_state=0)
    parts = protocols(keys, unseen, set(train80))
    fits = {}
    for name in ("A", "B", *CV):
        train, test = parts[name]
        extra = [test_neg, mixes_of(test)] if name in ("A", "B") else []
        (lg, *rest), oof = head_logits(x[train], y[train], genres, head, [x[test], *extra])
        fits[name] = {"train": train, "test": test, "lg": lg, "oof": oof, **dict(zip(("lg_neg", "lg_mix"), rest))}
        print(f"{name}: heads fitted ({time.strftime('%H:%M')})", flush=True)
    for h, other in (("A", "B"), ("B", "A")):  # each half's temperature fitted on the other half's test clips
        fits[h]["t"] = fit_temperature(fits[other]["lg"][:, None], y[fits[other]["test"]])
    for name in CV:  # on the training rows' out-of-fold logits, as cross-fitting calibrates the ready model
        fits[name]["t"] = fit_temperature(fits[name]["oof"][:, None], y[fits[name]["train"]])
    for f in fits.values():
        f["variants"] = fit_variants(x[f["train"]], y[f["train"]], f["oof"], f["t"], tune_neg, len(genres))
    return fits


def music_table(fits: dict, y, x, test_neg, mixes) -> None:
    from ready_protocol import CV

    print("| variant | half split: placed (of 90) | accuracy of placed | 5-fold CV: placed (of 100) | accuracy of "
          "placed "
          "| AUROC, music vs test non-music | test non-music placed | mixes placed (of 90) |\n"
          "|---|---|---|---|---|---|---|---|")
    for v in VARIANTS:
        cells = []
        for names in (("A", "B"), CV):
            n_placed = n_right = total = 0
            for name in names:
                f = fits[name]
                got, _ = placed(f["variants"][v], x[f["test"]], f["lg"], f["t"])
                n_placed, total = n_placed + got.sum(), total + len(got)
                n_right += (got & (f["lg"].argmax(1) == y[f["test"]])).sum()
            cells += [f"{n_placed} ({n_placed / total:.1%})",
                      f"{n_right}/{n_placed} ({n_right / max(n_placed, 1):.1%})"]
        halves = [fits["A"], fits["B"]]
        aucs = [auroc(f["variants"][v](x[f["test"]], f["lg"])[1], f["variants"][v](test_neg, f["lg_neg"])[1])
                for f in halves]
        neg = [placed(f["variants"][v], test_neg, f["lg_neg"], f["t"])[0].mean() for f in halves]
        mix = sum(placed(f["variants"][v], mixes[n], f["lg_mix"], f["t"])[0].sum() for n, f in zip("AB", halves))
        print(f"| {v} | " + " | ".join(cells) + f" | {np.mean(aucs):.3f} | {np.mean(neg):.1%} | {mix} |", flush=True)


def main() -> None:
    import torch
    from openset_report import mix_embeddings, report_mixes, report_verdicts
    from openset_sources import sets as all_sets

    from genre_cnn.inference.predict import READY_MODEL, load_model

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/openset"), help="rendered audio and answer caches")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    start = time.time()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}; load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    keys, y, x, genres, paths = clips()
    head = {k: v for k, v in __import__("ready_protocol").ready_config()["musicnn"].items() if k != "openset"}
    ready = load_model(READY_MODEL)
    tune_neg = tune_negatives()
    sets = all_sets(args.work)
    answers = {s.name: heard(ready, s.files, args.work / "answers.npz") for s in sets}
    test_neg = np.concatenate([np.stack([a["emb"] for a in answers[s.name].values()])
                               for s in sets if s.role == "test" and s.kind == "not music"])

    def test_pairs(test: np.ndarray) -> list[tuple[Path, Path]]:
        by = {g: sorted(keys[i] for i in test if keys[i].startswith(g + "/")) for g in ("classical", "jazz", "rock")}
        return [(paths[a], paths[b]) for g1, g2 in (("classical", "jazz"), ("classical", "rock"), ("jazz", "rock"))
                for a, b in zip(by[g1], by[g2])]

    mixes = {}

    def mixes_of(test: np.ndarray) -> np.ndarray:
        pairs = test_pairs(test)
        emb = mix_embeddings(ready, pairs, args.work / "mixes.npz")
        mixes["A" if len(mixes) == 0 else "B"] = emb
        mixes.setdefault("pairs", []).append([(genres.index(a.parent.name), genres.index(b.parent.name))
                                             for a, b in pairs])
        return emb

    fits = protocol_fits(keys, y, x, genres, head, tune_neg, test_neg, mixes_of)
    print(f"\nprotocol temperatures A {fits['A']['t']:.2f} / B {fits['B']['t']:.2f}; tune non-music {len(tune_neg)}, "
          f"test non-music {len(test_neg)} recordings\n")
    music_table(fits, y, x, test_neg, mixes)

    # the shipped ready model: its own detector (maha+reject), the other variants fitted on all 190 clips
    t = float(ready.temperature)
    _, oof = head_logits(x, y, genres, head, [])
    fitted = fit_variants(x, y, oof, t, tune_neg, len(genres))
    print(f"\nshipped ready model (T = {t:.2f}): share of each set placed in a genre (maha+reject: its own detector, "
          "as predict answers)\n\n| set | role | kind | recordings (listed) | " + " | ".join(VARIANTS)
          + " |\n|---|---|---|---|" + "---|" * len(VARIANTS))
    for s in sets:
        a = answers[s.name]
        emb = np.stack([r["emb"] for r in a.values()])
        probs = np.stack([r["probs"] for r in a.values()])
        with torch.no_grad():
            logits = ready(torch.from_numpy(emb)).numpy()
        shipped = np.array([r["verdict"] == 0 for r in a.values()]) & (probs.max(1) >= MIN_CONFIDENCE)
        cells = [f"{placed(fitted[v], emb, logits, t)[0].mean():.1%}" for v in VARIANTS[:-1]]
        cells.append(f"{shipped.mean():.1%}")
        print(f"| {s.name} | {s.role} | {s.kind} | {len(a)} ({len(s.files)}) | " + " | ".join(cells) + " |")
    report_verdicts(sets, answers, ready)
    jazz_metal = [(paths[a], paths[b]) for a, b in zip(sorted(k for k in keys if k.startswith("jazz/gtzan_mini")),
                                                         sorted(k for k in keys if k.startswith("metal/gtzan_mini")))]
    report_mixes(fits, mixes, ready, mix_embeddings(ready, jazz_metal, args.work / "mixes.npz"), genres)
    print(f"\n{time.time() - start:.0f} s; machine: 2 cores, no GPU; load average now "
          f"{' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
