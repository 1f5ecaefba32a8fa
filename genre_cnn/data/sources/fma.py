"""FMA, the Free Music Archive dataset (Defferrard, Benzi, Vandergheynst & Bresson, "FMA: A Dataset for Music
Analysis", ISMIR 2017): 30-s MP3 clips labelled with their track's top-level genre, and the dataset's own split.

    python -m genre_cnn.data.sources Fma ~/fma                          # fetches fma_small if missing, lists its genres
    python train.py --data.source Fma --data.source.data_dir ~/fma     # trains on fma_small, its own split

`data_dir` holds the unzipped archives: `fma_metadata/tracks.csv` and the audio of the subset `subset` names:
`fma_small/` (8,000 clips, 8 balanced genres), `fma_medium/` (25,000 clips, 16 unbalanced genres, small included)
or `fma_large/` (106,574 clips, medium included), each clip at `fma_<subset>/123/123456.mp3`. A clip's label is
`track.genre_top`; tracks without one, and tracks whose file is missing, are left out and counted in one log line
each. The split is the dataset's artist-disjoint `set.split` (training, validation, test). A missing archive is
downloaded from FMA's server (resumable, checked against the SHA-1 published with the dataset), extracted safely
(genre_cnn.data.download), then deleted.
"""

from __future__ import annotations

import csv
import functools
import logging
from pathlib import Path
from typing import Literal, NamedTuple

from genre_cnn.data.layout import Clip, DataError, warn_once
from genre_cnn.data.sources import Source
from genre_cnn.errors import SettingsError
from genre_cnn.paths import home, resolve

log = logging.getLogger(__name__)

SUBSETS = ("small", "medium", "large")  # each includes the ones before it
PARTS = {"training": "train", "validation": "val", "test": "test"}  # set.split -> split part
COLUMNS = (("track", "genre_top"), ("set", "subset"), ("set", "split"))  # (top, second) header pairs read

FMA_URL = "https://os.unil.cloud.switch.ch/fma"
FMA_SHA1 = {  # the digests the dataset's README (github.com/mdeff/fma) publishes for its 2017-05-09 release
    "fma_metadata.zip": "f0df49ffe5f2a6008d7dc83c6915b31835dfe733",
    "fma_small.zip": "ade154f733639d52e35e32f5593efe5be76c6d70",
    "fma_medium.zip": "c67b69ea232021025fca9231fc1c7c1a063ab50b",
    "fma_large.zip": "497109f4dd721066b5ce5e5f250ec604dc78939e",
}
SIZES = {"fma_metadata": "342 MiB", "fma_small": "7.2 GiB", "fma_medium": "22 GiB", "fma_large": "93 GiB"}
FMA_HELP = ("To go on without downloading: unzip FMA's fma_metadata.zip and fma_<subset>.zip (from "
            f"{FMA_URL}/) into one folder and point at it with --data.source.data_dir PATH "
            "--data.source.download false")


class Track(NamedTuple):
    """One row of tracks.csv, the columns this dataset kind reads."""

    id: int
    genre: str  # track.genre_top, "" if the track has none
    subset: str  # set.subset: small, medium or large
    split: str  # set.split: training, validation or test


def read_tracks(path: Path) -> tuple[Track, ...]:
    """Every row of FMA's tracks.csv: three header rows (top-level names such as `track`, `set`; second-level names
    such as `genre_top`, `split`; then `track_id`), read with the csv module, columns found by their
    (top, second) pair. Parsed once per process while the file is unchanged. DataError if it is not that file."""
    stamp = path.stat()
    return _read_tracks(str(path), stamp.st_mtime_ns, stamp.st_size)


@functools.lru_cache(maxsize=2)
def _read_tracks(path: str, mtime_ns: int, size: int) -> tuple[Track, ...]:
    tracks, bad = [], 0
    limit = csv.field_size_limit(1 << 30)  # free-text columns (artist.bio) can exceed the default
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            top, second, index = (next(rows, []) for _ in range(3))
            where = {pair: i for i, pair in enumerate(zip(top, second))}
            missing = [".".join(c) for c in COLUMNS if c not in where]
            if missing or index[:1] != ["track_id"]:
                raise DataError(f"{path} is not FMA's tracks.csv (three header rows, then one row per track_id): "
                                f"no column {', '.join(missing) or 'track_id'}")
            columns = [where[c] for c in COLUMNS]
            for row in rows:
                if not row:
                    continue
                try:
                    tracks.append(Track(int(row[0]), *(row[i].strip() for i in columns)))
                except (ValueError, IndexError):
                    bad += 1
    except (csv.Error, UnicodeDecodeError) as err:
        raise DataError(f"{path}: unreadable as FMA's tracks.csv ({err})") from None
    finally:
        csv.field_size_limit(limit)
    if bad:
        warn_once(f"{path}: {bad} row(s) without a track id or with too few columns: left out")
    return _once_each(path, tracks)


def _once_each(path: str, tracks: list[Track]) -> tuple[Track, ...]:
    """`tracks` with a track listed twice alike kept once (said in one line); DataError, naming the file and the
    track, for one listed twice with another split, genre or subset, before any clip is read."""
    first: dict[int, Track] = {}
    for track in tracks:
        seen = first.setdefault(track.id, track)
        if seen != track:
            field, column = next((f, c) for f, c in (("split", "set.split"), ("genre", "track.genre_top"),
                                                     ("subset", "set.subset")) if getattr(seen, f) != getattr(track, f))
            raise DataError(f"{path} lists track {track.id} twice, with {column} {getattr(seen, field)!r} and "
                            f"{getattr(track, field)!r}: keep one of its rows")
    if len(first) < len(tracks):
        warn_once(f"{path}: {len(tracks) - len(first)} row(s) repeat a track listed before: each track read once")
    return tuple(first.values())


def download_fma(root: Path, folders: list[str], url: str | None = None, sha1: dict[str, str] | None = None,
                 progress: bool = True) -> None:
    """Downloads `<folder>.zip` into `root` and extracts it, for each of `folders` (e.g. "fma_metadata",
    "fma_small") not extracted yet; the zip is deleted once extracted. `url`: the folder of the zips (default
    FMA_URL); `sha1`: zip name -> SHA-1 hex digest (default FMA_SHA1; a zip it does not name is not checked)."""
    from genre_cnn.data.download import DownloadError, download_file, safe_extract

    url, sha1 = url or FMA_URL, FMA_SHA1 if sha1 is None else sha1
    for folder in folders:
        name, marker = f"{folder}.zip", root / f".extracted-{folder}.zip"
        if marker.is_file() and (root / folder).is_dir():
            continue
        marker.unlink(missing_ok=True)  # the folder was removed since: extract again
        log.info("downloading %s (%s) from %s into %s", name, SIZES.get(folder, "size unknown"), url, root)
        archive = download_file(f"{url}/{name}", root / name, sha1.get(name), progress, algorithm="sha1",
                                advice=FMA_HELP)
        safe_extract(archive, root)
        if not (root / folder).is_dir():
            raise DownloadError(f"{archive} holds no {folder}/ folder: is it FMA's {name}?")
        archive.unlink()


class Fma(Source):
    """Args:
    data_dir: the folder holding fma_metadata/ and fma_<subset>/ (default: `<home>/data/fma`).
    download: fetch the archives that are missing.
    subset: "small" (8 genres), "medium" or "large" (16 genres; each includes the smaller).
    """

    name = "fma"
    has_official_split = True

    def __init__(self, data_dir: str | None = None, download: bool = True,
                 subset: Literal["small", "medium", "large"] = "small"):
        super().__init__(resolve(data_dir) if data_dir else home() / "data" / "fma")
        if subset not in SUBSETS:
            raise SettingsError(f"--data.source.subset must be one of {', '.join(SUBSETS)}, got {subset!r}")
        self.download, self.subset, self.default_place = download, subset, data_dir is None

    @property
    def tracks_csv(self) -> Path:
        return self.data_dir / "fma_metadata" / "tracks.csv"

    @property
    def audio_dir(self) -> Path:
        return self.data_dir / f"fma_{self.subset}"

    def cache_source(self) -> str:
        return str(self.audio_dir.resolve())  # another subset of the same data_dir, another cache and split file

    def ensure(self) -> None:
        wanted = {"fma_metadata": self.tracks_csv, self.audio_dir.name: self.audio_dir}
        missing = [folder for folder, path in wanted.items() if not path.exists()]
        if missing and self.download:
            download_fma(self.data_dir, missing)
        for folder, path in wanted.items():
            if not path.exists():
                raise DataError(f"no {path}: FMA's {folder}.zip ({FMA_URL}/{folder}.zip) unzipped into "
                                f"{self.data_dir} is needed; --data.source.download true fetches it")

    def _tracks(self) -> list[Track]:
        """The tracks of tracks.csv in the chosen subset (a smaller subset's tracks included)."""
        if not self.tracks_csv.is_file():
            raise DataError(f"no {self.tracks_csv}: FMA's metadata is missing (ensure() downloads it)")
        rank = SUBSETS.index(self.subset)
        return [t for t in read_tracks(self.tracks_csv) if t.subset in SUBSETS[: rank + 1]]

    def genres(self) -> list[str]:
        return sorted({t.genre for t in self._tracks() if t.genre})

    def path(self, track_id: int) -> Path:
        """Where a track's clip lies: `fma_<subset>/123/123456.mp3`."""
        name = f"{track_id:06d}"
        return self.audio_dir / name[:3] / f"{name}.mp3"

    def _labelled(self) -> list[tuple[Clip, str]]:
        """(clip, its split part or "") of every track of the subset with a genre and a file, sorted by key."""
        tracks = self._tracks()
        unlabelled = sum(not t.genre for t in tracks)
        if unlabelled:
            warn_once(f"{self.tracks_csv}: {unlabelled} track(s) of fma_{self.subset} have no top-level genre "
                      "(track.genre_top): left out")
        found, missing = [], 0
        for t in tracks:
            if t.genre:
                path = self.path(t.id)
                if path.is_file():
                    found.append((Clip(path, t.genre), PARTS.get(t.split, "")))
                else:
                    missing += 1
        if missing:
            warn_once(f"{self.audio_dir}: {missing} track(s) of tracks.csv have no audio file here: left out")
        return sorted(found, key=lambda pair: pair[0].key)

    def clips(self) -> list[Clip]:
        return [clip for clip, _ in self._labelled()]

    def official_split(self) -> dict[str, list[str]]:
        split: dict[str, list[str]] = {part: [] for part in PARTS.values()}
        outside = 0
        for clip, part in self._labelled():
            if part:
                split[part].append(clip.key)
            else:
                outside += 1
        if outside:
            warn_once(f"{self.tracks_csv}: {outside} clip(s) of fma_{self.subset} are in no part of set.split "
                      "(training, validation, test): left out of the split")
        return split
