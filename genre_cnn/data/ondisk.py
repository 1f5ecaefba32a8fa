"""Cached features read from disk when a loader asks for them, so that memory stays flat as a dataset grows.

    from genre_cnn.data.ondisk import OnDisk
    spec = OnDisk([entry_path(cache_dir, c) for c in clips], "spec")   # acts as the stacked (N, C, T) array
    x = spec[3, :, 100:229]          # clip 3 read from its cache entry, then sliced: (C, 129)
    python -m genre_cnn.data.ondisk CACHE_DIR       # how many entries, their shape, and the bytes in RAM they'd take

The feature cache (genre_cnn.data.cache) already holds one file per clip, written once; reading the entry a
loader needs when it needs it is the streamed path. The operating system's page cache keeps what fits in memory,
nothing in the process holds the whole set, and each process of a multi-process run reads only the clips its
sampler hands it. `GenreDataModule(features_in_memory=None)` picks this path when the stacked features would take
more than a quarter of the machine's memory (IN_MEMORY_SHARE).
"""

from __future__ import annotations

import os
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

IN_MEMORY_SHARE = 0.25  # stacked features up to this share of physical memory are held in RAM by default


class OnDisk:
    """The array `name` of each cache entry at `paths`, as if stacked (N, ...), read from disk when indexed.

    It answers what the loaders ask of the stacked array: `len`, `shape`, `dtype`, `a[i]` and `a[i, ...]` (one
    entry read, then indexed) and `a[rows]` for an index array or slice (a subset, still on disk). Every entry
    must hold an array of the same shape, as the cache's fixed clip length makes them."""

    def __init__(self, paths: list[Path], name: str, shape: tuple[int, ...] | None = None, dtype=None):
        self.paths, self.name = list(paths), name
        self._layout: Layout | bool | None = None  # where the array lies in an entry, once known
        if shape is None or dtype is None:
            first = self._read(0) if self.paths else np.zeros(0)
            shape, dtype = first.shape, first.dtype
        self.item_shape, self.dtype = tuple(shape), np.dtype(dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return (len(self.paths), *self.item_shape)

    @property
    def nbytes(self) -> int:
        """What the stacked array would take in memory."""
        return int(np.prod(self.shape)) * self.dtype.itemsize

    def __len__(self) -> int:
        return len(self.paths)

    def _read(self, i: int) -> np.ndarray:
        """Entry i's array. The cache writes every entry alike, so the array's bytes lie where they lie in the
        first entry (`Layout`): one read takes the headers there and the data after them, and the headers are
        checked; an entry laid out otherwise is read with np.load."""
        if self._layout is None:
            self._layout = Layout.of(self.paths[0], self.name)
        layout = self._layout
        if layout:
            data = bytearray(len(layout.headers) + layout.nbytes)  # writable, as np.load's arrays are
            with open(self.paths[i], "rb") as f:
                f.seek(layout.start)
                complete = f.readinto(data) == len(data)
            if complete and data.startswith(layout.headers):
                return np.frombuffer(data, layout.dtype, offset=len(layout.headers)).reshape(layout.shape)
        with np.load(self.paths[i]) as entry:
            return entry[self.name]

    def __getitem__(self, index):
        first, rest = (index[0], index[1:]) if isinstance(index, tuple) else (index, ())
        if isinstance(first, (int, np.integer)):
            item = self._read(int(first))
            if item.shape != self.item_shape:
                raise ValueError(f"{self.paths[int(first)]}: {self.name} has shape {item.shape}, the others "
                                 f"{self.item_shape}")
            return item[rest] if rest else item
        if rest:
            raise TypeError("OnDisk takes one clip with further indices, or rows alone")
        rows = np.arange(len(self.paths))[first]  # an index array, a boolean mask or a slice
        return OnDisk([self.paths[r] for r in rows], self.name, self.item_shape, self.dtype)


@dataclass(frozen=True)
class Layout:
    """Where array `name` lies in an .npz written by np.savez, which stores each array as an uncompressed .npy
    member: a zip local header (30 bytes, whose checksum and date differ between files), then the member's name
    and extra field and the .npy header (`headers`, alike in every entry of the same shapes), then the data."""

    start: int  # offset of `headers` in the file
    headers: bytes
    shape: tuple[int, ...]
    dtype: np.dtype

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * self.dtype.itemsize

    @classmethod
    def of(cls, path: Path, name: str) -> Layout | bool:
        """The layout of `name` in `path`, or False when it cannot be read in place (compressed, Fortran
        order, object dtype)."""
        with zipfile.ZipFile(path) as archive:
            info = archive.getinfo(f"{name}.npy")
        if info.compress_type != zipfile.ZIP_STORED:
            return False
        with open(path, "rb") as f:
            f.seek(info.header_offset)
            local = f.read(30)  # the name's and the extra field's lengths are its last four bytes
            start = info.header_offset + 30
            f.seek(start + int.from_bytes(local[26:28], "little") + int.from_bytes(local[28:30], "little"))
            version = np.lib.format.read_magic(f)
            read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
            shape, fortran, dtype = read(f)
            data_start = f.tell()
            f.seek(start)
            headers = f.read(data_start - start)
        if fortran or dtype.hasobject:
            return False
        return cls(start, headers, tuple(shape), dtype)


def physical_memory() -> int:
    """Bytes of RAM in this machine."""
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def keep_in_memory(nbytes: int, choice: bool | None) -> bool:
    """Whether features of `nbytes` are held in RAM: `choice` if given, else when they take at most
    IN_MEMORY_SHARE of physical memory."""
    return choice if choice is not None else nbytes <= IN_MEMORY_SHARE * physical_memory()


def main() -> None:
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python -m genre_cnn.data.ondisk CACHE_DIR [ARRAY]     # ARRAY: spec (default) or hand")
    paths = sorted(Path(sys.argv[1]).glob("clips/**/*.npz"))
    if not paths:
        sys.exit(f"error: no cache entries under {sys.argv[1]}/clips")
    features = OnDisk(paths, sys.argv[2] if len(sys.argv) == 3 else "spec")
    where = "in RAM" if keep_in_memory(features.nbytes, None) else "read from disk"
    print(f"{len(features)} entries of {features.item_shape} {features.dtype}: {features.nbytes / 2**20:.1f} MB "
          f"stacked, of {physical_memory() / 2**30:.1f} GB RAM: {where} by default")


if __name__ == "__main__":
    main()
