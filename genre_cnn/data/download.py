"""Download and safely extract datasets: the GTZAN tarball here, FMA's zip archives (genre_cnn.data.sources.fma).

    python -m genre_cnn.data.download DATA_DIR       # fetches genres.tar.gz into DATA_DIR and extracts genres/

The download streams into `<file>.part` (resumed with an HTTP Range request after an interruption,
restarted cleanly if the server ignores ranges), is checked against its published checksum (SHA-256, or the
SHA-1 that FMA publishes), and only then renamed, so a half-downloaded file is never taken for the real one.
Extraction (tar or zip) refuses absolute paths, `..`, links and device files, and writes into a temporary
folder that is moved into place when complete.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable
from pathlib import Path, PurePosixPath, PureWindowsPath

from genre_cnn.errors import GenreCnnError

log = logging.getLogger(__name__)

GTZAN_URL = "https://huggingface.co/datasets/marsyas/gtzan/resolve/main/data/genres.tar.gz"
GTZAN_SHA256 = "24347e0223d2ba798e0a558c4c172d9d4a19c00bb7963fe055d183dadb4ef2c6"
CHUNK = 1 << 20
DIGESTS = {"sha256": "SHA-256", "sha1": "SHA-1"}  # hashlib name -> the name a message gives

OFFLINE_HELP = (
    "To go on without downloading: put a copy of GTZAN in the data folder (the original tarball's "
    "genres/<genre>/*.au, Kaggle's genres_original/<genre>/*.wav, or any folder per genre) or point at it "
    "with --data.source.data_dir PATH (add --data.source Folder for your own collection); train on the 100 real "
    "GTZAN clips of ../shared/gtzan_mini with: .venv/bin/python train.py --config configs/mini.yaml; or try "
    "everything on synthetic clips with: .venv/bin/python train.py --config configs/demo.yaml"
)


class DownloadError(GenreCnnError):
    """A download or extraction that failed; the message says why and what to do."""


def digest_of(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes; `algorithm`: a key of DIGESTS."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


def download_file(url: str, dest: Path, checksum: str | None, progress: bool = True, timeout: float = 30.0,
                  algorithm: str = "sha256", advice: str = OFFLINE_HELP) -> Path:
    """Downloads `url` to `dest` (resuming `dest.part`), verifies its `checksum` (hex digest of `algorithm`, a key
    of DIGESTS; None: no check), then renames it into place. `advice` ends every error: how to go on without."""
    from tqdm.auto import tqdm

    if dest.is_file() and (checksum is None or digest_of(dest, algorithm) == checksum):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    connected = False  # an error before the server answered is no network; after, an interrupted download
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            connected = True
            if have and response.status != 206:  # the server ignored the range: start again
                have = 0
            total = response.length + have if response.length is not None else None
            with open(part, "ab" if have else "wb") as f, tqdm(
                total=total, initial=have, unit="B", unit_scale=True, desc=dest.name, disable=not progress
            ) as bar:
                while block := response.read(CHUNK):
                    f.write(block)
                    bar.update(len(block))
            if total is not None and part.stat().st_size < total:
                raise DownloadError(f"download of {url} ended early ({part.stat().st_size} of {total} bytes); "
                                    "run again to resume. " + advice)
    except urllib.error.HTTPError as err:
        if err.code != 416:  # 416: the range starts at the end, so the .part is complete
            raise DownloadError(f"could not download {url} (HTTP {err.code} {err.reason}). " + advice) from None
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        reason = getattr(err, "reason", err)
        if not connected:
            host = urllib.parse.urlsplit(url).netloc
            kept = f" (the {have / 1e6:.1f} MB already downloaded are kept for then)" if have else ""
            raise DownloadError(f"could not reach {host} to download {url} ({reason}): no network, or the host "
                                f"is down; it downloads when the host can be reached{kept}. " + advice) from None
        got = part.stat().st_size if part.is_file() else 0
        raise DownloadError(f"download of {url} was interrupted after {got / 1e6:.1f} MB ({reason}); run again "
                            "to resume it. " + advice) from None
    if checksum is not None and (actual := digest_of(part, algorithm)) != checksum:
        part.unlink()
        raise DownloadError(f"{url}: {DIGESTS[algorithm]} mismatch, expected {checksum} but got {actual}; "
                            "the partial file was deleted, run again to retry")
    os.replace(part, dest)
    return dest


def _check_name(name: str) -> None:
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts or PureWindowsPath(name).drive or ".." in PureWindowsPath(name).parts:
        raise DownloadError(f"refusing unsafe path in archive: {name!r}")


def _check_member(member: tarfile.TarInfo) -> None:
    _check_name(member.name)
    if not (member.isfile() or member.isdir()):
        raise DownloadError(f"refusing link or special file in archive: {member.name!r}")


def _check_zip_member(info: zipfile.ZipInfo) -> None:
    _check_name(info.filename)
    kind = stat.S_IFMT(info.external_attr >> 16)  # the Unix file type, where the archiver stored one
    if kind and kind not in (stat.S_IFREG, stat.S_IFDIR):
        raise DownloadError(f"refusing link or special file in archive: {info.filename!r}")


def _open_checked(archive: Path) -> tuple[list[str], Callable[[str], None]]:
    """The member names of a tar or zip `archive`, every one checked, and a function that extracts them all into a
    folder; DownloadError for an unsafe member, before anything is written."""
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            infos = z.infolist()
        for info in infos:
            _check_zip_member(info)

        def unzip(folder: str) -> None:
            with zipfile.ZipFile(archive) as z:
                z.extractall(folder, members=infos)

        return [i.filename for i in infos], unzip
    with tarfile.open(archive) as tar:
        members = tar.getmembers()
    for member in members:
        _check_member(member)

    def untar(folder: str) -> None:
        with tarfile.open(archive) as tar:
            tar.extractall(folder, members=members, filter="data")

    return [m.name for m in members], untar


def safe_extract(archive: Path, dest_dir: Path) -> None:
    """Extracts regular files and folders of the tar or zip `archive` into `dest_dir`, all or nothing."""
    marker = dest_dir / f".extracted-{archive.name}"
    if marker.is_file():
        return
    try:
        names, extract = _open_checked(archive)
        dest_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=dest_dir, prefix=".extracting-") as tmp:
            extract(tmp)
            for top in sorted({PurePosixPath(n).parts[0] for n in names}):
                target = dest_dir / top
                if target.exists():
                    shutil.rmtree(target) if target.is_dir() else target.unlink()
                os.replace(Path(tmp) / top, target)
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as err:
        raise DownloadError(f"{archive}: not a readable archive ({err}); delete it and run again") from None
    except NotImplementedError as err:  # zipfile: a compression method it cannot read
        raise DownloadError(f"{archive}: {err}; extract it with 7-Zip or unzip instead") from None
    except OSError as err:
        raise DownloadError(f"extracting {archive} failed ({err}); nothing was kept, run again") from None
    marker.write_text("ok\n")


def download_gtzan(root: Path, url: str = GTZAN_URL, sha256: str | None = GTZAN_SHA256, progress: bool = True) -> Path:
    """Downloads and extracts GTZAN into `root`; returns `root/genres`."""
    genres = Path(root) / "genres"
    if (Path(root) / ".extracted-genres.tar.gz").is_file() and genres.is_dir():
        return genres
    log.info("downloading GTZAN (about 1.2 GB) from %s into %s", url, root)
    archive = download_file(url, Path(root) / "genres.tar.gz", sha256, progress)
    safe_extract(archive, Path(root))
    if not genres.is_dir():
        raise DownloadError(f"{archive} holds no genres/ folder: is it the GTZAN tarball?")
    return genres


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--url", default=GTZAN_URL)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    args = parser.parse_args()
    try:
        print(download_gtzan(args.data_dir, args.url))
    except DownloadError as err:
        raise SystemExit(f"error: {err}") from None
