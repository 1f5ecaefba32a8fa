"""Downloads and unpacks GTZAN (the 1.2 GB `genres.tar.gz`), resumably and checked against its SHA-256.

    python -m genre_cnn.download DATA_DIR      # -> DATA_DIR/genres/<genre>/*.au

The tarball is streamed into `genres.tar.gz.part` (an interrupted download resumes from there with an HTTP
Range request), verified, and only then renamed. Extraction refuses unsafe members and goes through a
temporary folder plus a marker file, so a half-done step never looks finished.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import logging
import os
import shutil
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from tqdm import tqdm

log = logging.getLogger(__name__)

GTZAN_URL = "https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz"
GTZAN_SHA256 = "24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6"
CHUNK = 1 << 20  # bytes per read

OFFLINE_HELP = (
    "Without a download, put a local copy of GTZAN under the data folder (the original tarball's "
    "genres/<genre>/*.au layout, Kaggle's genres_original/<genre>/*.wav, or any folder-per-genre "
    "collection) or point to it with --data.data_dir PATH; or run the synthetic demo: "
    "python train.py --config configs/demo.yaml"
)


class DownloadError(RuntimeError):
    """A download or extraction failed; the message says why (and, for network errors, what to do instead)."""


def sha256_of(path: Path) -> str:
    """Hex SHA-256 digest of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, dest: Path, sha256: str | None, progress: bool = True,
                  timeout: float = 30.0) -> Path:
    """Downloads `url` to `dest` (resuming a leftover `dest.part`), verifies it, and returns `dest`.

    Args:
        sha256: expected hex digest, or None to skip the check.
        progress: show a tqdm progress bar.
        timeout: seconds to wait for the connection and for each read.
    """
    dest = Path(dest)
    if dest.exists() and (sha256 is None or sha256_of(dest) == sha256):
        log.info("%s already downloaded", dest)
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        _fetch(url, part, progress, timeout)
    except (OSError, http.client.HTTPException) as err:  # URLError and socket timeouts are OSErrors
        cause = err.reason if type(err) is urllib.error.URLError else err
        raise DownloadError(f"could not download {url}: {cause}. {OFFLINE_HELP}") from err
    if sha256 is not None:
        actual = sha256_of(part)
        if actual != sha256:
            part.unlink()
            raise DownloadError(f"checksum mismatch for {url}: expected sha256 {sha256}, got {actual}")
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, progress: bool, timeout: float) -> None:
    """Appends the rest of `url` to `part` (or rewrites it when the server ignores the Range request)."""
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"User-Agent": "genre_cnn"})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:  # nothing left to fetch: the .part is complete, the checksum decides
            return
        raise
    with response:
        if offset and response.status != 206:
            log.info("server ignored the Range request: downloading %s from the start", url)
            offset = 0
        elif offset and not response.headers.get("Content-Range", "").startswith(f"bytes {offset}-"):
            part.unlink()
            got = response.headers.get("Content-Range")
            raise DownloadError(f"server resumed {url} at the wrong place (Content-Range {got})")
        length = response.headers.get("Content-Length")
        total = offset + int(length) if length else None
        received = offset
        with open(part, "ab" if offset else "wb") as f, tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, desc=part.name[:-5], disable=not progress
        ) as bar:
            while block := response.read(CHUNK):
                f.write(block)
                received += len(block)
                bar.update(len(block))
    if total is not None and received < total:  # the connection closed early
        raise http.client.IncompleteRead(b"", total - received)


def _check_member(member: tarfile.TarInfo) -> None:
    """Raises DownloadError unless `member` is a regular file or folder with a relative, `..`-free path."""
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts or (path.parts and ":" in path.parts[0]):
        raise DownloadError(f"refusing unsafe archive member {member.name!r}: absolute path or '..'")
    if not (member.isfile() or member.isdir()) or (not path.parts and not member.isdir()):
        raise DownloadError(f"refusing archive member {member.name!r}: not a regular file or folder")


def _move_into(src: Path, target: Path) -> None:
    """Moves `src` to `target`, merging folders that already exist there."""
    if src.is_dir() and target.is_dir():
        for child in src.iterdir():
            _move_into(child, target / child.name)
    elif target.is_dir():
        raise DownloadError(f"cannot extract {target}: a folder of that name is in the way")
    else:
        os.replace(src, target)


def safe_extract(archive: Path, dest_dir: Path) -> None:
    """Extracts the tar(.gz) `archive` into `dest_dir`; does nothing if its marker file says it was done.

    Every member is checked before anything is written; files land in a temporary folder first.
    """
    archive, dest_dir = Path(archive), Path(dest_dir)
    marker = dest_dir / f".extracted-{archive.name}"
    if marker.exists():
        log.info("%s already extracted into %s", archive.name, dest_dir)
        return
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member)
            dest_dir.mkdir(parents=True, exist_ok=True)
            for stale in dest_dir.glob(".extract-*"):  # left by an interrupted extraction
                shutil.rmtree(stale, ignore_errors=True)
            tmp = Path(tempfile.mkdtemp(prefix=".extract-", dir=dest_dir))
            try:
                for member in members:
                    target = tmp.joinpath(*PurePosixPath(member.name).parts)
                    if member.isdir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
                for entry in tmp.iterdir():
                    _move_into(entry, dest_dir / entry.name)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise DownloadError(f"could not extract {archive}: {err}") from err
    marker.write_text(f"{archive.name} extracted completely\n")


def download_gtzan(root: Path, url: str = GTZAN_URL, sha256: str | None = GTZAN_SHA256,
                   progress: bool = True) -> Path:
    """Downloads GTZAN to `root/genres.tar.gz`, extracts it into `root` and returns `root/genres`."""
    root = Path(root)
    archive, genres = root / "genres.tar.gz", root / "genres"
    marker = root / f".extracted-{archive.name}"
    if marker.exists() and genres.is_dir():
        log.info("GTZAN already in %s", genres)
        return genres
    marker.unlink(missing_ok=True)
    log.info("downloading GTZAN (about 1.2 GB) from %s to %s", url, archive)
    download_file(url, archive, sha256, progress)
    log.info("extracting %s", archive)
    safe_extract(archive, root)
    if not genres.is_dir():
        raise DownloadError(f"{archive} held no genres/ folder; is it the GTZAN tarball?")
    return genres


def main(argv: list[str] | None = None) -> int:
    """`python -m genre_cnn.download DATA_DIR`: downloads and extracts GTZAN, prints the genres folder."""
    parser = argparse.ArgumentParser(prog="python -m genre_cnn.download", description=__doc__.splitlines()[0])
    parser.add_argument("data_dir", type=Path, help="folder to download into (genres/ lands there)")
    parser.add_argument("--url", default=GTZAN_URL, help="a mirror of genres.tar.gz (same checksum)")
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        print(download_gtzan(args.data_dir, args.url, progress=not args.no_progress))
    except DownloadError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
