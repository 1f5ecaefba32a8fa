"""Predict an archive of audio files on a Ray cluster (Ray Data) into Parquet, resumably.

    genre-cnn predict PATHS... --ray --out results.parquet          # Ray on this machine, or RAY_ADDRESS's cluster
    genre-cnn predict --ray auto s3://bucket/music/ --out s3://bucket/genres.parquet --max-windows 8

Needs the `cluster` extra (`pip install -e .[cluster]`: Ray Data and pyarrow). Files are listed on the driver
(local folders as `genre-cnn predict` lists them; URIs such as s3://, gs:// or file:// through pyarrow.fs), then a
Ray Data pipeline feeds them to a pool of actors (`map_batches` with the callable class `FilePredictor`), each
holding the model once (a genre_cnn.inference.session.Predictor built from the driver's spec) and decoding and
predicting file after file through `predict_row`, with the function of the one-machine path: the answers are the
same. A file given as a URI is copied to the actor's temporary folder first; a plain path must be readable on
every node (a shared file system). The model's files (an ONNX graph with its answer graph, or a checkpoint) travel
through Ray's object store, so the workers need genre_cnn and its dependencies installed, not the driver's files.

The driver writes the rows (the fields of `--json`, a skipped file's reason included) as Parquet parts into
the `--out` folder, every `part_rows` rows or `part_seconds` seconds, each whole or not at all; a rerun skips
the files the folder already holds (genre_cnn.app.cluster_results). Ray is imported only here, when used.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from genre_cnn.app.cluster_results import Results, filesystem, table, text
from genre_cnn.errors import GenreCnnError
from genre_cnn.inference.predict import expand_paths
from genre_cnn.inference.session import ModelSpec, Predictor


def list_inputs(paths: list[str]) -> tuple[list[str], list[dict]]:
    """(files to predict, {"file", "error"} rows for the paths that cannot be used): local paths as `genre-cnn
    predict` expands them, URIs listed through pyarrow.fs (folders recursively, every format the loader decodes)."""
    from pyarrow import fs

    from genre_cnn.audio.decode import DECODE_EXTENSIONS

    local, errors = expand_paths([Path(p) for p in paths if "://" not in p])
    files, skipped = [str(p) for p in local], [{"file": e.file, "error": e.reason} for e in errors]
    for uri in (p for p in paths if "://" in p):
        scheme = uri.split("://", 1)[0]
        try:
            store, base = fs.FileSystem.from_uri(uri)
            kind = store.get_file_info(base).type
            if kind == fs.FileType.Directory:
                listed = store.get_file_info(fs.FileSelector(base, recursive=True))
                found = sorted(f"{scheme}://{i.path}" for i in listed
                               if i.type == fs.FileType.File and Path(i.path).suffix.lower() in DECODE_EXTENSIONS)
                files += found
                skipped += [] if found else [{"file": uri, "error": "no audio files in this folder"}]
            elif kind == fs.FileType.File:
                files.append(uri)
            else:
                skipped.append({"file": uri, "error": "no such file or folder"})
        except (OSError, ValueError) as err:  # an unknown scheme, no credentials, an unreachable store
            skipped.append({"file": uri, "error": f"cannot list ({str(err).splitlines()[0][:200]})"})
    return list(dict.fromkeys(files)), skipped  # a file named twice (itself and its folder) is predicted once


@contextmanager
def local_copy(file: str) -> Iterator[Path]:
    """The file itself for a path; for a URI, a copy under the same name (so that its format is recognised) in a
    temporary folder, removed afterwards. OSError if it cannot be read."""
    if "://" not in file:
        yield Path(file)
        return
    import shutil
    import tempfile

    store, path = filesystem(file)
    with tempfile.TemporaryDirectory(prefix="genre_cnn-") as folder:
        copy = Path(folder) / Path(path).name
        with store.open_input_stream(path) as src, open(copy, "wb") as dst:
            shutil.copyfileobj(src, dst, 2**20)
        yield copy


def predict_row(predictor: Predictor, file: str, top_k: int, max_windows: int | None, model: str) -> dict:
    """One file's row as `genre-cnn predict --json` prints it: the result and the `model` that gave it, or
    {"file", "error"} for a file that was skipped."""
    from genre_cnn.audio.decode import shown

    try:
        with local_copy(file) as path:
            [(_, result, skipped)] = predictor.predict_many([path], top_k, max_windows, workers=1)
    except OSError as err:
        return {"file": file, "error": f"cannot read ({err.strerror or str(err).splitlines()[0][:200]})"}
    if result is None:
        return {"file": file, "error": skipped.reason}
    if "warning" in result:  # it names the temporary copy
        result["warning"] = result["warning"].replace(shown(path), shown(file))
    return {**result, "file": file, "model": model}


class FilePredictor:
    """Ray Data's callable class: each actor builds the model once (one thread: it holds one CPU), then maps a
    batch {"file": names} to the pyarrow Table of their rows.

    Args: engine (the driver's ModelSpec's), files ({name: its bytes' ObjectRef}, the spec's file first: in a dict,
    which Ray passes as it is), genres, description (the rows' `model`), top_k, max_windows.
    """

    def __init__(self, engine: str, files: dict, genres: list[str], description: str, top_k: int,
                 max_windows: int | None):
        import tempfile

        import ray

        with tempfile.TemporaryDirectory(prefix="genre_cnn-model-") as folder:
            for name, ref in files.items():
                (Path(folder) / name).write_bytes(ray.get(ref))
            spec = ModelSpec(engine, Path(folder) / next(iter(files)))
            self.predictor = Predictor.from_spec(spec, threads=1)
        self.genres, self.description, self.top_k, self.max_windows = genres, description, top_k, max_windows

    def __call__(self, batch: dict):
        rows = [predict_row(self.predictor, os.fsdecode(f), self.top_k, self.max_windows, self.description)
                for f in batch["file"]]
        return table(rows, self.genres, self.description)


def _stream(predictor: Predictor, files: list[str], top_k: int, max_windows: int | None, workers: int | None,
            address: str | None, progress: bool) -> Iterator:
    """Tables of rows from the actor pool, as they come."""
    import logging

    import ray
    import ray.data

    started = not ray.is_initialized()
    if started:
        try:
            ray.init(address=address, include_dashboard=False, logging_level=logging.WARNING, log_to_driver=False)
        except ConnectionError as err:
            raise GenreCnnError(f"{str(err).splitlines()[0]} (a cluster with token authentication, Ray's default "
                                "since 2.59, also needs RAY_AUTH_MODE=token and its token: `ray get-auth-token`)"
                                ) from None
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its plan, progress and notes; errors still show
    try:
        cpus = max(1, int(ray.cluster_resources().get("CPU", 1)))
        workers = min(workers or cpus, cpus)  # an actor holds a CPU: more would wait for ever
        batch = max(1, min(16, len(files) // (4 * workers)))  # files per actor call
        ray.data.DataContext.get_current().enable_progress_bars = progress
        items = [{"file": os.fsencode(f)} for f in files]
        ds = ray.data.from_items(items, override_num_blocks=min(-(-len(files) // batch), 10000))
        files = {p.name: ray.put(p.read_bytes()) for p in predictor.spec.files()}  # the spec's own file first
        model = {"engine": predictor.spec.engine, "files": files}
        ds = ds.map_batches(FilePredictor, batch_size=batch, batch_format="numpy", num_cpus=1,
                            compute=ray.data.ActorPoolStrategy(size=workers),
                            fn_constructor_kwargs={**model, "genres": predictor.genres, "top_k": top_k,
                                                   "description": predictor.description, "max_windows": max_windows})
        yield from ds.iter_batches(batch_format="pyarrow", batch_size=None)
    finally:
        if started:
            ray.shutdown()


def predict_on_ray(predictor: Predictor, paths: list[str], out: str, top_k: int = 3,
                   max_windows: int | None = None, workers: int | None = None, address: str | None = None,
                   progress: bool = True, part_rows: int = 1000, part_seconds: float = 60.0) -> dict:
    """Predicts every file under `paths` not yet in the results folder `out`, writing its rows there.

    `predictor`: the model, on the driver (its `spec` goes to the actors; its `genres` and `description` name the
    columns and the rows' `model`). `workers`: actors (default and at most: one per CPU of the cluster as it is at
    the start).
    `address`: the Ray cluster (None: Ray's default, RAY_ADDRESS or a cluster started on this machine by
    `ray start`, else a new local one). `part_rows`, `part_seconds`: how often a part is written.
    Returns {"predicted", "skipped", "already", "results"} (results: rows with an answer in the folder, all runs).
    """
    import importlib.util

    if not all(importlib.util.find_spec(m) for m in ("ray", "pyarrow")):
        raise GenreCnnError("--ray needs Ray Data and pyarrow, which are not installed: pip install -e '.[cluster]' "
                            "(bash setup.sh installs them)")
    counts = {"predicted": 0, "skipped": 0, "already": 0}
    with Results(out) as store:
        done = store.open(predictor.description)
        files, listed = list_inputs(paths)
        todo, skipped = [f for f in files if text(f) not in done], [s for s in listed if text(s["file"]) not in done]
        counts["already"] = len(files) + len(listed) - len(todo) - len(skipped)
        pending, last = [table(skipped, predictor.genres, predictor.description)] if skipped else [], time.monotonic()

        def flush() -> None:
            import pyarrow as pa

            nonlocal pending, last
            if pending:
                part = pa.concat_tables(pending)
                store.write(part)
                for row in part.select(["file", "error"]).to_pylist():
                    counts["skipped" if row["error"] else "predicted"] += 1
                    if row["error"]:
                        print(f"{row['file']}: {row['error']}", file=sys.stderr)
            pending, last = [], time.monotonic()

        try:
            if todo:
                for part in _stream(predictor, todo, top_k, max_windows, workers, address, progress):
                    pending.append(part)
                    if sum(p.num_rows for p in pending) >= part_rows or time.monotonic() - last >= part_seconds:
                        flush()
        finally:
            flush()  # the rows already answered are kept, even on Ctrl-C
        errors = [store.read(n, ["error"]) for n in store.parts()]
        answered = sum(e.column("error").null_count for e in errors if e is not None)
    print(f"{out}: {counts['predicted']} files predicted, {counts['skipped']} skipped (their reasons are in the "
          f"error column), {counts['already']} already there; model: {predictor.description}", file=sys.stderr)
    return {**counts, "results": answered}
