"""Track-level train / validation / test splits, saved beside the cache and reused.

    from genre_cnn.data.splits import Split
    split, file_name = Split(kind="kfold", fold=2).make(keys, labels, genres)    # train.py's --data.split.* options

Every split is by track: all windows of a clip belong to the split of that clip, so no window of a test
track can reach training. Five kinds:
- `official`: the dataset's own split (genre_cnn.data.sources: `Source.official_split()`, e.g. FMA's artist-disjoint
  training / validation / test sets), restricted to the clips that are there.
- `random`: stratified test_fraction for test (8:2), then val_fraction of the rest for validation (1:3).
- `kfold`: stratified k-fold by track; fold k is the test part, validation is carved from the rest.
- `lists`: the artist-filtered GTZAN split of Kereliuk, Sturm & Larsen (2015), read from
  `{train,valid,test}_filtered.txt` files of `genre/genre.NNNNN.wav` lines.
- `groups`: cross-fitting over named groups of clips (`groups`: name -> patterns of clip keys, fnmatch-style):
  group `fold` (in name order) is the test part, every other clip trains, and there is no validation part;
  train.py then holds each group out in turn, fits the temperature on their pooled out-of-fold predictions and
  trains the model it keeps on every clip (how the ready model is made).

Copies of one recording (`together`: groups of clip keys, genre_cnn.data.duplicates) stay on one side of every
kind: `random` and `kfold` split one clip of each group and put its copies with it; in `groups` the copies join the
group of the first copy a pattern names; where `lists` or `official` put copies in two parts, each group stays in
the first of them (train, then val) and its copies in later parts are left out, said in one line: no test clip is
then a copy of a training clip.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from genre_cnn.bounds import out_of
from genre_cnn.data.layout import warn_once
from genre_cnn.errors import SettingsError
from genre_cnn.paths import atomic_write_text, resolve

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
            raise SettingsError(f"--data.split.lists_dir: split list {path} not found; it must hold "
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


def by_group(keys: list[str], labels: list[int], together: list[list[str]]
             ) -> tuple[list[str], list[int], dict[str, list[str]]]:
    """What a random or k-fold split divides so that copies land in one part: `keys` and `labels` but the copies
    after the first of each group of `together`, and each first key's group (the keys of it that are in `keys`)."""
    present = set(keys)
    copies = {}
    for group in together:
        found = sorted(k for k in group if k in present)
        if len(found) > 1:
            copies[found[0]] = found
    later = {k for found in copies.values() for k in found[1:]}
    kept = [(k, label) for k, label in zip(keys, labels) if k not in later]
    return [k for k, _ in kept], [label for _, label in kept], copies


def with_copies(split: dict[str, list[str]], copies: dict[str, list[str]]) -> dict[str, list[str]]:
    """`split` with each first key of a group (`by_group`) replaced by the whole group."""
    return {part: sorted(c for k in keys for c in copies.get(k, [k])) for part, keys in split.items()}


def drop_later_copies(split: dict[str, list[str]], together: list[list[str]], what: str) -> dict[str, list[str]]:
    """A fixed split (`what`: the split lists, the dataset's own) with each group of copies that it puts in two parts
    kept in the first of them (train, val, test) only: its copies in later parts are left out, said in one line."""
    part_of = {k: part for part in PARTS for k in split[part]}
    dropped: dict[str, str] = {}
    for group in together:
        parts = {part_of[k] for k in group if k in part_of}
        first = min(parts, key=PARTS.index) if parts else None
        dropped.update({k: part_of[k] for k in group if part_of.get(k, first) != first})
    if dropped:
        names = sorted(dropped)
        shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
        parts = " and ".join(p for p in PARTS if p in dropped.values())
        warn_once(f"{what} puts copies of the same audio in two parts: {len(names)} copy(ies) left out of {parts} "
                  f"({shown}), each group kept in its first part (the run's report.md lists them)")
    return {part: [k for k in split[part] if k not in dropped] for part in PARTS}


def load_or_save(path: Path, split: dict[str, list[str]], together: list[list[str]] = ()) -> dict[str, list[str]]:
    """Reuses the split saved at `path` if it covers the same tracks and keeps each group of copies (`together`) in
    one part; else saves `split` there."""
    if path.is_file():
        saved = json.loads(path.read_text())
        part_of = {k: part for part, keys in saved.items() for k in keys}
        apart = any(len({part_of.get(k) for k in group} - {None}) > 1 for group in together)
        if sorted(sum(saved.values(), [])) == sorted(sum(split.values(), [])) and not apart:
            return saved
        log.warning("the clips changed since %s was saved%s: making a new split", path,
                    ", or it puts copies of the same audio in two parts" if apart else "")
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


def group_split(keys: list[str], groups: dict[str, list[str]], fold: int,
                together: list[list[str]] = ()) -> dict[str, list[str]]:
    """Group number `fold` (in name order) as the test part, every other clip as train, no validation part: the
    clips whose key matches one of its patterns (fnmatch), each in at most one group, and the copies of each
    (`together`: groups of keys), which join the group of their first copy that a pattern names."""
    names = sorted(groups)
    member = {name: {k for k in keys if any(fnmatch.fnmatchcase(k, p) for p in groups[name])} for name in names}
    for a, b in ((a, b) for i, a in enumerate(names) for b in names[i + 1:]):
        if member[a] & member[b]:
            raise ValueError(f"clip {sorted(member[a] & member[b])[0]} is in groups {a} and {b}")
    present, spread = set(keys), 0
    for copies in together:
        owners = [name for k in sorted(copies) for name in names if k in member[name]]
        if owners:
            spread += len(set(owners)) > 1
            for name in names:
                member[name] -= set(copies)
            member[owners[0]] |= set(copies) & present
    if spread:
        warn_once(f"--data.split.groups: {spread} group(s) of copies of the same audio are named by two groups: each "
                  "joins the group of its first copy")
    empty = [name for name in names if not member[name]]
    if empty:
        raise ValueError(f"no clip matches group {empty[0]}")
    test = member[names[fold]]
    return {"train": sorted(set(keys) - test), "val": [], "test": sorted(test)}


@dataclass(frozen=True)
class Split:
    """How the clips are split by track (train.py's `--data.split.*` options).

    Args:
        kind: "official" (the dataset's own split, e.g. FMA's artist-disjoint one), "random" (stratified 8:2
            train:test, validation a quarter of train), "kfold" (fold `fold` of `num_folds` is the test part),
            "lists" (artist-filtered lists in `lists_dir`) or "groups" (cross-fitting over `groups`); default:
            "official" for a dataset that has its own split, else "random".
        lists_dir: the folder of {train,valid,test}_filtered.txt (kind "lists").
        test_fraction: of the clips, for test (kind "random").
        val_fraction: of the rest, for validation ("random", "kfold").
        num_folds: folds of "kfold".
        fold: the test fold ("kfold"), or the group held out ("groups", in name order).
        seed: of the random split; the split is saved beside the cache and reused.
        groups: group name -> patterns of clip keys (kind "groups"), e.g. {"A": ["*/gtzan_unseen/*.0007?.*"]}.
    """

    kind: Literal["official", "random", "kfold", "lists", "groups"] | None = None
    lists_dir: str | None = None
    test_fraction: float = 0.2
    val_fraction: float = 0.25
    num_folds: int = 5
    fold: int = 0
    seed: int = 0
    groups: dict[str, list[str]] | None = None

    def __post_init__(self) -> None:
        """SettingsError naming the option for a setting that could only end in a traceback later."""
        for option, value in (("test_fraction", self.test_fraction), ("val_fraction", self.val_fraction)):
            if not 0 < value < 1:  # validation picks the best epoch: it cannot be empty
                raise SettingsError(f"--data.split.{option} must be between 0 and 1 (exclusive), got {value}")
        checks = (("num_folds", self.num_folds, 2, 1000), ("seed", self.seed, 0, 2**32 - 1),
                  ("fold", self.fold, 0, (len(self.groups or {}) if self.kind == "groups" else self.num_folds) - 1))
        for option, value, low, high in checks:
            if why := out_of(value, low, high):
                raise SettingsError(f"--data.split.{option} {why}")
        if self.kind == "lists" and not self.lists_dir:
            raise SettingsError("--data.split.kind lists needs --data.split.lists_dir (e.g. ../shared/gtzan_splits)")
        if self.kind == "groups" and len(self.groups or {}) < 2:
            raise SettingsError("--data.split.kind groups needs at least two --data.split.groups (name: [patterns])")

    @property
    def has_validation(self) -> bool:
        """Whether the split has a validation part (every kind but "groups")."""
        return self.kind != "groups"

    def make(self, keys: list[str], labels: list[int], genres: list[str], where: str = "the dataset",
             own: dict[str, list[str]] | None = None,
             together: list[list[str]] = ()) -> tuple[dict[str, list[str]], str]:
        """The track-level split of `keys` (labels: indices into `genres`), and the file name it is saved under
        (`load_or_save`); `own` is the dataset's own split, for kind "official"; each group of `together` (keys of
        copies of one recording) is kept on one side. A dataset too small for it is a SettingsError naming the
        options, with the clip count of each genre; `where` names the dataset."""
        kind = self.kind or "random"
        counts = {g: labels.count(i) for i, g in enumerate(genres) if labels.count(i)}
        if len(counts) < 2:
            raise SettingsError(f"--data.source {where}: a classifier needs at least 2 genres with usable clips, "
                                f"found {len(counts)} ({', '.join(counts) or 'none'})")
        if kind == "official":
            if own is None:
                raise SettingsError(f"--data.split.kind official: {where} has no split of its own; use random, kfold "
                                    "or lists")
            try:
                split = official_split(keys, own)
                return drop_later_copies(split, together, f"{where}'s own split"), "split-official.json"
            except ValueError as err:
                raise SettingsError(f"--data.split.kind official: {where}: {err}; use random or kfold") from None
        try:
            if kind == "groups":
                tag = hashlib.sha256(json.dumps(self.groups, sort_keys=True).encode()).hexdigest()[:8]
                return (group_split(keys, self.groups, self.fold, together),
                        f"split-groups-{tag}-fold{self.fold}.json")
            if kind == "lists":
                lists_dir = resolve(self.lists_dir)
                tag = hashlib.sha256(str(lists_dir.resolve()).encode()).hexdigest()[:8]  # another list set: a file
                return (drop_later_copies(list_split(keys, lists_dir), together, f"the split lists in {lists_dir}"),
                        f"split-lists-{tag}.json")
            firsts, first_labels, copies = by_group(keys, labels, together)
            if kind == "kfold":
                return (with_copies(kfold_split(firsts, first_labels, self.fold, self.num_folds, self.val_fraction,
                                                self.seed), copies),
                        f"split-kfold{self.num_folds}-fold{self.fold}-seed{self.seed}.json")
            return (with_copies(random_split(firsts, first_labels, self.test_fraction, self.val_fraction, self.seed),
                                copies),
                    f"split-random-{self.test_fraction:g}-{self.val_fraction:g}-seed{self.seed}.json")
        except ValueError as err:  # scikit-learn: a part would be empty, or a genre has too few clips to stratify
            if kind == "groups":
                raise SettingsError(f"--data.split.groups: {err}") from None
            options = ("--data.split.num_folds, --data.split.val_fraction" if kind == "kfold"
                       else "--data.split.test_fraction, --data.split.val_fraction")
            sizes = ", ".join(f"{g} {n}" for g, n in counts.items())
            raise SettingsError(f"{options}: {len(keys)} clips ({sizes}) cannot be split by genre into "
                                f"train, val and test parts with these settings ({err})") from None
