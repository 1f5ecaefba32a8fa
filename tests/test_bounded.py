"""Memory bounded whatever a header claims, and one file's failure (a dead worker included) costs only that file:
MP3s whose LAME/Xing header makes libsndfile report 2^63 - 1 frames, a FLAC whose header claims 2^36 frames,
and a worker process killed while it reads a file. The ready model's shipped ONNX graph answers (no training)."""

from __future__ import annotations

import json
import os
import shutil
import struct
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.memcap import run_capped

SR = 44100
needs_mp3 = pytest.mark.skipif("MP3" not in sf.available_formats(),
                               reason="this libsndfile cannot write MP3 (libsndfile >= 1.1 with LAME can)")


def tone(seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def lame_padding_mp3(path: Path) -> Path:
    """A 0.07-s LAME MP3 whose header's end padding (4095 samples) exceeds its 3 frames of audio."""
    sf.write(path, tone(0.07), SR, format="MP3")
    data = bytearray(path.read_bytes())
    at = data.find(b"LAME") + 21  # the LAME tag's 12-bit encoder delay then 12-bit padding
    data[at + 1] |= 0x0F
    data[at + 2] = 0xFF
    path.write_bytes(data)
    return path


def xing_frames_mp3(path: Path, seconds: float = 5.0) -> Path:
    """A `seconds` MP3 whose Xing header says it holds one frame."""
    sf.write(path, tone(seconds), SR, format="MP3")
    data = bytearray(path.read_bytes())
    at = data.find(b"Xing") + 8  # after the flags: the frame count
    data[at:at + 4] = struct.pack(">I", 1)
    path.write_bytes(data)
    return path


def huge_flac(path: Path, seconds: float = 5.0) -> Path:
    """A `seconds` FLAC whose STREAMINFO claims 2^36 - 1 samples (about 36 days at 22 kHz)."""
    sf.write(path, tone(seconds, 22050), 22050)
    data = bytearray(path.read_bytes())
    field = int.from_bytes(data[18:26], "big") | (2**36 - 1)  # the low 36 bits of STREAMINFO bytes 10-17
    data[18:26] = field.to_bytes(8, "big")
    path.write_bytes(data)
    return path


@needs_mp3
def test_headers_that_claim_absurd_lengths_are_predicted_in_bounded_memory(tmp_path):
    folder = tmp_path / "music"
    folder.mkdir()
    tiny, five, flac = lame_padding_mp3(folder / "a-tiny.mp3"), xing_frames_mp3(folder / "b-five.mp3"), \
        huge_flac(folder / "c-huge.flac")
    sf.write(folder / "d-fine.wav", tone(6.0), SR)
    assert sf.info(str(tiny)).frames == sf.info(str(five)).frames == 2**63 - 1  # what libsndfile reports
    assert sf.info(str(flac)).frames == 2**36 - 1
    proc = run_capped(f"""
        import json
        from genre_cnn.app.cli import main
        code = main(["predict", {str(folder)!r}, "--json", "--no-progress", "--workers", "2"])
        print("EXIT", code)""", headroom_mb=1500, setup="import genre_cnn.app.cli, genre_cnn.inference.predict")
    out = proc.stdout
    assert proc.returncode == 0 and "EXIT 0" in out, proc.stderr[-2000:]
    rows = {Path(r["file"]).name: r for r in json.loads(out[:out.index("EXIT")])}
    assert list(rows) == ["a-tiny.mp3", "b-five.mp3", "c-huge.flac", "d-fine.wav"]
    assert rows["a-tiny.mp3"]["error"].startswith("too short"), rows  # one line, not an allocation
    assert "Traceback" not in proc.stderr and len([line for line in proc.stderr.splitlines() if "a-tiny" in line]) == 1
    if shutil.which("ffmpeg"):  # the stream that libsndfile cannot seek in is decoded by ffmpeg
        assert "probabilities" in rows["b-five.mp3"], rows
    assert "probabilities" in rows["c-huge.flac"] and "probabilities" in rows["d-fine.wav"], rows


def _kill_readers_of(victim: Path, stop: threading.Event, killed: list[int]) -> None:
    """SIGKILLs every process of ours that has `victim` open (a worker reading it), until `stop` is set."""
    me = os.getpid()
    while not stop.is_set():
        for pid in filter(str.isdigit, os.listdir("/proc")):
            if int(pid) == me:
                continue
            try:
                links = [os.readlink(f"/proc/{pid}/fd/{fd}") for fd in os.listdir(f"/proc/{pid}/fd")]
            except OSError:  # gone, or not ours
                continue
            if str(victim) in links:
                os.kill(int(pid), 9)
                killed.append(int(pid))
        time.sleep(0.005)


def test_a_worker_that_dies_costs_only_its_file_and_the_run_goes_on(tmp_path):
    from genre_cnn.inference.predict import READY_MODEL
    from genre_cnn.inference.session import Predictor
    from genre_cnn.inference.workers import DIED

    files = []
    for i, seconds in enumerate([4.0, 4.0, 90.0, 4.0, 4.0, 4.0]):  # the long one is read long enough to be caught
        files.append(tmp_path / f"{i}.wav")
        sf.write(files[-1], tone(seconds, 16000) * (1 + 0.1 * i), 16000)
    victim = files[2]
    stop, killed = threading.Event(), []
    killer = threading.Thread(target=_kill_readers_of, args=(victim, stop, killed), daemon=True)
    killer.start()
    try:
        out = list(Predictor.open(READY_MODEL, "onnx").predict_many(files, workers=2))
    finally:
        stop.set()
        killer.join()
    assert [path for path, _, _ in out] == files
    assert len(killed) >= 2, "the victim's worker, then its lone retry, should have been killed"
    assert out[2][1] is None and out[2][2] == f"{victim}: {DIED}"
    for path, result, error in out[:2] + out[3:]:
        assert error is None and result["file"] == str(path), (path, error)

