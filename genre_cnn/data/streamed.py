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
"""

from __future__ import annotations

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

from genre_cnn.data.layout import DataError

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
        return out
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
