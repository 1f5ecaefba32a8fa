"""The feature cache: every clip's features (log-mel + chroma tensor and hand-crafted vector), computed once.

    python -m genre_cnn.data.cache DATA_DIR CACHE_DIR     # builds (or completes) a cache by hand

One `.npz` per clip at `CACHE_DIR/clips/<clip key>.npz` (`genre/name`), written to a temporary name and renamed, so a
killed run leaves no file that is later trusted and a rerun computes only the clips still missing. Each file
records the source file's size and modification time, so an edited source is recomputed. A clip whose dataset kind
knows a digest of its audio (a library's, `Clip.content`) is cached at `CACHE_DIR/content/<digest>.npz` instead,
valid while the audio is the same: a moved, renamed or retagged file is not computed again. The cache folder
name carries a hash of the feature settings (see `cache_name`), so changed settings never reuse features.
Worker processes end by themselves soon after the process that started them dies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing as mp
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from genre_cnn.audio.decode import AudioError
from genre_cnn.audio.features import SpectralFeatures
from genre_cnn.data.layout import Clip, warn_once
from genre_cnn.paths import atomic_write, atomic_write_text, die_with_parent

log = logging.getLogger(__name__)

FEATURE_VERSION = 2  # bump when the feature code changes in a way the settings do not show
STARTED = time.time()  # about when this process started: a temporary file older than that is no one's


class Extractor(Protocol):
    """What the cache runs on each clip (a model family's `features`, e.g. features.SpectralFeatures or
    musicnn.MusicnnEmbeddings). Picklable, so that worker processes can run it."""

    sample_rate: int  # the rate clips are decoded at

    def settings(self) -> dict:
        """What determines its output (part of the cache's name)."""

    def build(self) -> object:
        """Its heavy parts (networks, filterbanks), built once per process."""

    def __call__(self, y: np.ndarray, built: object) -> dict[str, np.ndarray]:
        """One clip (samples,) -> its named arrays."""


@dataclass(frozen=True)
class FeatureSettings:
    """Everything that determines a clip's cached features: what is extracted (`extractor`, with its front-end
    settings) and the clip-length policy (seconds)."""

    extractor: Extractor = SpectralFeatures()
    clip_seconds: float = 30.0
    min_seconds: float = 3.0

    def describe(self) -> dict:
        return {**self.extractor.settings(), "clip_seconds": self.clip_seconds, "min_seconds": self.min_seconds,
                "version": FEATURE_VERSION}

    def cache_name(self, source: str) -> str:
        """A folder name for the features of the dataset at `source` (its absolute path, or what names a dataset of
        several folders): the last folder's name, then a hash of the settings and the whole of `source`, e.g.
        `gtzan-1a2b3c4d5e`."""
        blob = json.dumps({**self.describe(), "source": source}, sort_keys=True)
        return f"{Path(source).name or 'data'}-{hashlib.sha256(blob.encode()).hexdigest()[:10]}"

    def cache_dir(self, source: str | Path) -> Path:
        """Where the features of the dataset `source` (a Source's `cache_source()`, or a folder) are cached:
        `<home>/data/cache/<cache_name>`, never beside the user's audio."""
        from genre_cnn.paths import home

        source = str(Path(source).resolve()) if isinstance(source, Path) else source
        return home() / "data" / "cache" / self.cache_name(source)


def cached_clips(clips: list[Clip], cache_dir: Path) -> list[Clip]:
    """The clips whose features are in the cache (those `build_cache` could read), in order."""
    return [c for c in clips if entry_path(cache_dir, c).is_file()]


def _source_stamp(path: Path) -> np.ndarray:
    st = path.stat()
    return np.array([st.st_size, st.st_mtime_ns], dtype=np.int64)


def _is_fresh(entry: Path, source: Path) -> bool:
    try:
        with np.load(entry) as z:
            return bool(np.array_equal(z["source"], _source_stamp(source)))
    except Exception:  # noqa: BLE001 - missing, truncated or foreign file: recompute it
        return False


_EXTRACTOR: tuple | None = None  # (settings, built front end) of this process


def _init_worker(settings: FeatureSettings, parent: int) -> None:
    """Pool initializer: one torch thread per worker process (the pool uses every core), a parent watch."""
    import torch

    torch.set_num_threads(1)
    die_with_parent(parent)
    _built(settings)


def _built(settings: FeatureSettings):
    global _EXTRACTOR
    if _EXTRACTOR is None or _EXTRACTOR[0] != settings:
        _EXTRACTOR = (settings, settings.extractor.build())
    return _EXTRACTOR[1]


def _compute(job: tuple[Path, Path, FeatureSettings]) -> str | None:
    """Computes and writes one clip; returns None, or the one-line reason it was skipped (its stale
    cache entry, if any, is removed so that it is not trained on). Anything but unusable audio is a bug and
    keeps its traceback."""
    from genre_cnn.audio.decode import fix_length, load_audio

    source, dest, s = job
    sample_rate = s.extractor.sample_rate
    try:
        y = load_audio(source, sample_rate, s.min_seconds)
    except AudioError as err:
        dest.unlink(missing_ok=True)
        return str(err)
    y = fix_length(y, int(round(s.clip_seconds * sample_rate)))  # (samples,)
    arrays = s.extractor(y, _built(s))
    atomic_write(dest, lambda f: np.savez(f, **arrays, source=_source_stamp(source)))
    return None


def _pooled(jobs: list[tuple[Path, Path, FeatureSettings]], workers: int, settings: FeatureSettings,
            done: Callable[[], None]) -> list[str | None]:
    """`_compute` of every job, in order, by `workers` processes; `done` is called once per finished job.

    This process computes the first job before the workers start: a fresh install compiles librosa's numba
    kernels on first use (minutes on a busy machine) and caches them on disk, so it happens once, not in every
    worker. The workers then take jobs from the end of the list; until the first of them has answered (their
    start-up: imports), this process goes on with jobs from the front."""
    reasons: list[str | None] = [_compute(jobs[0])]
    done()
    rest = jobs[1:]
    if not rest:
        return reasons
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    pool = ProcessPoolExecutor(min(workers, len(rest)), mp_context=ctx, initializer=_init_worker,
                               initargs=(settings, os.getpid()))  # a fresh server process to fork from
    answered = threading.Event()
    try:
        futures = [pool.submit(_compute, job) for job in reversed(rest)][::-1]
        for future in futures:
            future.add_done_callback(lambda f: f.cancelled() or answered.set())
        n = 0  # jobs of `rest` computed here
        while n < len(rest) and not answered.is_set() and futures[n].cancel():
            reasons.append(_compute(rest[n]))
            done()
            n += 1
        for _ in as_completed(futures[n:]):
            done()
        return reasons + [future.result() for future in futures[n:]]
    finally:  # on an error, the jobs not started are dropped, not waited for
        pool.shutdown(cancel_futures=True)


def entry_path(cache_dir: Path, clip: Clip) -> Path:
    """Where a clip's features are cached: `clips/<key>.npz` (a key names no folder above `clips/`), or
    `content/<digest>.npz` for a clip whose dataset kind knows its audio's digest (`Clip.content`)."""
    if clip.content:
        return cache_dir / "content" / f"{clip.content}.npz"
    return cache_dir / "clips" / f"{clip.key}.npz"


def remove_stale_tmp(cache_dir: Path, before: float | None = None) -> int:
    """Removes the `.*.tmp` files of `atomic_write` under cache_dir last written before `before` (default:
    this process's start), left by a run killed mid-write; a concurrent run's file being written is newer."""
    before = STARTED if before is None else before
    stale = [p for p in cache_dir.rglob(".*.tmp") if p.is_file() and p.stat().st_mtime < before]
    for path in stale:
        path.unlink(missing_ok=True)
    if stale:
        log.info("removed %d stale temporary file(s) of an interrupted run from %s", len(stale), cache_dir)
    return len(stale)


def build_cache(clips: list[Clip], cache_dir: Path, settings: FeatureSettings, workers: int | None = None,
                progress: bool = True, failed: dict[str, str] | None = None) -> list[Clip]:
    """Computes the features of every clip not yet cached; returns the clips that are usable, and puts why each
    other one was skipped into `failed` (key -> reason) when given.

    Runs `workers` processes (default: all cores; this one computes the first clips while they start, see
    `_pooled`). Unusable files are logged, one line each, and summarised; they are retried on the next build (a
    fixed file is then picked up). Raises musicnn's WeightsNotFound before any clip is read if its weights are
    missing.
    """
    from tqdm.auto import tqdm

    if cache_dir.is_dir():
        remove_stale_tmp(cache_dir)
    # an entry filed under its audio's digest (written atomically) is valid whatever the file's stamp
    todo = [c for c in clips if not (entry_path(cache_dir, c).is_file() if c.content
                                     else _is_fresh(entry_path(cache_dir, c), c.path))]
    failed = {} if failed is None else failed
    if todo:
        log.info("caching features of %d clip(s) (%d already cached) in %s", len(todo), len(clips) - len(todo),
                 cache_dir)
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_text(cache_dir / "settings.json", json.dumps(settings.describe(), indent=2))
        jobs = [(c.path, entry_path(cache_dir, c), settings) for c in todo]
        workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
        _built(settings)  # here first: missing weights are one error, not one per clip or a broken pool
        bar = tqdm(total=len(jobs), desc="features", unit="clip", disable=not progress)

        def done() -> None:
            bar.set_postfix_str("")
            bar.update()

        if workers == 1:
            reasons = []
            for job in jobs:
                reasons.append(_compute(job))
                done()
        else:
            bar.set_postfix_str(f"starting: the first clip here, then {workers} worker processes (a first run "
                                "compiles and imports for a minute or more)")
            reasons = _pooled(jobs, workers, settings, done)
        bar.close()
        for clip, reason in zip(todo, reasons):
            if reason is not None:
                failed[clip.key] = reason
                warn_once(f"skipped {reason}")
    usable = [c for c in clips if c.key not in failed]
    if failed:
        log.warning("%d of %d file(s) skipped as unusable; %d usable", len(failed), len(clips), len(usable))
    return usable


def load_cache(clips: list[Clip], cache_dir: Path, names: tuple[str, ...] = ("spec", "hand")) -> list[np.ndarray]:
    """The named arrays of every clip, stacked: e.g. spectral (N, channels, frames) float16 and hand-crafted
    (N, features) float32."""
    stacks: list[list[np.ndarray]] = [[] for _ in names]
    for clip in clips:
        with np.load(entry_path(cache_dir, clip)) as z:
            for stack, name in zip(stacks, names, strict=True):
                stack.append(z[name])
    return [np.stack(s) for s in stacks]


def main() -> None:
    import argparse

    from genre_cnn.data.layout import DataError, dataset_clips

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("cache_dir", type=Path)
    parser.add_argument("--workers", type=int, default=None)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        clips = dataset_clips(args.data_dir)
    except DataError as err:
        raise SystemExit(f"error: {err}") from None
    usable = build_cache(clips, args.cache_dir, FeatureSettings(), args.workers)
    print(f"{len(usable)} of {len(clips)} clips cached in {args.cache_dir}")


if __name__ == "__main__":
    main()
