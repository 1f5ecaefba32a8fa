"""Splits are by track, stratified, reproducible, saved and reused; the artist-filtered lists work."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from genre_cnn.data.splits import check_disjoint, kfold_split, list_split, load_or_save, random_split
from tests.conftest import GTZAN_SPLITS

KEYS = [f"g{g}/g{g}.{i:05d}.wav" for g in range(10) for i in range(100)]
LABELS = [g for g in range(10) for _ in range(100)]


def test_random_split_is_8_2_with_a_quarter_of_train_for_validation():
    split = random_split(KEYS, LABELS, seed=0)
    assert {p: len(v) for p, v in split.items()} == {"train": 600, "val": 200, "test": 200}
    check_disjoint(split)
    assert sorted(sum(split.values(), [])) == sorted(KEYS)
    assert set(Counter(k.split("/")[0] for k in split["test"]).values()) == {20}  # stratified


def test_same_seed_same_split_other_seed_other_split():
    assert random_split(KEYS, LABELS, seed=3) == random_split(KEYS, LABELS, seed=3)
    assert random_split(KEYS, LABELS, seed=3)["test"] != random_split(KEYS, LABELS, seed=4)["test"]


def test_kfold_test_parts_cover_every_track_once():
    tests = [kfold_split(KEYS, LABELS, fold=f, num_folds=5)["test"] for f in range(5)]
    assert sorted(sum(tests, [])) == sorted(KEYS)
    for f in range(5):
        check_disjoint(kfold_split(KEYS, LABELS, fold=f, num_folds=5))
    with pytest.raises(ValueError):
        kfold_split(KEYS, LABELS, fold=5, num_folds=5)


def test_saved_split_is_reused_and_renewed_when_clips_change(tmp_path):
    path = tmp_path / "split.json"
    first = load_or_save(path, random_split(KEYS, LABELS, seed=0))
    assert load_or_save(path, random_split(KEYS, LABELS, seed=9)) == first  # reused from disk
    fewer = random_split(KEYS[:-10], LABELS[:-10], seed=9)
    assert load_or_save(path, fewer) == fewer
    assert json.loads(path.read_text()) == fewer


def test_overlapping_split_is_refused():
    with pytest.raises(ValueError, match="two splits"):
        check_disjoint({"train": ["a", "b"], "val": ["c"], "test": ["b"]})


@pytest.mark.skipif(not GTZAN_SPLITS.is_dir(), reason="../shared/gtzan_splits not found")
def test_artist_filtered_lists_match_au_or_wav_names():
    genres = ["blues", "classical", "country", "disco", "hiphop", "jazz", "metal", "pop", "reggae", "rock"]
    keys = [f"{g}/{g}.{i:05d}.au" for g in genres for i in range(100)]
    split = list_split(keys, GTZAN_SPLITS)
    assert {p: len(v) for p, v in split.items()} == {"train": 443, "val": 197, "test": 290}
    check_disjoint(split)
