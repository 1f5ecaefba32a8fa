"""The ready model in the box: the musicnn genre head trained on every real clip we have, class-balanced.

    .venv/bin/python -m genre_cnn.training.make_ready                 # rewrites genre_cnn/ready/musicnn_gtzan_mini.ckpt
    .venv/bin/python -m genre_cnn.training.make_ready --seed 1        # another seed of the head

The recipe is configs/ready.yaml: the clips of its `sources` (../shared/gtzan_mini, 100 clips of ten genres, and
../shared/gtzan_unseen, 90 more of classical, jazz and rock) are linked into one folder per genre under
`<project>/data/ready_clips/`, their musicnn embeddings cached (the mean over each clip's 3-s patches of the pretrained
tagger's penultimate layer and tag logits, genre_cnn.models.musicnn), and a `head` fitted on them with a fixed number of
AdamW steps and a class-balanced loss (each genre weighs the same however many clips it has): `members` heads from
consecutive seeds, their logits averaged.

Before the final fit, the same recipe runs the half-split protocol of benchmarks/ready_protocol.py: trained on
gtzan_mini plus gtzan_unseen clips 00070-00084 and tested on 00085-00099, then the other way round. Its
out-of-fold probabilities give the estimate printed here and the temperature stored in the model
(genre_cnn.training.calibration). The file holds what prediction needs and nothing else: the genre list, the
hyperparameters, the weights (backbone included), the temperature, `dataset_kind` "real" and a `trained_on` note.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from genre_cnn.models.checkpoint import READY_MODEL
from genre_cnn.paths import REPO, atomic_write, home, resolve

READY_CONFIG = REPO / "configs" / "ready.yaml"
HALVES = (range(70, 85), range(85, 100))  # gtzan_unseen's clip numbers, split so that most artists stay apart


def load_config(path: Path = READY_CONFIG) -> dict:
    """configs/ready.yaml: {"sources": [folders], "head": {embedding, widths, dropout, balanced, steps, ...}}."""
    import yaml

    return yaml.safe_load(path.read_text())


def link_sources(sources: list[str], dest: Path) -> Path:
    """One folder per genre under `dest` holding a link to every clip of the folder-per-genre `sources`."""
    from genre_cnn.data.layout import dataset_clips

    for source in sources:
        for clip in dataset_clips(resolve(source)):
            link = dest / clip.genre / clip.path.name
            if not link.exists():
                link.parent.mkdir(parents=True, exist_ok=True)
                tmp = link.with_name(f".{link.name}.tmp")
                tmp.unlink(missing_ok=True)
                os.symlink(clip.path.resolve(), tmp)
                tmp.replace(link)
    return dest


def clip_embeddings(data_dir: Path) -> tuple[list[str], np.ndarray, np.ndarray, list[str]]:
    """(keys, labels (N,), clip-mean musicnn embeddings (N, 250), genres) of every clip under `data_dir`,
    through the feature cache that training uses (computed once)."""
    from genre_cnn.data.cache import FeatureSettings
    from genre_cnn.data.clipset import ClipSet
    from genre_cnn.data.sources import open_source
    from genre_cnn.models.families.musicnn import MusicnnClassifier as M

    clips = ClipSet.prepare(open_source("folder", data_dir), FeatureSettings(M.features(None)), M.cached, M.pool)
    return clips.keys, clips.labels, clips.features.astype(np.float32), clips.genres  # (N,), (N, 250)


def clip_number(key: str) -> int:
    """genre/genre.00085.flac -> 85."""
    return int(Path(key).name.split(".")[1])


def half_split(keys: list[str], unseen: set[str], test_half: int) -> tuple[np.ndarray, np.ndarray]:
    """(train, test) row indices: test = the `unseen` clips numbered in HALVES[test_half]; train = every other
    clip (gtzan_mini and the other half of gtzan_unseen)."""
    test = np.array([i for i, k in enumerate(keys) if k in unseen and clip_number(k) in HALVES[test_half]])
    train = np.array([i for i in range(len(keys)) if i not in set(test.tolist())])
    return train, test


def fit_head(x: np.ndarray, y: np.ndarray, genres: list[str], head: dict, seed: int):
    """A MusicnnClassifier (backbone not loaded) whose head is fitted to clip embeddings x (N, 250), labels y (N,).

    head: embedding ("tags", "penultimate", "both"), widths (the dense layers; [] for a linear head), dropout,
    balanced (cross-entropy weighted by 1 / the genre's clip count), steps and batch (AdamW, lr 1e-3, weight
    decay 1e-2, as training's defaults), label_smoothing, and members (default 1): that many dense heads, member
    m fitted alone from seed `seed + m` (so member 0 is the single head of `seed`), their logits averaged.
    """
    import torch
    import torch.nn.functional as F

    from genre_cnn.models.families.musicnn import MusicnnClassifier
    from genre_cnn.models.networks import DenseNet

    members = head.get("members", 1)
    model = MusicnnClassifier(genres, embedding=head["embedding"], widths=tuple(head["widths"]),
                              dropout=head["dropout"], members=members)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    model.set_scaler(xt.double().mean(0), xt.double().std(0))
    z = (xt[:, model.part] - model.mean) / model.std  # (N, D): what the dense head sees
    counts = torch.bincount(yt, minlength=len(genres)).clamp_min(1).float()
    weight = (len(y) / (len(genres) * counts)) if head["balanced"] else None  # (n,)
    nets = []
    for m in range(members):
        torch.manual_seed(seed + m)
        net = DenseNet(z.shape[1], len(genres), tuple(head["widths"]), head["dropout"]).train()
        opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
        gen = torch.Generator().manual_seed(seed + m)
        for _ in range(head["steps"]):
            idx = torch.randint(len(y), (head["batch"],), generator=gen)
            loss = F.cross_entropy(net(z[idx]), yt[idx], weight=weight, label_smoothing=head["label_smoothing"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        nets.append(net)
    for target, net in zip([model.net] if members == 1 else model.net.members, nets):
        target.load_state_dict(net.state_dict())
    return model.eval()


def out_of_fold(keys: list[str], y: np.ndarray, x: np.ndarray, genres: list[str], unseen: set[str], head: dict,
                seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The half-split protocol for one head: (test rows, their labels, their logits (rows, 1, n)), both halves."""
    import torch

    rows, logits = [], []
    for test_half in (0, 1):
        train, test = half_split(keys, unseen, test_half)
        model = fit_head(x[train], y[train], genres, head, seed)
        with torch.no_grad():
            logits.append(model.window_logits(torch.from_numpy(x[test])).numpy())  # (rows, 1, n)
        rows.append(test)
    rows_all = np.concatenate(rows)
    return rows_all, y[rows_all], np.concatenate(logits)


def main(argv: list[str] | None = None) -> Path:
    import torch

    from genre_cnn.models.musicnn import load_pretrained
    from genre_cnn.training.calibration import clip_probs, expected_calibration_error, fit_temperature

    parser = argparse.ArgumentParser(prog="python -m genre_cnn.training.make_ready", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=None, help="the head's seed (default: configs/ready.yaml's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)  # batches of 32 small vectors: more threads only contend (badly, on a busy machine)
    cfg = load_config()
    head, seed = cfg["head"], cfg["seed"] if args.seed is None else args.seed
    data_dir = link_sources(cfg["sources"], home() / "data" / "ready_clips")
    keys, y, x, genres = clip_embeddings(data_dir)
    from genre_cnn.data.layout import dataset_clips

    unseen = {f"{c.genre}/{c.path.name}" for c in dataset_clips(resolve(cfg["sources"][-1]))}
    _, y_oof, logits = out_of_fold(keys, y, x, genres, unseen, head, seed)
    t = fit_temperature(logits, y_oof)
    before, after = clip_probs(logits, 1.0), clip_probs(logits, t)
    acc = float(np.mean(after.argmax(1) == y_oof))
    print(f"half-split estimate on {len(y_oof)} unseen clips (trained without them): accuracy {acc:.1%}; "
          f"temperature {t:.2f}, ECE {expected_calibration_error(before, y_oof):.3f} -> "
          f"{expected_calibration_error(after, y_oof):.3f}")

    model = fit_head(x, y, genres, head, seed)
    model.backbone.load_state_dict(load_pretrained().state_dict())
    model.temperature.fill_(t)
    sources = " + ".join(Path(s).name for s in cfg["sources"])
    members = head.get("members", 1)
    seeds = f"seeds {seed}-{seed + members - 1} averaged" if members > 1 else f"seed {seed}"
    trained_on = (f"all {len(y)} real clips of {sources} ({len(genres)} genres, class-balanced), "
                  f"{seeds} (python -m genre_cnn.training.make_ready)")
    hparams = {"genres": genres, "embedding": head["embedding"], "widths": list(head["widths"]),
               "dropout": head["dropout"], "members": head.get("members", 1)}
    checkpoint = {"genre_cnn_class": type(model).__name__, "hyper_parameters": hparams,
                  "state_dict": model.state_dict(), "trained_on": trained_on, "dataset_kind": "real"}
    atomic_write(READY_MODEL, lambda f: torch.save(checkpoint, f))
    print(f"{READY_MODEL}: {READY_MODEL.stat().st_size / 1e6:.1f} MB, trained on {trained_on}")
    ship_onnx()
    return READY_MODEL


def ship_onnx() -> Path:
    """Exports the ready model's graphs beside it (`shipped_onnx_path` and its answer graph), removing the graphs
    of earlier builds."""
    from genre_cnn.inference.onnx_predict import answer_path, export_graphs, shipped_onnx_path
    from genre_cnn.inference.predict import load_model

    graph = shipped_onnx_path(READY_MODEL)
    for old in READY_MODEL.parent.glob(f"{READY_MODEL.stem}.*.onnx"):
        if old not in (graph, answer_path(graph)):
            old.unlink()
    export_graphs(load_model(READY_MODEL), graph)
    print(f"{graph}: {graph.stat().st_size / 1e6:.1f} MB, its ONNX graph (the first predict exports nothing)")
    return graph


if __name__ == "__main__":
    main()
