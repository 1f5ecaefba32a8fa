"""`--ckpt` is checked as a file before anything hashes or reads it, in every command: a link to /dev/zero (which
never ends), a FIFO (which blocks) and an 8 GB sparse file (46 s to hash) are each refused at once, in one line."""

from __future__ import annotations

import os
import signal

import pytest

from genre_cnn.app.cli import main

COMMANDS = {"predict": ["predict", "{song}"], "sort": ["sort", "{song}", "{dest}"], "tag": ["tag", "{song}"],
            "plot": ["plot", "{song}", "--out", "{dest}"], "export": ["export", "--out", "{dest}/m.onnx"],
            "serve": ["serve", "--port", "0"]}


@pytest.fixture(scope="module")
def bad(tmp_path_factory) -> dict[str, str]:
    folder = tmp_path_factory.mktemp("bad")
    (folder / "zero.ckpt").symlink_to("/dev/zero")
    os.mkfifo(folder / "fifo.ckpt")
    with open(folder / "sparse.ckpt", "wb") as f:
        f.truncate(8 << 30)  # 8 GB that take no room
    return {"a link to /dev/zero": str(folder / "zero.ckpt"), "a FIFO": str(folder / "fifo.ckpt"),
            "an 8 GB file": str(folder / "sparse.ckpt")}


class ReadFirst(BaseException):
    """Raised where the checkpoint is hashed or waited on before it was checked (no `except Exception` hides it)."""


def _alarm(signum, frame):
    raise ReadFirst("still busy with the checkpoint after 10 s")


@pytest.mark.parametrize("what", ["a link to /dev/zero", "a FIFO", "an 8 GB file"])
@pytest.mark.parametrize("command", list(COMMANDS))
def test_a_checkpoint_that_is_no_file_is_refused_at_once(bad, tmp_path, capsys, monkeypatch, command, what):
    import genre_cnn.inference.onnx_predict as onnx_predict

    def never(ckpt):
        raise ReadFirst(f"{ckpt} was hashed before it was checked")

    monkeypatch.setattr(onnx_predict, "onnx_digest", never)  # what names a checkpoint's cached ONNX graph
    song = tmp_path / "song.wav"
    song.write_bytes(b"RIFF")
    args = [a.format(song=song, dest=tmp_path / "out") for a in COMMANDS[command]]
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(10)  # without the check: hashing /dev/zero never ends, opening the FIFO blocks
    try:
        assert main([*args, "--ckpt", bad[what]]) == 2
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"error: {bad[what]}: ") and "Traceback" not in err[0], err
    assert "not a regular file" in err[0] or "larger than any genre_cnn model" in err[0]
