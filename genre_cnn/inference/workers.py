"""Predict many files in worker processes, in order: what `Predictor.predict_many` runs (genre_cnn.inference.session).

    from genre_cnn.inference.workers import predict_many
    for path, result, skipped in predict_many(spec, files, workers=2, max_windows=8):
        ...

The model is named by a picklable ModelSpec (genre_cnn.inference.session), which each worker builds once (one
thread each: the workers use the cores). Every file goes through `genre_cnn.inference.predict.predict_one`, the
same function as the one-process path, so the answers do not depend on the number of workers. Workers end by
themselves soon after the process that started them dies (even by kill -9). A worker that dies (killed by the
kernel for memory, a crash in a decoder) costs only its own file: the files it may have been working on are
tried again one at a time in a fresh worker, the one that kills that worker too is skipped with one line, and
the run goes on with new workers.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from genre_cnn.inference.predict import Skipped, predict_one
from genre_cnn.paths import die_with_parent

_RUNNER = None  # this worker's model
DIED = "the process reading it died (killed for lack of memory, or a crash in a decoder); skipped"


def _init_worker(spec, parent: int) -> None:
    global _RUNNER
    die_with_parent(parent)
    _RUNNER = spec.runner(threads=1)


def _work(job: tuple[Path, int, int | None]) -> tuple[dict | None, Skipped | None]:
    path, top_k, max_windows = job
    return predict_one(_RUNNER, path, top_k, max_windows)


class _NoBar:
    def update(self) -> None: ...

    def close(self) -> None: ...


def _bar(total: int, desc: str, show: bool):
    """A tqdm progress bar (rate and ETA) on stderr, or nothing (tqdm is not even imported: start-up time)."""
    if not show:
        return _NoBar()
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="file")


def predict_many(spec, files: list[Path], top_k: int = 3, max_windows: int | None = None,
                 workers: int | None = None, progress: bool = True, runner=None,
                 desc: str = "predicting") -> Iterator[tuple[Path, dict | None, Skipped | None]]:
    """(path, result or None, Skipped or None) for each file, in order, with a progress bar (ETA) on stderr.

    Args:
        spec: the model's ModelSpec (genre_cnn.inference.session).
        workers: processes (default: every core; 1, or a single file, runs in this process with `runner`,
            built from `spec` if not given).
        max_windows: at most this many windows per track (see genre_cnn.inference.track).
    """
    workers = max(1, min(workers or os.cpu_count() or 1, len(files)))
    bar = _bar(len(files), desc, progress and len(files) > 1)
    try:
        if workers == 1:
            runner = runner or spec.runner()
            for path in files:
                yield path, *predict_one(runner, path, top_k, max_windows)
                bar.update()
            return
        jobs = [(path, top_k, max_windows) for path in files]
        for path, out in zip(files, _pooled(spec, jobs, workers)):
            yield path, *out
            bar.update()
    finally:
        bar.close()


def _pooled(spec, jobs: list[tuple], workers: int) -> Iterator[tuple[dict | None, Skipped | None]]:
    """`_work` of each job in worker processes, in order. When a worker dies, the first job not yet answered is
    run alone in a fresh worker (skipped if that one dies too) and a new pool takes the rest."""
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    start = 0
    while start < len(jobs):
        start = yield from _until_broken(spec, jobs, start, workers, ctx)
        if start < len(jobs):
            lost = yield from _until_broken(spec, jobs[start:start + 1], 0, 1, ctx)
            if lost == 0:
                yield None, Skipped(jobs[start][0], DIED)
            start += 1


def _until_broken(spec, jobs: list[tuple], start: int, workers: int, ctx) -> Iterator[tuple[dict | None,
                                                                                            Skipped | None]]:
    """Yields the answers of jobs[start:] in order from one pool, keeping 2 jobs per worker in flight; returns
    the index of the first job lost to a dead worker, or len(jobs)."""
    pool = ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=(spec, os.getpid()))
    try:
        futures, queued = deque(), start
        for i in range(start, len(jobs)):
            while queued < len(jobs) and len(futures) < 2 * workers:
                futures.append(pool.submit(_work, jobs[queued]))
                queued += 1
            try:
                out = futures.popleft().result()
            except BrokenProcessPool:
                return i
            yield out
        return len(jobs)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
