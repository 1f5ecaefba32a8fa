"""The results folder of `genre-cnn predict --ray`: Parquet parts written whole, read safely, resumed.

    from genre_cnn.app.cluster_results import Results, read_results
    rows = read_results("results.parquet")       # every row, as `genre-cnn predict --json` gives it

A folder (a local path, or a URI that pyarrow.fs writes: s3://, gs://, file://...) of parts
`part-NNNNN-<id>.parquet`, each a table of `schema(genres, model)`: the fields of `--json` (`file`, `top`,
`probabilities` with a field per genre, `music` (verdict, familiarity, music_probability) for a model that knows
what it does not know, `model`, `warning`; `error` for a skipped file), each absent field null.
Pandas, Polars, DuckDB, Spark or pyarrow read the folder as one table (they leave out hidden names). A local part
is written to a hidden temporary file, fsynced and renamed into place (genre_cnn.paths.atomic_write); on object
storage each part is one object, which appears only once uploaded whole. `Results.open` takes the folder's lock
(local folders only), removes stale temporary files, moves a part that does not read whole aside as
`.unreadable-<name>` and returns the files already answered, so that a rerun does only the rest.
"""

from __future__ import annotations

import re
import sys
import uuid
from pathlib import Path

from genre_cnn.errors import GenreCnnError

PART = re.compile(r"part-(\d{5,})-[0-9a-f]{8}\.parquet")
MODEL_KEY = b"genre_cnn.model"


def text(name: str) -> str:
    """A file name as Parquet stores it: bytes that are not UTF-8 (kept by Python as \\udcXX) become \\xNN."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def filesystem(where: str):
    """(pyarrow FileSystem, path in it) of a URI or a local path."""
    from pyarrow import fs

    if "://" in where:
        return fs.FileSystem.from_uri(where)
    return fs.LocalFileSystem(), str(Path(where).absolute())


def schema(genres: list[str], model: str):
    """The rows' Parquet schema (every field nullable); `model` is also kept in its metadata."""
    import pyarrow as pa

    top = pa.list_(pa.struct([("genre", pa.string()), ("probability", pa.float64())]))
    probabilities = pa.struct([(g, pa.float64()) for g in genres])
    music = pa.struct([("verdict", pa.string()), ("familiarity", pa.float64()), ("music_probability", pa.float64())])
    return pa.schema([("file", pa.string()), ("top", top), ("probabilities", probabilities), ("music", music),
                      ("model", pa.string()), ("warning", pa.string()), ("error", pa.string())],
                     metadata={MODEL_KEY: model.encode()})


def table(rows: list[dict], genres: list[str], model: str):
    """Rows as `--json` gives them -> a pyarrow Table of `schema(genres, model)`."""
    import pyarrow as pa

    return pa.Table.from_pylist([{**r, "file": text(r["file"])} for r in rows], schema=schema(genres, model))


class Results:
    """One results folder. `open()` before `write()`, `close()` after (a context manager does both)."""

    def __init__(self, out: str):
        from pyarrow import fs

        self.out = out
        self.fs, self.root = filesystem(out)
        self.local = isinstance(self.fs, fs.LocalFileSystem)
        self.lock = None
        self.next = 0

    def parts(self) -> list[str]:
        """The names of the parts, in the order they were written."""
        from pyarrow import fs

        infos = self.fs.get_file_info(fs.FileSelector(self.root, allow_not_found=True))
        names = [Path(i.path).name for i in infos if i.type == fs.FileType.File and PART.fullmatch(Path(i.path).name)]
        return sorted(names, key=lambda n: int(PART.fullmatch(n).group(1)))

    def read(self, name: str, columns: list[str] | None = None):
        """A part as a pyarrow Table, or None if it does not read whole."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            return pq.read_table(f"{self.root}/{name}", filesystem=self.fs, columns=columns)
        except (OSError, pa.ArrowException):
            return None

    def __enter__(self) -> Results:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def open(self, model: str) -> set[str]:
        """Takes the folder (creating it), cleans it, and returns the files its parts hold (as `text` gives
        them). GenreCnnError if another run is writing it, or if its parts came from another model."""
        self.fs.create_dir(self.root, recursive=True)
        if self.local:
            import fcntl

            self.lock = open(Path(self.root) / ".lock", "a")  # noqa: SIM115 - held until close()
            try:
                fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                self.close()
                raise GenreCnnError(f"{self.out}: another run is writing these results; wait for it to end") from None
            for stale in Path(self.root).glob(".part-*.tmp"):  # left by a killed run
                stale.unlink(missing_ok=True)
        done: set[str] = set()
        for name in self.parts():
            self.next = max(self.next, int(PART.fullmatch(name).group(1)) + 1)
            part = self.read(name, ["file"])
            if part is None:
                self.fs.move(f"{self.root}/{name}", f"{self.root}/.unreadable-{name}")
                print(f"{self.out}/{name}: unreadable (half-written?); moved aside as .unreadable-{name}, its files "
                      "are predicted again", file=sys.stderr)
                continue
            theirs = (part.schema.metadata or {}).get(MODEL_KEY, b"").decode()
            if theirs != model:
                self.close()
                raise GenreCnnError(f"{self.out} holds answers of another model ({theirs or 'unknown'}); give "
                                    "another --out, or the model and --engine that wrote it")
            done.update(part.column("file").to_pylist())
        return done

    def write(self, part) -> str:
        """Writes a table as the next part, whole or not at all; returns its name."""
        import pyarrow.parquet as pq

        name = f"part-{self.next:05d}-{uuid.uuid4().hex[:8]}.parquet"
        self.next += 1
        if self.local:
            from genre_cnn.paths import atomic_write

            atomic_write(Path(self.root) / name, lambda f: pq.write_table(part, f))
        else:
            with self.fs.open_output_stream(f"{self.root}/{name}") as f:
                pq.write_table(part, f)
        return name

    def close(self) -> None:
        if self.lock is not None:
            self.lock.close()  # releases the flock
            self.lock = None


def read_results(out: str | Path) -> list[dict]:
    """Every row of a results folder, part after part, as `genre-cnn predict --json` gives it (the fields a row
    lacks left out; a file name that was not UTF-8 has \\xNN escapes)."""
    store = Results(str(out))
    rows = []
    for name in store.parts():
        part = store.read(name)
        rows += [] if part is None else [{k: v for k, v in r.items() if v is not None} for r in part.to_pylist()]
    return rows
