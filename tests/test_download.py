"""genre_cnn.data.download against a local HTTP server on 127.0.0.1: checksum, resume, offline, bad tarballs."""

from __future__ import annotations

import hashlib
import http.server
import io
import socket
import tarfile
from pathlib import Path

import pytest

from genre_cnn.data.download import OFFLINE_HELP, DownloadError, download_file, download_gtzan, safe_extract
from tests.local_http import serving

FILES = {f"genres/{genre}/{genre}.{i:05d}.au": bytes([i + 1]) * (7 + i) for genre in ("blues", "rock")
         for i in range(3)}


def make_tarball(path: Path, members: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    """Writes a .tar.gz holding `members`: (name, data) pairs for regular files, or bare TarInfos."""
    with tarfile.open(path, "w:gz") as tar:
        for member in members:
            if isinstance(member, tarfile.TarInfo):
                tar.addfile(member)
            else:
                info = tarfile.TarInfo(member[0])
                info.size = len(member[1])
                tar.addfile(info, io.BytesIO(member[1]))
    return path


class Server:
    """One-file HTTP server state; mode: "ok", "truncate" (half the body, then hang up), "ignore_range"."""

    def __init__(self, body: bytes) -> None:
        self.body, self.mode, self.ranges = body, "ok", []
        self.url = ""


def _handler(state: Server) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.ranges.append(rng)
            body = state.body
            if rng and state.mode != "ignore_range":
                start = int(rng.removeprefix("bytes=").split("-")[0])
                if start >= len(body):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(body)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                payload = body[start:]
            else:
                self.send_response(200)
                payload = body
            self.send_header("Content-Length", str(len(payload)))  # the full size, even when truncating
            self.end_headers()
            if state.mode == "truncate":
                self.wfile.write(payload[: len(payload) // 2])
                self.close_connection = True
            else:
                self.wfile.write(payload)

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def tarball(tmp_path) -> bytes:
    return make_tarball(tmp_path / "src.tar.gz", list(FILES.items())).read_bytes()


@pytest.fixture
def server(tarball):
    state = Server(tarball)
    with serving(_handler(state)) as base:
        state.url = f"{base}/genres.tar.gz"
        yield state


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def assert_extracted(genres: Path) -> None:
    files = [p for p in genres.rglob("*") if p.is_file()]
    found = {p.relative_to(genres.parent).as_posix(): p.read_bytes() for p in files}
    assert found == FILES


def test_download_extract_and_skip_second_time(server, tmp_path):
    root = tmp_path / "data"
    genres = download_gtzan(root, server.url, sha(server.body), progress=False)
    assert genres == root / "genres"
    assert_extracted(genres)
    assert (root / "genres.tar.gz").read_bytes() == server.body
    assert not (root / "genres.tar.gz.part").exists()
    assert (root / ".extracted-genres.tar.gz").exists()
    assert not list(root.glob(".extract-*"))
    assert server.ranges == [None]

    assert download_gtzan(root, server.url, sha(server.body), progress=False) == genres
    assert download_file(server.url, root / "genres.tar.gz", sha(server.body), progress=False).exists()
    assert len(server.ranges) == 1  # neither call went to the server
    (root / "genres.tar.gz").unlink()  # the marker alone says the work is done
    assert download_gtzan(root, server.url, sha(server.body), progress=False) == genres
    assert len(server.ranges) == 1


def test_checksum_mismatch(server, tmp_path):
    wrong = "0" * 64
    with pytest.raises(DownloadError) as err:
        download_gtzan(tmp_path, server.url, wrong, progress=False)
    assert wrong in str(err.value) and sha(server.body) in str(err.value)
    assert not (tmp_path / "genres.tar.gz").exists()
    assert not (tmp_path / "genres.tar.gz.part").exists()
    assert not (tmp_path / "genres").exists()


def test_interrupted_download_resumes(server, tmp_path):
    server.mode = "truncate"
    with pytest.raises(DownloadError) as err:
        download_gtzan(tmp_path, server.url, sha(server.body), progress=False)
    assert "configs/demo.yaml" in str(err.value)
    half = len(server.body) // 2
    part = tmp_path / "genres.tar.gz.part"
    assert part.stat().st_size == half
    assert not (tmp_path / "genres.tar.gz").exists()

    server.mode = "ok"
    assert_extracted(download_gtzan(tmp_path, server.url, sha(server.body), progress=False))
    assert server.ranges[-1] == f"bytes={half}-"
    assert not part.exists()


def test_server_ignoring_range_restarts_cleanly(server, tmp_path):
    part = tmp_path / "genres.tar.gz.part"
    junk = b"junk that must not stay at the front of the file"
    part.write_bytes(junk)
    server.mode = "ignore_range"
    dest = download_file(server.url, tmp_path / "genres.tar.gz", sha(server.body), progress=False)
    assert server.ranges == [f"bytes={len(junk)}-"]
    assert dest.read_bytes() == server.body
    assert not part.exists()


def test_complete_part_with_416_is_verified(server, tmp_path):
    (tmp_path / "genres.tar.gz.part").write_bytes(server.body)
    dest = download_file(server.url, tmp_path / "genres.tar.gz", sha(server.body), progress=False)
    assert dest.read_bytes() == server.body
    assert server.ranges == [f"bytes={len(server.body)}-"]


def test_offline_error_says_what_to_do(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again when the block ends: nothing listens there
    with pytest.raises(DownloadError) as err:
        download_gtzan(tmp_path, f"http://127.0.0.1:{port}/genres.tar.gz", progress=False)
    message = str(err.value)
    assert OFFLINE_HELP in message and "configs/demo.yaml" in message and "--data.source.data_dir" in message
    assert "refused" in message.lower()
    assert not (tmp_path / "genres.tar.gz").exists()


def _special(name: str, kind: bytes, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    return info


UNSAFE = {
    "dotdot": lambda outside: ("../evil.txt", b"evil"),
    "absolute": lambda outside: (str(outside / "evil.txt"), b"evil"),
    "symlink": lambda outside: _special("genres/blues/link.au", tarfile.SYMTYPE, str(outside)),
    "hardlink": lambda outside: _special("genres/blues/hard.au", tarfile.LNKTYPE, str(outside / "evil.txt")),
    "fifo": lambda outside: _special("genres/blues/pipe.au", tarfile.FIFOTYPE),
}


@pytest.mark.parametrize("kind", sorted(UNSAFE))
def test_unsafe_archive_is_refused_before_writing(kind, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    bad = UNSAFE[kind](outside)
    archive = make_tarball(tmp_path / "bad.tar.gz", [("genres/blues/ok.au", b"fine"), bad])
    name = bad.name if isinstance(bad, tarfile.TarInfo) else bad[0]
    with tarfile.open(archive) as tar:
        assert tar.getnames()[1] == name  # stored verbatim, not sanitised by tarfile
    dest = tmp_path / "work" / "dest"
    with pytest.raises(DownloadError, match="refusing") as err:
        safe_extract(archive, dest)
    assert repr(name) in str(err.value)
    assert not dest.exists()  # nothing at all, not even the safe member that came first
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.tar.gz", "outside"]


def test_interrupted_extraction_leaves_nothing_that_looks_done(tarball, tmp_path, monkeypatch):
    archive = tmp_path / "genres.tar.gz"
    archive.write_bytes(tarball)
    dest = tmp_path / "data"
    calls = []
    real_makefile = tarfile.TarFile.makefile

    def failing_makefile(self, tarinfo, targetpath):  # tarfile's writer of one regular file
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        return real_makefile(self, tarinfo, targetpath)

    monkeypatch.setattr(tarfile.TarFile, "makefile", failing_makefile)
    with pytest.raises(DownloadError, match="disk full"):
        safe_extract(archive, dest)
    assert list(dest.iterdir()) == []  # no genres/, no marker, no temporary folder

    monkeypatch.undo()
    safe_extract(archive, dest)
    assert_extracted(dest / "genres")
    assert (dest / ".extracted-genres.tar.gz").exists()
    (dest / "genres" / "rock" / "rock.00000.au").unlink()
    safe_extract(archive, dest)  # skipped: the marker is there
    assert not (dest / "genres" / "rock" / "rock.00000.au").exists()
