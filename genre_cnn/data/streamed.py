"""The training clips' cached spectrograms as LitData shards, streamed to every process of a run.

    python -m genre_cnn.data.streamed SHARDS        # how many clips the shards hold, and one clip's shape

LitData (https://github.com/Lightning-AI/litData, Lightning's own streaming engine) writes the clips once into
chunks of about CHUNK_BYTES (`litdata.optimize`) and reads them back with `litdata.StreamingDataset`, which hands
each process of a run (nodes x devices x loader workers) its own share of the chunks, shuffles by epoch and can
read the chunks from a local disk, a shared filesystem or object storage (s3://, gs://), caching what it
fetches. `GenreDataModule(streaming=True)` trains the CNN from them; validation and test still read each whole
clip from the feature cache (genre_cnn.data.ondisk).

Items are whole clips, {"spec": (C, T) float16, "label": int, "key": str}; `RandomCrops` cuts `crops` random
windows (crops, C, W) from each as it arrives, and `flatten_crops` makes a batch of them (B * crops, C, W).

Shards are checked against their index before they are used (`shards_problem`: every chunk there, of the size the
index lists): a damaged local folder (a chunk deleted, a copy cut short) is written again from the feature cache,
and damaged shards at a URL are one line saying what is wrong.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sys
from functools import partial
from pathlib import Path

import numpy as np
import torch

from genre_cnn.data.layout import DataError, warn_once

CHUNK_BYTES = "64MB"  # one chunk: about 180 clips of 30 s (log-mel + chroma, float16)
COMPLETE = "index.json"  # litdata.optimize writes the index last; shards are only trusted once renamed into place


def shards_name(keys: list[str]) -> str:
    """The folder name, beside the feature cache, of the shards holding the clips `keys` (in that order)."""
    return "stream-" + hashlib.sha1("\n".join(keys).encode()).hexdigest()[:12]


def _item(entry: tuple[str, int, str], name: str) -> dict:
    """One shard item from (cache entry path, label, key)."""
    path, label, key = entry
    with np.load(path) as f:
        return {"spec": f[name], "label": label, "key": key}


def write_shards(entries: list[Path], labels: np.ndarray, keys: list[str], name: str, out: Path,
                 workers: int = 1) -> Path:
    """Writes the array `name` of each cache entry (with its label and key) as LitData shards in the local folder
    `out`, unless complete shards are there already. They are written to a folder of this process's own beside
    it, then renamed into place: an interrupted write leaves nothing that is later read (the next call starts
    again), and machines sharing the folder never read each other's half-written shards."""
    if (out / COMPLETE).is_file():
        problem = shards_problem(str(out))
        if problem is None:
            return out
        warn_once(f"the LitData shards in {out} are damaged ({problem}): written again from the feature cache")
        aside = out.with_name(f"{out.name}.damaged-{socket.gethostname()}-{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):  # another machine sharing the folder moved it first
            out.rename(aside)
        shutil.rmtree(aside, ignore_errors=True)
    from litdata import optimize

    host = socket.gethostname()
    for stale in out.parent.glob(f"{out.name}.partial-{host}-*"):  # this machine's interrupted writes
        shutil.rmtree(stale, ignore_errors=True)
    partial_dir = out.with_name(f"{out.name}.partial-{host}-{os.getpid()}")
    inputs = [(str(p), int(label), key) for p, label, key in zip(entries, labels, keys)]
    optimize(fn=partial(_item, name=name), inputs=inputs, output_dir=str(partial_dir), chunk_bytes=CHUNK_BYTES,
             num_workers=workers, reorder_files=False, start_method="fork", verbose=False)
    written = shard_items(partial_dir)
    if written != len(inputs):  # a writer process that was killed: litdata returns as if it had finished
        raise DataError(f"writing the LitData shards of {out} stopped after {written} of {len(inputs)} clips; "
                        "run again to start the shards over (the feature cache is kept)")
    try:
        partial_dir.rename(out)
    except OSError:  # another machine sharing the folder finished first
        if not (out / COMPLETE).is_file():
            raise
        shutil.rmtree(partial_dir, ignore_errors=True)
    return out


def shards_problem(shards: str) -> str | None:
    """What is wrong with the shards at `shards`, in a few words, or None: no readable index, or a chunk that the index
    lists missing or of another size than it lists. `shards` is a local folder, or a URL LitData reads: "local:PATH"
    is checked as a folder; s3://, gs:// and r2:// through LitData's storage clients (each chunk's presence: sizes
    are not fetched); other URLs are not checked."""
    if "://" in shards and not shards.startswith(("s3://", "gs://", "r2://")):
        return None
    if "://" in shards:
        try:
            chunks = _chunks(_remote_index(shards))
            return next((f"{name}, listed in {COMPLETE}, is missing" for name, _ in chunks
                         if not _remote_exists(f"{shards.rstrip('/')}/{name}")), None)
        except Exception as err:  # noqa: BLE001 - whatever the storage client raises: no access, no such bucket
            reason = (str(err).splitlines() or [type(err).__name__])[0][:160]
            return f"{COMPLETE} or its chunks cannot be read: {reason}"
    folder = Path(shards.removeprefix("local:"))
    try:
        chunks = _chunks(json.loads((folder / COMPLETE).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as err:
        return f"no readable {COMPLETE} ({type(err).__name__})"
    for name, size in chunks:
        path = folder / name
        if not path.is_file():
            return f"{name}, listed in {COMPLETE}, is missing"
        if path.stat().st_size != size:
            return f"{name} holds {path.stat().st_size} bytes where {COMPLETE} lists {size}"
    return None


def _chunks(index: dict) -> list[tuple[str, int]]:
    """(file name, bytes) of each chunk an index lists."""
    return [(str(c["filename"]), int(c["chunk_bytes"])) for c in index["chunks"]]


def _remote_index(url: str) -> dict:
    """The index of the shards at an s3://, gs:// or r2:// URL, fetched with LitData's downloader."""
    import tempfile

    from litdata.streaming.downloader import get_downloader

    with tempfile.TemporaryDirectory() as folder:
        local = os.path.join(folder, COMPLETE)
        get_downloader(url, folder, []).download_file(f"{url.rstrip('/')}/{COMPLETE}", local)
        return json.loads(Path(local).read_text())


def _remote_exists(url: str) -> bool:
    """Whether the object at an s3://, gs:// or r2:// URL exists (LitData's storage client for it)."""
    from litdata.streaming.fs_provider import _get_fs_provider  # LitData is pinned (setup.sh)

    return _get_fs_provider(url).exists(url)


def shard_items(shards: Path) -> int:
    """How many items the index of the shards in the local folder `shards` lists (0 without an index)."""
    index = shards / COMPLETE
    if not index.is_file():
        return 0
    return sum(chunk["chunk_size"] for chunk in json.loads(index.read_text())["chunks"])


class RandomCrops:
    """A shard item -> `crops` random windows of `window` frames, (crops, C, W) float32, and their labels
    (crops,) int64. Drawn from torch's generator, which Lightning seeds in every process and loader worker."""

    def __init__(self, window: int, crops: int):
        self.window, self.crops = window, crops

    def __call__(self, item: dict) -> tuple[torch.Tensor, torch.Tensor]:
        spec = torch.from_numpy(item["spec"])  # (C, T) float16
        starts = torch.randint(0, spec.shape[-1] - self.window + 1, (self.crops,))
        x = torch.stack([spec[:, s:s + self.window] for s in starts.tolist()]).float()  # (crops, C, W)
        return x, torch.full((self.crops,), item["label"], dtype=torch.int64)


def flatten_crops(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """B clips' crops -> x (B * crops, C, W), y (B * crops,)."""
    return torch.cat([x for x, _ in batch]), torch.cat([y for _, y in batch])


def streamed_windows(shards: str, window: int, crops: int, seed: int):
    """The StreamingDataset of training windows over `shards` (a local folder or a URL LitData reads), shuffled
    anew each epoch; in a run of several processes each reads its own share, and the last few clips of an epoch
    that would leave the processes unequal are dropped (so that they step together)."""
    from litdata import StreamingDataset

    return StreamingDataset(shards, shuffle=True, seed=seed, transform=RandomCrops(window, crops))


if __name__ == "__main__":
    from litdata import StreamingDataset

    if len(sys.argv) != 2:
        sys.exit("usage: python -m genre_cnn.data.streamed SHARDS")
    ds = StreamingDataset(sys.argv[1])
    first = ds[0]
    print(f"{len(ds)} clips in {sys.argv[1]}; a clip: spec {first['spec'].shape} {first['spec'].dtype}, "
          f"label {first['label']} ({first['key']})")
