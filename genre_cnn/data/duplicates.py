"""Copies of one recording in a dataset: clips whose decoded audio is the same, sample for sample.

    from genre_cnn.data.duplicates import Duplicates
    found = Duplicates.find(clips, fingerprints)   # clip key -> audio_fingerprint(decoded audio), at cache time
    found.together      # [[key, ...]]: copies filed under one genre, kept on one side of every split
    found.left_out      # {key, ...}: copies filed under two genres or more, neither trained nor tested on
    python -m genre_cnn.training.datamodule --data.source Folder --data.source.data_dir ~/music    # says what it found

GTZAN holds exact repeats of some excerpts (Sturm, "The GTZAN dataset: Its contents, its faults, their effects on
evaluation, and its future use", 2013), and a music folder often holds a song twice (a WAV and a FLAC of one rip, an
MP3 re-tagged and saved under another name). The feature cache fingerprints each clip's decoded audio; the feature
store (genre_cnn.data.store) finds the copies here, the split keeps each group of them on one side
(genre_cnn.data.splits), so no test clip is a copy of a training clip, and the run's report lists them.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from genre_cnn.data.layout import Clip, warn_once


def audio_fingerprint(y: np.ndarray) -> str:
    """The fingerprint of decoded audio `y` (samples,) float in [-1, 1]: a 128-bit BLAKE2b digest (32 hex digits) of
    every sample rounded to the 16-bit step it was most likely stored in (so of the length too).

    Made from the samples, not the file: a WAV and a FLAC of the same samples, or an MP3 re-tagged, decode to the same
    samples and get the same fingerprint, whatever their names, containers and tags. It finds exact copies only: a
    gain change or one sample moved by a 16-bit step or more gives another fingerprint (near copies are not merged).
    The whole signal is hashed, not its first and last seconds: at about 2 ms per 30-s clip on 2 cores, against
    tens of milliseconds to decode it, hashing less would save little and would merge clips that differ in between."""
    scaled = np.asarray(y) * 32768.0  # exact in float32 as in float64: a power of two
    steps = np.clip(np.rint(scaled), -32768, 32767).astype("<i2")  # (samples,)
    return hashlib.blake2b(steps.tobytes(), digest_size=16).hexdigest()


@dataclass(frozen=True)
class Duplicates:
    """Every group of two or more clips whose audio has one fingerprint, each group sorted by key, the groups by
    their first key."""

    groups: tuple[tuple[Clip, ...], ...] = ()

    @classmethod
    def find(cls, clips: list[Clip], fingerprints: dict[str, str]) -> Duplicates:
        """The groups of copies among `clips` (those with a fingerprint)."""
        by_audio: dict[str, list[Clip]] = defaultdict(list)
        for clip in clips:
            if clip.key in fingerprints:
                by_audio[fingerprints[clip.key]].append(clip)
        groups = (tuple(sorted(g, key=lambda c: c.key)) for g in by_audio.values() if len(g) > 1)
        return cls(tuple(sorted(groups, key=lambda g: g[0].key)))

    @property
    def conflicting(self) -> list[tuple[Clip, ...]]:
        """The groups filed under two genres or more: which label is right cannot be known."""
        return [g for g in self.groups if len({c.genre for c in g}) > 1]

    @property
    def together(self) -> list[list[str]]:
        """The keys of each group filed under one genre: a split keeps them on one side."""
        return [[c.key for c in g] for g in self.groups if len({c.genre for c in g}) == 1]

    @property
    def left_out(self) -> set[str]:
        """The keys of every clip of a conflicting group."""
        return {c.key for g in self.conflicting for c in g}

    def say_conflicts(self) -> None:
        """One warning line per conflicting group, naming its files (once per process)."""
        for group in self.conflicting:
            genres = sorted({c.genre for c in group})
            warn_once(f"the same audio under {len(genres)} genres ({', '.join(genres)}), left out of training and "
                      f"testing: {', '.join(str(c.path) for c in group)}")

    def summary(self, split: dict[str, list[str]]) -> dict:
        """What the report says of them, given the split made: each group of copies of one genre with the part it is
        in and its copies in no part (left out of a fixed split that had put them in two), and each conflicting group.
        Files are shown by path."""
        part_of = {key: part for part, keys in split.items() for key in keys}
        kept = []
        for group in (g for g in self.groups if len({c.genre for c in g}) == 1):
            parts = sorted({part_of[c.key] for c in group if c.key in part_of})
            kept.append({"genre": group[0].genre, "part": "+".join(parts) or None,
                         "files": [str(c.path) for c in group],
                         "left_out": [str(c.path) for c in group if c.key not in part_of and parts]})
        conflicting = [{"genres": sorted({c.genre for c in g}), "files": [str(c.path) for c in g]}
                       for g in self.conflicting]
        return {"kept_together": kept, "conflicting_genres": conflicting}

    def line(self) -> str | None:
        """The console's line about them, or None if there are none."""
        together, conflicting = self.together, self.conflicting
        if not self.groups:
            return None
        said = []
        if together:
            said.append(f"{len(together)} group(s) of copies ({sum(map(len, together))} files), each kept on one "
                        "side of the split")
        if conflicting:
            said.append(f"{len(conflicting)} filed under several genres, left out ({sum(map(len, conflicting))} "
                        "files)")
        return "the same audio in several files: " + "; ".join(said) + " (the run's report.md lists them)"
