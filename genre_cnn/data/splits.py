"""Track-level train / validation / test splits, saved beside the cache and reused.

Every split is by track: all windows of a clip belong to the split of that clip, so no window of a test
track can reach training. Four kinds:
- `official`: the dataset's own split (genre_cnn.data.sources: `Source.official_split()`, e.g. FMA's artist-disjoint
  training / validation / test sets), restricted to the clips that are there.
- `random`: stratified test_fraction for test (8:2), then val_fraction of the rest for validation (1:3).
- `kfold`: stratified k-fold by track; fold k is the test part, validation is carved from the rest.
- `lists`: the artist-filtered GTZAN split of Kereliuk, Sturm & Larsen (2015), read from
  `{train,valid,test}_filtered.txt` files of `genre/genre.NNNNN.wav` lines.
`choose` makes the one the DataModule's settings ask for.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import numpy as np

from genre_cnn.paths import atomic_write_text

log = logging.getLogger(__name__)

PARTS = ("train", "val", "test")


def random_split(keys: list[str], labels: list[int], test_fraction: float = 0.2, val_fraction: float = 0.25,
                 seed: int = 0) -> dict[str, list[str]]:
    """Stratified split of track keys into train/val/test."""
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(keys, test_size=test_fraction, stratify=labels, random_state=seed)
    rest_labels = [labels[keys.index(k)] for k in rest]
    train, val = train_test_split(rest, test_size=val_fraction, stratify=rest_labels, random_state=seed)
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def kfold_split(keys: list[str], labels: list[int], fold: int, num_folds: int = 5, val_fraction: float = 0.25,
                seed: int = 0) -> dict[str, list[str]]:
    """Fold `fold` of a stratified `num_folds`-fold split by track; validation carved from the training part."""
    from sklearn.model_selection import StratifiedKFold, train_test_split

    if not 0 <= fold < num_folds:
        raise ValueError(f"fold must be in [0, {num_folds}), got {fold}")
    folds = StratifiedKFold(num_folds, shuffle=True, random_state=seed).split(np.zeros(len(keys)), labels)
    rest_idx, test_idx = list(folds)[fold]
    rest = [keys[i] for i in rest_idx]
    train, val = train_test_split(rest, test_size=val_fraction, stratify=[labels[i] for i in rest_idx],
                                  random_state=seed)
    return {"train": sorted(train), "val": sorted(val), "test": sorted(keys[i] for i in test_idx)}


def list_split(keys: list[str], lists_dir: Path) -> dict[str, list[str]]:
    """The split named by `lists_dir/{train,valid,test}_filtered.txt`, matched on `genre/genre.NNNNN`.

    Clips on no list are left out; listed clips that are missing are counted in one log line.
    """
    def stem(key: str) -> str:
        return key.rsplit(".", 1)[0]

    by_stem = {stem(k): k for k in keys}
    split, missing = {}, 0
    for part, name in zip(PARTS, ("train", "valid", "test")):
        path = lists_dir / f"{name}_filtered.txt"
        if not path.is_file():
            raise FileNotFoundError(f"split list {path} not found; split_lists_dir must hold "
                                    "train_filtered.txt, valid_filtered.txt and test_filtered.txt")
        wanted = [stem(line.strip()) for line in path.read_text().splitlines() if line.strip()]
        split[part] = sorted(by_stem[s] for s in wanted if s in by_stem)
        missing += sum(s not in by_stem for s in wanted)
    if missing:
        log.info("split lists name %d clip(s) that are not in this dataset", missing)
    return split


def official_split(keys: list[str], own: dict[str, list[str]]) -> dict[str, list[str]]:
    """The dataset's own split `own` ({"train", "val", "test"} -> clip keys) restricted to `keys`; keys in no part
    are left out and counted in one log line. ValueError if a part ends up empty."""
    present = set(keys)
    split = {part: sorted(k for k in own.get(part, ()) if k in present) for part in PARTS}
    outside = len(present - set(sum(split.values(), [])))
    if outside:
        log.info("%d clip(s) are in no part of the dataset's own split: left out", outside)
    empty = [part for part in PARTS if not split[part]]
    if empty:
        raise ValueError(f"the dataset's own split has no usable clip in its {' and '.join(empty)} part")
    return split


def load_or_save(path: Path, split: dict[str, list[str]]) -> dict[str, list[str]]:
    """Reuses the split saved at `path` if it covers the same tracks; else saves `split` there."""
    if path.is_file():
        saved = json.loads(path.read_text())
        if sorted(sum(saved.values(), [])) == sorted(sum(split.values(), [])):
            return saved
        log.warning("the clips changed since %s was saved: making a new split", path)
    check_disjoint(split)
    atomic_write_text(path, json.dumps(split, indent=1))  # DDP processes may save at once: a temp file each
    return split


def check_disjoint(split: dict[str, list[str]]) -> None:
    """Raises if any track is in two parts."""
    seen: set[str] = set()
    for part in PARTS:
        overlap = seen & set(split[part])
        if overlap:
            raise ValueError(f"track(s) in two splits: {sorted(overlap)[:3]}")
        seen |= set(split[part])


def choose(keys: list[str], labels: list[int], genres: list[str], kind: str = "random", test_fraction: float = 0.2,
           val_fraction: float = 0.25, num_folds: int = 5, fold: int = 0, seed: int = 0,
           lists_dir: Path | None = None, where: str = "the dataset",
           own: dict[str, list[str]] | None = None) -> tuple[dict[str, list[str]], str]:
    """The track-level split of `keys` (labels: indices into `genres`) that the settings ask for, and the file name
    it is saved under (`load_or_save`); `own` is the dataset's own split, for kind "official". A dataset too small
    for it is a SettingsError naming the options, with the clip count of each genre; `where` names the dataset."""
    from genre_cnn.errors import SettingsError

    counts = {g: labels.count(i) for i, g in enumerate(genres) if labels.count(i)}
    if len(counts) < 2:
        raise SettingsError(f"--data.data_dir {where}: a classifier needs at least 2 genres with usable clips, "
                            f"found {len(counts)} ({', '.join(counts) or 'none'})")
    if kind == "official":
        if own is None:
            raise SettingsError(f"--data.split official: {where} has no split of its own; use random, kfold or lists")
        try:
            return official_split(keys, own), "split-official.json"
        except ValueError as err:
            raise SettingsError(f"--data.split official: {where}: {err}; use random or kfold") from None
    try:
        if kind == "lists":
            if lists_dir is None:
                raise SettingsError("--data.split lists needs --data.split_lists_dir (e.g. ../shared/gtzan_splits)")
            tag = hashlib.sha256(str(lists_dir.resolve()).encode()).hexdigest()[:8]  # another list set, another file
            return list_split(keys, lists_dir), f"split-lists-{tag}.json"
        if kind == "kfold":
            return (kfold_split(keys, labels, fold, num_folds, val_fraction, seed),
                    f"split-kfold{num_folds}-fold{fold}-seed{seed}.json")
        return (random_split(keys, labels, test_fraction, val_fraction, seed),
                f"split-random-{test_fraction:g}-{val_fraction:g}-seed{seed}.json")
    except ValueError as err:  # scikit-learn: a part would be empty, or a genre has too few clips to stratify
        options = ("--data.num_folds, --data.val_fraction" if kind == "kfold"
                   else "--data.test_fraction, --data.val_fraction")
        sizes = ", ".join(f"{g} {n}" for g, n in counts.items())
        raise SettingsError(f"{options}: {len(keys)} clips ({sizes}) cannot be split by genre into "
                            f"train, val and test parts with these settings ({err})") from None
