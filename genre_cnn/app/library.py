"""Predict a music library: worker processes decode and predict files in parallel, in order.

    from genre_cnn.app.library import predict_many
    for path, result, error in predict_many(("onnx", "model.onnx"), files, workers=2, max_windows=8):
        ...

A model is named by a picklable spec, ("onnx", graph) or ("torch", checkpoint), that each worker builds
once (one thread each: the workers use the cores). Every file goes through `genre_cnn.inference.predict.predict_one`,
the same function as the one-process path, so the answers do not depend on the number of workers. Workers
end by themselves soon after the process that started them dies (even by kill -9).
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from genre_cnn.inference.predict import predict_one
from genre_cnn.paths import die_with_parent

_RUNNER = None  # this worker's model


def build_runner(spec: tuple[str, Path], threads: int = 0):
    """An OnnxRunner or TorchRunner from a spec; `threads` 0 leaves the library's default."""
    kind, path = spec
    if kind == "onnx":
        from genre_cnn.inference.onnx_predict import OnnxRunner

        return OnnxRunner(Path(path), threads)
    import torch

    from genre_cnn.inference.predict import TorchRunner, load_model

    if threads:
        torch.set_num_threads(threads)
    return TorchRunner(load_model(Path(path)))


def _init_worker(spec: tuple[str, Path], parent: int) -> None:
    global _RUNNER
    die_with_parent(parent)
    _RUNNER = build_runner(spec, threads=1)


def _work(job: tuple[Path, int, int | None]) -> tuple[dict | None, str | None]:
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


def predict_many(spec: tuple[str, Path], files: list[Path], top_k: int = 3, max_windows: int | None = None,
                 workers: int | None = None, progress: bool = True, runner=None,
                 desc: str = "predicting") -> Iterator[tuple[Path, dict | None, str | None]]:
    """(path, result or None, error line or None) for each file, in order, with a progress bar (ETA) on stderr.

    Args:
        spec: the model, ("onnx", graph path) or ("torch", checkpoint path).
        workers: processes (default: every core; 1, or a single file, runs in this process with `runner`,
            built from `spec` if not given).
        max_windows: at most this many evenly spaced windows per track (see genre_cnn.inference.predict).
    """
    workers = max(1, min(workers or os.cpu_count() or 1, len(files)))
    bar = _bar(len(files), desc, progress and len(files) > 1)
    try:
        if workers == 1:
            runner = runner or build_runner(spec)
            for path in files:
                yield path, *predict_one(runner, path, top_k, max_windows)
                bar.update()
            return
        ctx = mp.get_context("forkserver" if "forkserver" in mp.get_all_start_methods() else "spawn")
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(spec, os.getpid())) as pool:
            jobs = [(path, top_k, max_windows) for path in files]
            for path, out in zip(files, pool.map(_work, jobs, chunksize=1)):
                yield path, *out
                bar.update()
    finally:
        bar.close()
