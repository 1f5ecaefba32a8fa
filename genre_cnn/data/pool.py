"""Worker processes for the feature cache: one function over many jobs, this process working too while they start.

    from genre_cnn.data.pool import pooled
    results = pooled(compute, jobs, workers=2, done=bar.update, init=setup, initargs=(settings, os.getpid()))

Used by genre_cnn.data.cache (`build_cache`); no command line of its own.
"""

from __future__ import annotations

import multiprocessing as mp
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from typing import TypeVar

Job = TypeVar("Job")
Result = TypeVar("Result")


def pooled(compute: Callable[[Job], Result], jobs: Sequence[Job], workers: int, done: Callable[[], None],
           init: Callable[..., None], initargs: tuple) -> list[Result]:
    """`compute` of every job, in order, by `workers` processes (each started with `init(*initargs)`); `done` is
    called once per finished job. `compute`, `init` and the jobs must be picklable.

    This process computes the first job before the workers start: a fresh install compiles librosa's numba
    kernels on first use (minutes on a busy machine) and caches them on disk, so it happens once, not in every
    worker. The workers then take jobs from the end of the list; until the first of them has answered (their
    start-up: imports), this process goes on with jobs from the front."""
    results = [compute(jobs[0])]
    done()
    rest = jobs[1:]
    if not rest:
        return results
    ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
    pool = ProcessPoolExecutor(min(workers, len(rest)), mp_context=ctx, initializer=init,
                               initargs=initargs)  # a fresh server process to fork from
    answered = threading.Event()
    try:
        futures = [pool.submit(compute, job) for job in reversed(rest)][::-1]
        for future in futures:
            future.add_done_callback(lambda f: f.cancelled() or answered.set())
        n = 0  # jobs of `rest` computed here
        while n < len(rest) and not answered.is_set() and futures[n].cancel():
            results.append(compute(rest[n]))
            done()
            n += 1
        for _ in as_completed(futures[n:]):
            done()
        return results + [future.result() for future in futures[n:]]
    finally:  # on an error, the jobs not started are dropped, not waited for
        pool.shutdown(cancel_futures=True)
