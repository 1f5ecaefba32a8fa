"""Copies of one recording (genre_cnn.data.duplicates): found by the fingerprint of their decoded audio at cache
time, kept on one side of every kind of split, listed in the report, and left out with one line when filed under
two genres."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.data import layout
from genre_cnn.data.duplicates import audio_fingerprint
from genre_cnn.data.splits import PARTS, Split
from genre_cnn.training.report import copies_markdown
from tests.test_datamodule import make_dm, tone_folder

GENRES = ["a", "b", "c"]
KEYS = [f"{g}/{g}.{i:05d}.wav" for g in GENRES for i in range(10)]
LABELS = [GENRES.index(k.split("/")[0]) for k in KEYS]
TOGETHER = [["a/a.00000.wav", "a/a.00001.wav", "a/a.00002.wav"], ["b/b.00003.wav", "b/b.00007.wav"]]


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Lines said once per process are said again in this test."""
    monkeypatch.setattr(layout, "_WARNED", set())


def part_of(split: dict[str, list[str]]) -> dict[str, str]:
    return {k: part for part, keys in split.items() for k in keys}


def assert_copies_on_one_side(split: dict[str, list[str]]) -> None:
    where = part_of(split)
    for group in TOGETHER:
        assert len({where.get(k) for k in group} - {None}) == 1, (group, split)


@pytest.mark.parametrize("kind", ["random", "kfold"])
def test_random_and_kfold_splits_keep_each_group_of_copies_in_one_part(kind):
    for n in range(5):  # five seeds, or five folds: a group split apart by chance would show in one of them
        options = {"seed": n} if kind == "random" else {"fold": n}
        split, _ = Split(kind=kind, **options).make(KEYS, LABELS, GENRES, together=TOGETHER)
        assert sorted(sum(split.values(), [])) == sorted(KEYS)  # no clip lost
        assert_copies_on_one_side(split)


def test_groups_put_the_copies_with_the_group_of_their_first_copy(fresh_warnings, caplog):
    groups = {"X": ["*/*.0000[0-4].wav"], "Y": ["*/*.0000[5-9].wav"]}  # b.00003 is in X, its copy b.00007 in Y
    for fold in (0, 1):
        split, _ = Split(kind="groups", groups=groups, fold=fold).make(KEYS, LABELS, GENRES, together=TOGETHER)
        assert_copies_on_one_side(split)
        assert part_of(split)["b/b.00007.wav"] == ("test" if fold == 0 else "train")  # with X, its first copy's
    assert "1 group(s) of copies of the same audio are named by two groups" in caplog.text


def test_fixed_lists_keep_each_group_in_its_first_part_and_say_which_copies_are_left_out(tmp_path, fresh_warnings,
                                                                                         caplog):
    parts = {"train": KEYS[0:1] + KEYS[3:20], "valid": KEYS[20:25], "test": KEYS[1:3] + KEYS[25:]}
    for name, keys in parts.items():  # a/a.00000 trains, its copies a.00001 and a.00002 are listed for test
        (tmp_path / f"{name}_filtered.txt").write_text("".join(f"{k}\n" for k in keys))
    split, _ = Split(kind="lists", lists_dir=str(tmp_path)).make(KEYS, LABELS, GENRES, together=TOGETHER)
    assert_copies_on_one_side(split)
    assert "a/a.00000.wav" in split["train"] and not {"a/a.00001.wav", "a/a.00002.wav"} & set(sum(split.values(), []))
    (line,) = [r.getMessage() for r in caplog.records if "copies of the same audio" in r.getMessage()]
    assert "2 copy(ies) left out of test (a/a.00001.wav, a/a.00002.wav)" in line
    own = {"train": KEYS[:3] + KEYS[10:15], "val": KEYS[15:20], "test": KEYS[20:]}
    split, _ = Split(kind="official").make(KEYS, LABELS, GENRES, own=own, together=[["a/a.00000.wav",
                                                                                     "c/c.00009.wav"]])
    assert "c/c.00009.wav" not in split["test"] and "a/a.00000.wav" in split["train"]


def test_the_fingerprint_is_of_the_samples_not_the_file(tmp_path):
    y = (np.random.default_rng(0).integers(-20000, 20000, 22050) / 32768).astype(np.float32)  # (samples,) 16-bit
    sf.write(tmp_path / "x.wav", y, 22050)
    sf.write(tmp_path / "x.flac", y, 22050)
    wav, flac = (sf.read(tmp_path / name, dtype="float32")[0] for name in ("x.wav", "x.flac"))
    assert audio_fingerprint(wav) == audio_fingerprint(flac) == audio_fingerprint(y)
    moved = y.copy()
    moved[100] += 1 / 32768  # one 16-bit step on one sample
    assert audio_fingerprint(moved) != audio_fingerprint(y)
    assert audio_fingerprint(y[:-1]) != audio_fingerprint(y)


def test_a_folder_with_copies_keeps_them_together_and_leaves_out_conflicting_labels(tmp_path, fresh_warnings,
                                                                                    caplog):
    root = tone_folder(tmp_path / "a", per_genre=5)
    low, _ = sf.read(root / "low" / "low.00000.wav", dtype="int16")
    (root / "low" / "again").mkdir()
    sf.write(root / "low" / "again" / "first take.flac", low, 22050)  # the same samples, another name and container
    (root / "mid" / "stolen.wav").write_bytes((root / "high" / "high.00001.wav").read_bytes())  # under two genres
    caplog.set_level(logging.INFO)
    dm = make_dm(root)
    copies = ["low/again/first take.flac", "low/low.00000.wav"]
    conflicting = {"high/high.00001.wav", "mid/stolen.wav"}
    assert dm.duplicates.together == [copies]
    where = part_of(dm.split)
    assert len({where[k] for k in copies}) == 1 and not conflicting & set(where)  # neither trained nor tested on
    assert len(where) == 17 - 2
    said = [r.getMessage() for r in caplog.records]
    assert [m for m in said if m.startswith("the same audio under 2 genres (high, mid)")], said
    assert [m for m in said if m.startswith("the same audio in several files: 1 group(s) of copies (2 files)")]
    record = json.loads((dm.cache_dir / "complete.json").read_text())
    assert record["fingerprints"]["low/low.00000.wav"] == record["fingerprints"]["low/again/first take.flac"]
    report = copies_markdown(dm.duplicates.summary(dm.split))
    assert f"- low ({where[copies[0]]}): `{root / copies[0]}`, `{root / copies[1]}`" in report
    assert f"- high, mid: `{root / 'high/high.00001.wav'}`, `{root / 'mid/stolen.wav'}`" in report
    assert not conflicting & set(dm.clipset.keys)  # nor loaded
    assert not conflicting & {c.key for c in dm.store.prepare(dm.source, dm.extractor)}  # nor given by the store
    assert sum(len(dm.idx[part]) for part in PARTS) == len(dm.clipset.keys) == 15
