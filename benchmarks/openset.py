"""Does the ready model know what it does not know? Every open-set variant on music, non-music and mixes of two genres.

    .venv/bin/python benchmarks/openset.py                 # embeddings cached under --work; prints every table
    .venv/bin/python benchmarks/openset.py --work DIR

Data: the 190 real clips of the ready model (../shared/gtzan_mini, gtzan_unseen), the recordings of
benchmarks/openset_sources.py (tune and test sets, from installed Debian packages) and mixes of two genres made
from the real clips (equal loudness, summed). Every recording is scored on its clip-mean musicnn embedding, its
centred 30 s at most, as the feature cache embeds the training clips.

Variants (`VARIANTS`, decided before the first run, each with the rule fixed in advance: the threshold that keeps
97.5% of the training music scored out of fold, 5 folds; the negatives-trained ones see only the tune sets):
  none   today: a genre is given when the calibrated top probability reaches sort's default 0.7
  msp    max softmax probability (Hendrycks & Gimpel 2017) of the calibrated head
  energy the head's free energy, T logsumexp(logits / T) (Liu et al. 2020)
  maha   class-conditional Mahalanobis distance, shared Ledoit-Wolf covariance (Lee et al. 2018), 250-d embedding;
         maha95: the same at keep 95%; maha-pen / maha-tags: on the 200-d penultimate layer / the 50 tag logits
  knn    distance to the 5th nearest training clip, standardised and L2-normalised (Sun et al. 2022)
  tags   musicnn's own largest tag probability
  reject logistic regression music vs the tune sets' non-music (a reject class), P(music)
  maha+reject  both must accept (genre_cnn.models.openset with music_gate)
A variant's answer "placed" = it accepts and the top probability reaches 0.7. Measured: the half-split protocol of
benchmarks/ready_protocol.py (head, temperature and detector fitted without the test half; share of the 90 test clips
placed and their accuracy), the shipped ready model with detectors fitted on all 190 clips (share of each non-music
and unfamiliar set placed), AUROC of each score (protocol fits: test music against the test non-music), and mixes.
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
SHARED = REPO.parent / "shared"
MIN_CONFIDENCE = 0.7  # sort's and tag's default
KEEP = 0.975
VARIANTS = ("none", "msp", "energy", "maha", "maha95", "maha-pen", "maha-tags", "knn", "tags", "reject",
            "maha+reject")


def embed_files(paths: list[Path], cache: Path) -> dict[str, np.ndarray]:
    """{path: clip-mean embedding (250,)} of each usable file (centred 30 s at most), cached in `cache` (.npz)."""
    from genre_cnn.audio.decode import PREDICT_MIN_SECONDS, load_audio
    from genre_cnn.audio.frontend import FrontEnd
    from genre_cnn.audio.sniff import AudioError
    from genre_cnn.models.musicnn import FRONTEND, load_pretrained

    done = dict(np.load(cache)) if cache.is_file() else {}
    todo = [p for p in paths if str(p) not in done]
    if todo:
        model, front = load_pretrained(), FrontEnd(FRONTEND)
        for p in todo:
            try:
                y = load_audio(p, FRONTEND.sample_rate, min_seconds=PREDICT_MIN_SECONDS)
            except AudioError:
                done[str(p)] = np.full(250, np.nan, np.float32)  # skipped by prediction too
                continue
            done[str(p)] = embed_wave(model, front, y)
        np.savez(cache, **done)
    return {str(p): done[str(p)] for p in paths if np.isfinite(done[str(p)]).all()}


def embed_wave(model, front, y: np.ndarray, seconds: float = 30.0) -> np.ndarray:
    import torch

    from genre_cnn.models.musicnn import patch_embeddings

    n = int(seconds * 16000)
    start = max(0, (y.size - n) // 2)
    with torch.inference_mode():
        emb = patch_embeddings(model, front, torch.from_numpy(np.ascontiguousarray(y[start:start + n]))[None])[0]
    return emb.mean(0).numpy().astype(np.float32)  # (250,)


def head_logits(x_train, y_train, genres, head, x_eval: list[np.ndarray], folds: int = 5):
    """Logits of a head fitted on the training rows for each array of `x_eval`, and out-of-fold logits of the
    training rows (each fold's head fitted without it)."""
    import torch
    from genre_cnn.training.make_ready import fit_head

    from genre_cnn.models.openset import fold_of

    model = fit_head(x_train, y_train, genres, head, 0)
    with torch.no_grad():
        out = [model(torch.from_numpy(x)).numpy() for x in x_eval]
    oof = np.zeros((len(y_train), len(genres)), np.float32)
    fold = fold_of(y_train, folds)
    for f in range(folds):
        m = fit_head(x_train[fold != f], y_train[fold != f], genres, head, 0)
        with torch.no_grad():
            oof[fold == f] = m(torch.from_numpy(x_train[fold == f])).numpy()
    return out, oof


def fit_variants(xm, ym, oof_logits, t, xneg) -> dict:
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
        det = fit_detector(xm, ym, part=part, keep=keep)

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
        det = fit_detector(xm, ym, xneg, music_gate=True)
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


def placed(variant, x, logits, t) -> tuple[np.ndarray, np.ndarray]:
    """(given a genre (B,) bool, accepted by the variant (B,) bool): accepted and calibrated top probability >= 0.7."""
    z = logits / t
    p = np.exp(z - z.max(1, keepdims=True))
    top = (p / p.sum(1, keepdims=True)).max(1)
    accepted, _ = variant(x, logits)
    return accepted & (top >= MIN_CONFIDENCE), accepted


def load_sets(work: Path) -> dict:
    """{source name: (Source, embeddings (n, 250), files listed)} of every source whose packages are installed."""
    from openset_sources import SOURCES, files, missing

    sets = {}
    for s in SOURCES:
        if missing(s):
            print(f"skipped {s.name}: apt-get install {' '.join(missing(s))}")
            continue
        fs = files(s, work)
        emb = embed_files(fs, work / "embeddings.npz")
        sets[s.name] = (s, np.stack(list(emb.values())), len(fs))
    return sets


def main() -> None:
    import torch
    from genre_cnn.training.make_ready import clip_embeddings, half_split, link_sources, load_config
    from openset_report import mixes, report_mixes, report_verdicts

    from genre_cnn.data.layout import dataset_clips
    from genre_cnn.inference.predict import load_model
    from genre_cnn.models.checkpoint import READY_MODEL
    from genre_cnn.paths import home
    from genre_cnn.training.calibration import fit_temperature

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/openset"), help="made audio and embedding caches")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(2)
    start = time.time()
    print(f"{time.strftime('%Y-%m-%d %H:%M')}; load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    cfg = load_config()
    data_dir = link_sources(cfg["sources"], home() / "data" / "ready_clips")
    keys, y, x, genres = clip_embeddings(data_dir)
    unseen = {f"{c.genre}/{c.path.name}" for c in dataset_clips(SHARED / "gtzan_unseen")}
    sets = load_sets(args.work)
    tune_neg = np.concatenate([e for s, e, _ in sets.values() if s.role == "tune"])
    test_neg = np.concatenate([e for s, e, _ in sets.values() if s.role == "test" and s.kind == "not music"])
    mini = sorted(k for k in keys if k not in unseen)
    jm = [(data_dir / a, data_dir / b) for a, b in zip([k for k in mini if k.startswith("jazz/")],
                                                       [k for k in mini if k.startswith("metal/")])]
    x_jm = mixes(jm, args.work / "mixes.npz")

    # the half-split protocol: head, temperature and detectors fitted without the test half
    halves = []
    for test_half in (0, 1):
        train, test = half_split(keys, unseen, test_half)
        by = {g: sorted(keys[i] for i in test if keys[i].startswith(g + "/")) for g in ("classical", "jazz", "rock")}
        pairs = [(data_dir / a, data_dir / b) for g1, g2 in (("classical", "jazz"), ("classical", "rock"),
                                                             ("jazz", "rock")) for a, b in zip(by[g1], by[g2])]
        x_mix = mixes(pairs, args.work / "mixes.npz")
        (lg_test, lg_neg, lg_mix), oof = head_logits(x[train], y[train], genres, cfg["head"],
                                                     [x[test], test_neg, x_mix])
        halves.append({"train": train, "test": test, "lg": lg_test, "lg_neg": lg_neg, "x_mix": x_mix, "lg_mix": lg_mix,
                       "oof": oof, "pairs": [(genres.index(a.parent.name), genres.index(b.parent.name))
                                             for a, b in pairs]})
    for h, other in ((0, 1), (1, 0)):
        halves[h]["t"] = fit_temperature(halves[other]["lg"][:, None], y[halves[other]["test"]])
    for hv in halves:
        hv["variants"] = fit_variants(x[hv["train"]], y[hv["train"]], hv["oof"], hv["t"], tune_neg)
    print(f"protocol temperatures {halves[0]['t']:.2f} / {halves[1]['t']:.2f}; tune non-music {len(tune_neg)}, "
          f"test non-music {len(test_neg)} recordings\n")
    print("| variant | music placed (of 90) | accuracy of placed | music accepted | AUROC music vs test non-music "
          "| test non-music placed (protocol fits) | mixes placed (of 90) |\n|---|---|---|---|---|---|---|")
    for name in VARIANTS:
        n_placed = n_right = n_acc = 0
        aucs, neg_placed, mix_placed = [], [], 0
        for hv in halves:
            te, t = hv["test"], hv["t"]
            v = hv["variants"][name]
            got, acc = placed(v, x[te], hv["lg"], t)
            n_placed += got.sum()
            n_right += (got & (hv["lg"].argmax(1) == y[te])).sum()
            n_acc += acc.sum()
            aucs.append(auroc(v(x[te], hv["lg"])[1], v(test_neg, hv["lg_neg"])[1]))
            neg_placed.append(placed(v, test_neg, hv["lg_neg"], t)[0].mean())
            mix_placed += placed(v, hv["x_mix"], hv["lg_mix"], t)[0].sum()
        print(f"| {name} | {n_placed} ({n_placed / 90:.1%}) | {n_right}/{n_placed} "
              f"({n_right / max(n_placed, 1):.1%}) | {n_acc / 90:.1%} | {np.mean(aucs):.3f} | "
              f"{np.mean(neg_placed):.1%} | {mix_placed} |", flush=True)

    # the shipped ready model, detectors fitted on all 190 clips
    ready = load_model(READY_MODEL)
    t = float(ready.temperature)
    _, oof = head_logits(x, y, genres, cfg["head"], [])
    fitted = fit_variants(x, y, oof, t, tune_neg)
    with torch.no_grad():
        logits = {name: ready(torch.from_numpy(e)).numpy() for name, (_, e, _) in sets.items()}
        lg_jm = ready(torch.from_numpy(x_jm)).numpy()
    print(f"\nshipped ready model (T = {t:.2f}), detectors fitted on all {len(y)} clips: share placed in a genre\n")
    print("| set | role | kind | recordings (listed) | " + " | ".join(VARIANTS) + " |")
    print("|---|---|---|---|" + "---|" * len(VARIANTS))
    for name, (s, e, listed) in sets.items():
        cells = [f"{placed(fitted[v], e, logits[name], t)[0].mean():.1%}" for v in VARIANTS]
        print(f"| {name} | {s.role} | {s.kind} | {len(e)} ({listed}) | " + " | ".join(cells) + " |")
    cells = [f"{placed(fitted[v], x_jm, lg_jm, t)[0].mean():.0%}" for v in VARIANTS]
    print(f"| jazz + metal mixes (gtzan_mini, training clips) | - | mix | {len(x_jm)} | " + " | ".join(cells) + " |")
    report_mixes(halves, lg_jm, t, genres)
    report_verdicts(sets, x, y, tune_neg)
    print(f"\n{time.time() - start:.0f} s; machine: 2 cores, no GPU")


if __name__ == "__main__":
    main()
