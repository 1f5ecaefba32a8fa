"""The feature cache: every clip's features (log-mel + chroma tensor and hand-crafted vector), computed once.

    python -m genre_cnn.data.cache DATA_DIR CACHE_DIR     # builds (or completes) a cache by hand

One `.npz` per clip at `CACHE_DIR/clips/<clip key>.npz` (`genre/name`), written to a temporary name and renamed, so a
killed run leaves no file that is later trusted and a rerun computes only the clips still missing. Each file
records the source file's size and modification time, so an edited source is recomputed, and the fingerprint of
its decoded audio (`audio_fingerprint`), by which copies of one recording are found (genre_cnn.data.duplicates).
An entry whose arrays are not of the shape the others have (replaced by hand, or by a file of other settings) is
named in one line and computed again. The cache folder name carries a hash of the feature settings (see
`cache_name`), so changed settings never reuse features. Worker processes end by themselves soon after the
process that started them dies.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from genre_cnn.audio.decode import AudioError
from genre_cnn.audio.features import SpectralFeatures
from genre_cnn.data.duplicates import audio_fingerprint
from genre_cnn.data.layout import Clip, warn_once
from genre_cnn.data.pool import pooled
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


SHAPES = "shapes"  # an entry's arrays' shapes, as `_entry` gives them: ((name, shape), ...) sorted by name


def _entry(entry: Path, source: Path) -> dict | None:
    """What a cache entry made from `source` as it is now holds: {"fingerprint": its audio's, or None for an entry of
    an earlier version, "shapes": ((name, shape), ...)}, read from the headers only; None for an entry that is
    missing or made from another version of the file (or of another file); ValueError for one that is not a
    readable cache entry."""
    try:
        with np.load(entry) as z:
            if not np.array_equal(z["source"], _source_stamp(source)):
                return None
            return {"fingerprint": str(z["fingerprint"]) if "fingerprint" in z.files else None,
                    SHAPES: tuple((name, _shape(z, name)) for name in sorted(z.files)
                                  if name not in ("source", "fingerprint"))}
    except FileNotFoundError:
        return None
    except Exception as err:  # noqa: BLE001 - truncated, foreign or damaged file
        raise ValueError(f"not a readable cache entry ({type(err).__name__})") from None


def _shape(z, name: str) -> tuple[int, ...]:
    """The shape of array `name` of an open .npz, from its header (the data is not read)."""
    with z.zip.open(f"{name}.npy") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return tuple(read(f)[0])


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


def _compute(job: tuple[Path, Path, FeatureSettings, bool]) -> dict | str:
    """Computes and writes one clip; returns what `_entry` reads of the entry written, or the one-line reason it
    was skipped (its stale cache entry, if any, is removed so that it is not trained on). With `keep` (the job's
    last item: an entry up to date but without a fingerprint, written by an earlier version) the entry only gets its
    fingerprint and its features are kept. Anything but unusable audio is a bug and keeps its traceback."""
    from genre_cnn.audio.decode import fix_length, load_audio

    source, dest, s, keep = job
    sample_rate = s.extractor.sample_rate
    try:
        y = load_audio(source, sample_rate, s.min_seconds)
    except AudioError as err:
        dest.unlink(missing_ok=True)
        return str(err)
    fingerprint = audio_fingerprint(y)  # of the whole file, before it is cut to the clip length
    if keep:
        with np.load(dest) as z:  # in the order they were written (genre_cnn.data.ondisk reads them in place)
            arrays = {name: z[name] for name in z.files if name not in ("source", "fingerprint")}
    else:
        clip = fix_length(y, int(round(s.clip_seconds * sample_rate)))  # (samples,)
        arrays = s.extractor(clip, _built(s))
    atomic_write(dest, lambda f: np.savez(f, **arrays, source=_source_stamp(source), fingerprint=fingerprint))
    return {"fingerprint": fingerprint, SHAPES: tuple((name, np.shape(arrays[name])) for name in sorted(arrays)),
            "computed": not keep}


def entry_path(cache_dir: Path, clip: Clip) -> Path:
    """Where a clip's features are cached: `clips/<key>.npz` (a key names no folder above `clips/`)."""
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
                progress: bool = True, failed: dict[str, str] | None = None,
                fingerprints: dict[str, str] | None = None) -> list[Clip]:
    """Computes the features of every clip not yet cached; returns the clips that are usable, puts why each other
    one was skipped into `failed` (key -> reason) and each usable clip's `audio_fingerprint` into `fingerprints`
    (key -> fingerprint) when given.

    Runs `workers` processes (default: all cores; this one computes the first clips while they start:
    genre_cnn.data.pool). Unusable files are logged, one line each, and summarised; they are retried on the next
    build (a fixed file is then picked up). An entry that cannot be read, or whose arrays are not of the shape of
    the others (of one computed now, where there is one), is named in one line and computed again. Raises
    musicnn's WeightsNotFound before any clip is read if its weights are missing.
    """
    if cache_dir.is_dir():
        remove_stale_tmp(cache_dir)
    held = {c.key: _held(entry_path(cache_dir, c), c.path) for c in clips}
    failed = {} if failed is None else failed
    held.update(_run([c for c in clips if held[c.key] is None or held[c.key]["fingerprint"] is None], cache_dir,
                     settings, workers, progress, failed, keep={c.key for c in clips if held[c.key] is not None}))
    for _ in range(2):  # the second time only if entries computed now differ from what most entries held
        usable = [c for c in clips if c.key not in failed]
        computed = [held[c.key][SHAPES] for c in usable if held[c.key].get("computed")]
        shapes = Counter(held[c.key][SHAPES] for c in usable)
        common = computed[0] if computed else shapes.most_common(1)[0][0] if shapes else ()
        odd = [c for c in usable if held[c.key][SHAPES] != common]
        for clip in odd:
            warn_once(f"cache entry {entry_path(cache_dir, clip)} holds {_shown(held[clip.key][SHAPES])} where the "
                      f"others hold {_shown(common)}: computed again")
            entry_path(cache_dir, clip).unlink(missing_ok=True)
        held.update(_run(odd, cache_dir, settings, workers, progress, failed))
    usable = [c for c in clips if c.key not in failed]
    if failed:
        log.warning("%d of %d file(s) skipped as unusable; %d usable", len(failed), len(clips), len(usable))
    if fingerprints is not None:
        fingerprints.update({c.key: held[c.key]["fingerprint"] for c in usable})
    return usable


def _held(entry: Path, source: Path) -> dict | None:
    """`_entry`, but an entry that cannot be read is said in one line (and computed again, as a missing one)."""
    try:
        return _entry(entry, source)
    except ValueError as err:
        warn_once(f"cache entry {entry}: {err}: computed again")
        return None


def _shown(shapes: tuple) -> str:
    return ", ".join(f"{name} of shape {shape}" for name, shape in shapes) or "no array"


def _run(todo: list[Clip], cache_dir: Path, settings: FeatureSettings, workers: int | None, progress: bool,
         failed: dict[str, str], keep: set[str] = frozenset()) -> dict[str, dict]:
    """Computes the clips `todo` (`_compute`, in `workers` processes; those of `keep` only get their fingerprint);
    returns what each usable one's entry holds (key -> `_entry`), and puts why each other one was skipped into
    `failed`, said in one line each."""
    from tqdm.auto import tqdm

    if not todo:
        return {}
    log.info("caching features of %d clip(s) in %s", len(todo), cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(cache_dir / "settings.json", json.dumps(settings.describe(), indent=2))
    jobs = [(c.path, entry_path(cache_dir, c), settings, c.key in keep) for c in todo]
    workers = max(1, min(workers or os.cpu_count() or 1, len(jobs)))
    _built(settings)  # here first: missing weights are one error, not one per clip or a broken pool
    bar = tqdm(total=len(jobs), desc="features", unit="clip", disable=not progress)

    def done() -> None:
        bar.set_postfix_str("")
        bar.update()

    if workers == 1:
        results = []
        for job in jobs:
            results.append(_compute(job))
            done()
    else:
        bar.set_postfix_str(f"starting: the first clip here, then {workers} worker processes (a first run "
                            "compiles and imports for a minute or more)")
        results = pooled(_compute, jobs, workers, done, _init_worker, (settings, os.getpid()))
    bar.close()
    held = {}
    for clip, result in zip(todo, results):
        if isinstance(result, str):
            failed[clip.key] = result
            warn_once(f"skipped {result}")
        else:
            held[clip.key] = result
    return held


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
