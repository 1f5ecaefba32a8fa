"""Can the genre head learn to split its answer on a mix of two genres? The ready recipe with mixed clips added.

    .venv/bin/python benchmarks/openset_mixes.py          # after benchmarks/openset.py (its mix cache under --work)

Decided before running: on each half of the half-split protocol, 150 mixes of two training clips of different genres
(pairs drawn with seed 0, equal loudness, summed, as benchmarks/openset_report.py mixes) join the training clips,
each labelled half one genre, half the other: as two rows, one per genre (the mean of their two cross-entropies is
the cross-entropy of the half-and-half label), so the head is trained as train.py trains the ready model (the one
LightningModule, genre_cnn.training.lit.GenreModule: linear on both embeddings, balanced, five members, 750 AdamW
steps). Measured against the same recipe without mixes: the 90 test clips placed at 0.7 and their accuracy
(temperatures cross-fitted between the halves), and on the 90 test-half mixes of benchmarks/openset.py the share
with a top probability >= 0.7 and with both genres in the top two.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def main() -> None:
    from openset import clips
    from openset_report import mix_embeddings, probs
    from ready_protocol import fit, protocols, ready_config

    from genre_cnn.inference.predict import READY_MODEL, load_model
    from genre_cnn.training.calibration import fit_temperature

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/openset"))
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
    keys, y, x, genres, paths = clips()
    head = {k: v for k, v in ready_config()["musicnn"].items() if k != "openset"}
    backbone = load_model(READY_MODEL)  # its tagger embeds the mixes
    parts = protocols(keys, {k for k in keys if "/gtzan_unseen/" in k}, set())
    out = {"without mixes": [], "with 150 training mixes": []}
    for half in ("A", "B"):
        train, test = parts[half]
        by = {g: sorted(keys[i] for i in test if keys[i].startswith(g + "/")) for g in ("classical", "jazz", "rock")}
        pairs = [(paths[a], paths[b]) for g1, g2 in (("classical", "jazz"), ("classical", "rock"), ("jazz", "rock"))
                 for a, b in zip(by[g1], by[g2])]
        x_mix = mix_embeddings(backbone, pairs, args.work / "mixes.npz")
        mix_labels = np.array([(genres.index(a.parent.name), genres.index(b.parent.name)) for a, b in pairs])
        rng = np.random.default_rng(0)
        drawn = []
        while len(drawn) < 150:
            i, j = rng.choice(train, 2, replace=False)
            if y[i] != y[j]:
                drawn.append((i, j))
        x_train_mix = mix_embeddings(backbone, [(paths[keys[i]], paths[keys[j]]) for i, j in drawn],
                                     args.work / "mixes.npz")
        with_mixes = (np.concatenate([x[train], x_train_mix, x_train_mix]),  # each mix once per genre
                      np.concatenate([y[train], y[[i for i, _ in drawn]], y[[j for _, j in drawn]]]))
        for name, (xs, ys) in (("without mixes", (x[train], y[train])), ("with 150 training mixes", with_mixes)):
            model = fit("musicnn", head, xs.astype(np.float32), ys, genres, 0)
            with torch.no_grad():
                out[name].append((model(torch.from_numpy(x[test])).numpy(), y[test],
                                  model(torch.from_numpy(x_mix)).numpy(), mix_labels))
    print("| head | music placed (of 90) | accuracy of placed | accuracy, all 90 | mixes: top >= 0.7 | mixes: both "
          "genres in the top 2 | mixes: mean top probability |\n|---|---|---|---|---|---|---|")
    for name, halves in out.items():
        ts = [fit_temperature(halves[1 - h][0][:, None], halves[1 - h][1]) for h in (0, 1)]
        p = np.concatenate([probs(halves[h][0], ts[h]) for h in (0, 1)])
        labels = np.concatenate([halves[h][1] for h in (0, 1)])
        pm = np.concatenate([probs(halves[h][2], ts[h]) for h in (0, 1)])
        pairs = np.concatenate([halves[h][3] for h in (0, 1)])
        placed = p.max(1) >= 0.7
        right = p.argmax(1) == labels
        both = np.array([set(a) == set(b) for a, b in zip(np.argsort(-pm, 1)[:, :2].tolist(), pairs.tolist())])
        print(f"| {name} | {placed.sum()} | {(placed & right).sum()}/{placed.sum()} | {right.mean():.1%} | "
              f"{np.mean(pm.max(1) >= 0.7):.0%} | {both.mean():.0%} | {pm.max(1).mean():.2f} |", flush=True)
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()
