"""The feature store: a dataset's clips with their features computed once (genre_cnn.data.cache), and a record of
a complete cache, so that asking for it again costs one `stat` per clip instead of opening every cache entry.

    from genre_cnn.data.store import FeatureStore
    store = FeatureStore(clip_seconds=30.0)
    clips = store.prepare(source, extractor)                 # caches what is missing; returns the usable clips
    features = store.clipset(source, extractor, "spec")      # a ClipSet of the cached clips (genre_cnn.data.clipset)
    python -m genre_cnn.data.store DATA_DIR      # caches a folder-per-genre dataset; its hand-crafted vectors' shape

train.py's `--data.features.*` options are its settings. After a build, `CACHE_DIR/complete.json` lists every clip
with its file's size and modification time, each cache entry's identity (inode, size, modification time) and its
audio's fingerprint, and why each unusable clip was skipped; `prepare` trusts the cache when the dataset lists the
same clips with the same stamps and every entry is there as recorded, and otherwise builds what is missing (a
changed file is computed again, a fixed one retried, an entry replaced since checked again). Runs of earlier
versions left no record, or one without fingerprints: their caches are checked entry by entry once (the
fingerprints computed, the features kept), then recorded.

Copies of one recording (genre_cnn.data.duplicates) are found from the fingerprints: copies filed under two genres
or more are said in one line and left out of `prepare`'s, `cached`'s and `clipset`'s clips; the others are kept,
and `duplicates` gives them to the split, which keeps each group on one side.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genre_cnn.bounds import SECONDS, out_of
from genre_cnn.data.cache import Extractor, FeatureSettings, build_cache, cached_clips, entry_path
from genre_cnn.data.clipset import ClipSet
from genre_cnn.data.duplicates import Duplicates
from genre_cnn.data.layout import Clip, DataError, warn_once
from genre_cnn.errors import SettingsError
from genre_cnn.paths import atomic_write_text

log = logging.getLogger(__name__)

RECORD = "complete.json"


@dataclass(frozen=True)
class FeatureStore:
    """Args:
    clip_seconds: length every dataset clip is fixed to (its centred excerpt, or looped if shorter).
    min_seconds: shorter files are skipped.
    workers: processes computing features (default: all cores).
    in_memory: hold the CNN's cached spectrograms in RAM (true), or read each clip's cache entry when a loader
        needs it (false: memory stays flat as the dataset grows; same batches, same results); default: in RAM when
        they take at most a quarter of the machine's memory (genre_cnn.data.ondisk).
    """

    clip_seconds: float = 30.0
    min_seconds: float = 3.0
    workers: int | None = None
    in_memory: bool | None = None

    def __post_init__(self) -> None:
        why = out_of(self.clip_seconds, *SECONDS["clip_seconds"])
        option, why = ("clip_seconds", why) if why else ("min_seconds", out_of(self.min_seconds, 0.0, 600.0))
        if not why and self.workers is not None:
            option, why = "workers", out_of(self.workers, 1, 1024)
        if why:
            raise SettingsError(f"--data.features.{option} {why}")

    def settings(self, extractor: Extractor) -> FeatureSettings:
        return FeatureSettings(extractor, self.clip_seconds, self.min_seconds)

    def cache_dir(self, source, extractor: Extractor) -> Path:
        """Where `source`'s (genre_cnn.data.sources.Source) features by `extractor` are cached."""
        return self.settings(extractor).cache_dir(source.cache_source())

    def prepare(self, source, extractor: Extractor) -> list[Clip]:
        """Makes `source` ready (download, generation) and every clip's features cached; returns the usable clips (but
        copies of one recording filed under several genres, said in one line each). Writes files and keeps no
        state. DataError if there is no usable audio."""
        source.ensure()
        genres = source.genres()
        if len(genres) < 2:  # before any feature work
            raise SettingsError(f"--data.source {source.describe()}: a classifier needs at least 2 genres, found "
                                f"{len(genres)} ({', '.join(genres) or 'none'})")
        clips, cache_dir = source.clips(), self.cache_dir(source, extractor)
        record = _read(cache_dir / RECORD)
        if record is not None and _complete(record, clips, cache_dir):
            for reason in record["skipped"].values():
                warn_once(f"skipped {reason}")
            usable = [c for c in clips if c.key in record["cached"]]
            fingerprints = record["fingerprints"]
        else:
            failed: dict[str, str] = {}
            fingerprints = {}
            usable = build_cache(clips, cache_dir, self.settings(extractor), self.workers, failed=failed,
                                 fingerprints=fingerprints)
            if not usable:
                raise DataError(f"no usable audio file in {source.describe()}: every file was skipped (see above)")
            stamps = {c.key: _stamp(c.path) for c in clips}
            atomic_write_text(cache_dir / RECORD, json.dumps({
                "cached": {c.key: stamps[c.key] for c in usable},
                "skipped": {key: reason for key, reason in failed.items()},
                "stamps": {key: stamps[key] for key in failed},
                "entries": {c.key: _identity(entry_path(cache_dir, c)) for c in usable},
                "fingerprints": fingerprints}))
        found = Duplicates.find(usable, fingerprints)
        found.say_conflicts()
        return [c for c in usable if c.key not in found.left_out]

    def duplicates(self, source, extractor: Extractor) -> Duplicates:
        """The copies of one recording among `source`'s cached clips, from the fingerprints the cache recorded
        (after `prepare`; none without its record)."""
        record = _read(self.cache_dir(source, extractor) / RECORD) or {}
        fingerprints = record.get("fingerprints") or {}
        return Duplicates.find([c for c in source.clips() if c.key in fingerprints], fingerprints)

    def clipset(self, source, extractor: Extractor, name: str, pool: Callable[[np.ndarray], np.ndarray] | None = None,
                genres: list[str] | None = None) -> ClipSet:
        """The cached clips of `source` (`cached`) as a ClipSet of their array `name` (after `prepare`), labelled by
        `genres` (default: the source's)."""
        return ClipSet(self.cached(source, extractor), genres or source.genres(), self.cache_dir(source, extractor),
                       name, pool, self.in_memory)

    def cached(self, source, extractor: Extractor) -> list[Clip]:
        """The clips of `source` whose features are cached, in order (after `prepare`), but the copies of one
        recording filed under several genres."""
        left_out = self.duplicates(source, extractor).left_out
        return [c for c in cached_clips(source.clips(), self.cache_dir(source, extractor)) if c.key not in left_out]


def _stamp(path: Path) -> list[int]:
    st = path.stat()
    return [st.st_size, st.st_mtime_ns]


def _identity(path: Path) -> list[int]:
    """A cache entry's inode, size and modification time: another file put in its place (copied or moved) differs."""
    st = path.stat()
    return [st.st_ino, st.st_size, st.st_mtime_ns]


def _read(path: Path) -> dict | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and {"cached", "skipped", "stamps"} <= set(record) else None


def _complete(record: dict, clips: list[Clip], cache_dir: Path) -> bool:
    """Whether the record lists exactly `clips`, each with its file's current size and modification time, and every
    usable clip's entry is there as recorded, with its fingerprint: one stat per clip and per entry, no entry
    opened."""
    stamps = {**record["cached"], **record["stamps"]}
    if len(stamps) != len(clips) or set(record["skipped"]) != set(record["stamps"]):
        return False
    entries, fingerprints = record.get("entries") or {}, record.get("fingerprints") or {}
    try:
        return all(stamps.get(c.key) == _stamp(c.path) for c in clips) and all(
            c.key in fingerprints and entries.get(c.key) == _identity(entry_path(cache_dir, c))
            for c in clips if c.key in record["cached"])
    except OSError:  # a file gone since it was listed
        return False


if __name__ == "__main__":
    import sys

    from genre_cnn.audio.features import SpectralFeatures
    from genre_cnn.data.sources.folder import Folder

    if len(sys.argv) != 2:
        sys.exit("usage: python -m genre_cnn.data.store DATA_DIR")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    source, store = Folder(sys.argv[1]), FeatureStore()
    store.prepare(source, SpectralFeatures())
    clips = store.clipset(source, SpectralFeatures(), "hand")
    print(f"{len(clips)} clips of {len(clips.genres)} genres, features {clips.features.shape}")
