"""`genre-cnn serve` against hostile clients: other sites, stalled and abandoned uploads, hours-long audio,
concurrent uploads, a killed server's leftovers, and impossible settings. Memory bounds are asserted under
an address-space cap (tests/memcap.py), never by timing.

    .venv/bin/python -m pytest tests/test_serve_guard.py
"""

from __future__ import annotations

import http.client
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tests.conftest import GTZAN_MINI, needs_gtzan_mini
from tests.memcap import run_capped

pytest.importorskip("starlette", reason="the app extra is not installed: pip install -e .[app]")
pytest.importorskip("uvicorn", reason="the app extra is not installed: pip install -e .[app]")

READY = Path(__file__).resolve().parents[1] / "genre_cnn" / "ready" / "musicnn_gtzan_mini.ckpt"


@pytest.fixture(scope="module")
def model():
    from genre_cnn.inference.predict import load_model

    return load_model(READY)  # the ready model in the box: no training needed


@pytest.fixture(scope="module")
def served(model, tmp_path_factory):
    """The app with a 1-s idle limit on upload bodies, its upload folder, and a log of errors (uvicorn's, ours)."""
    from genre_cnn.app.serve import make_app, serve_in_thread

    uploads = tmp_path_factory.mktemp("uploads")
    url, stop = serve_in_thread(make_app(model, max_mb=1.0, upload_dir=uploads, idle_seconds=1.0))
    errors: list[logging.LogRecord] = []
    handler = logging.Handler(logging.ERROR)
    handler.emit = errors.append
    loggers = [logging.getLogger(name) for name in ("uvicorn.error", "genre_cnn")]  # the server's and ours
    for logger in loggers:
        logger.addHandler(handler)
    yield {"url": url, "port": int(url.rsplit(":", 1)[1]), "uploads": uploads, "errors": errors}
    for logger in loggers:
        logger.removeHandler(handler)
    stop()


def request(served, method: str, path: str, body: bytes | None = None, headers: dict | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", served["port"], timeout=60)
    conn.request(method, path, body=body, headers={"Host": f"127.0.0.1:{served['port']}", **(headers or {})})
    resp = conn.getresponse()
    return resp.status, resp.read()


def wav_bytes(seconds: float, sr: int = 22050) -> bytes:
    import io

    buf = io.BytesIO()
    t = np.arange(int(seconds * sr)) / sr
    sf.write(buf, (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, format="WAV")
    return buf.getvalue()


def until(condition, seconds: float = 20.0) -> bool:
    end = time.monotonic() + seconds
    while not condition() and time.monotonic() < end:
        time.sleep(0.05)
    return condition()


def test_other_sites_and_other_host_names_are_refused(served):
    port = served["port"]
    status, body = request(served, "POST", "/api/analyse?name=x.wav", wav_bytes(1.0),
                           {"Origin": "http://evil.example", "Content-Type": "text/plain"})
    assert status == 403 and b"another site" in body
    status, body = request(served, "GET", "/api/info", headers={"Host": f"attacker.example:{port}"})
    assert status == 403 and b"does not name this server" in body and b"demo.ckpt" not in body
    assert request(served, "GET", "/api/info", headers={"Host": f"127.0.0.1:{port + 1}"})[0] == 403
    assert request(served, "GET", "/api/info", headers={"Host": f"localhost:{port}"})[0] == 200
    same = {"Origin": f"http://127.0.0.1:{port}"}  # the page itself
    assert request(served, "POST", "/api/analyse?name=x.wav", b"", same) == (400, b'{"error":"x.wav: empty upload"}')
    assert list(served["uploads"].iterdir()) == []


def test_a_stalled_upload_gets_408_and_its_file_is_deleted(served):
    with socket.create_connection(("127.0.0.1", served["port"]), timeout=30) as s:
        s.sendall(b"POST /api/analyse?name=slow.wav HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 100000\r\n"
                  b"\r\nRIFF" % served["port"])
        answer = b""
        while b"stalled" not in answer and (part := s.recv(4096)):  # after 1 s without data, not never
            answer += part
    assert answer.startswith(b"HTTP/1.1 408") and b"slow.wav: the upload stalled" in answer
    assert until(lambda: list(served["uploads"].iterdir()) == [])


def test_a_client_leaving_mid_upload_logs_no_traceback(served):
    served["errors"].clear()
    with socket.create_connection(("127.0.0.1", served["port"])) as s:
        s.sendall(b"POST /api/analyse?name=gone.wav HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: 100000\r\n"
                  b"\r\n" % served["port"] + b"\0" * 5000)
        time.sleep(0.3)
    assert request(served, "GET", "/api/info")[0] == 200
    assert until(lambda: list(served["uploads"].iterdir()) == [])
    time.sleep(0.3)
    assert served["errors"] == []


def test_an_analysis_stops_when_its_client_leaves(served, monkeypatch):
    from genre_cnn.app import serve

    started, stopped = threading.Event(), threading.Event()

    def endless_analyse(model, path, check=None):  # as analyse: calls check() between pieces of work
        started.set()
        for _ in range(600):
            try:
                check()
            except serve.Abandoned:
                stopped.set()
                raise
            time.sleep(0.05)
        raise AssertionError("never stopped")

    monkeypatch.setattr(serve, "analyse", endless_analyse)
    with socket.create_connection(("127.0.0.1", served["port"])) as s:
        body = wav_bytes(1.0)
        s.sendall(b"POST /api/analyse?name=a.wav HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n"
                  % (served["port"], len(body)) + body)
        assert started.wait(20)
    assert stopped.wait(20)  # within a poll of the disconnect, not after the 30 s of work


def test_at_most_ANALYSES_run_at_once(served, monkeypatch):
    from genre_cnn.app import serve
    from genre_cnn.audio.decode import AudioError

    running, most, lock = [0], [0], threading.Lock()

    def counting_analyse(model, path, check=None):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.5)
        with lock:
            running[0] -= 1
        raise AudioError(f"{path}: counted")

    monkeypatch.setattr(serve, "analyse", counting_analyse)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(request(served, "POST", "/api/analyse?name=c.wav",
                                                                      wav_bytes(1.0))[0])) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert answers == [422] * 5 and most[0] == serve.ANALYSES


def test_hours_of_audio_are_refused_before_decoding_under_a_memory_cap(model, tmp_path):
    with sf.SoundFile(tmp_path / "3h.flac", "w", 8000, 1, format="FLAC") as f:  # 270 KB, 3 h of silence
        for _ in range(18):
            f.write(np.zeros(8000 * 600, np.float32))
    data = bytearray((tmp_path / "3h.flac").read_bytes())  # the same, its header stating no length
    data[18:26] = (int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)).to_bytes(8, "big")
    (tmp_path / "nolen.flac").write_bytes(bytes(data))
    code = f"""
        for name in ("3h.flac", "nolen.flac"):
            try:
                analyse(model, Path({str(tmp_path)!r}) / name)
            except AudioError as err:
                print(err)
    """
    setup = f"""
        from pathlib import Path
        from genre_cnn.audio.decode import AudioError
        from genre_cnn.inference.predict import load_model
        from genre_cnn.app.serve_analysis import analyse
        model = load_model({str(model.checkpoint)!r})
    """
    done = run_capped(code, headroom_mb=200, setup=setup)  # 3 h at 22050 Hz would be 950 MB of float32
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [f"{tmp_path / '3h.flac'}: too long (180.0 min > 15 min)",
                                        f"{tmp_path / 'nolen.flac'}: too long (more than 15 min)"]


@needs_gtzan_mini
def test_musicnn_patches_go_in_batches_and_give_the_models_probabilities(tmp_path):
    import torch

    from genre_cnn.app.serve_analysis import analyse
    from genre_cnn.inference.predict import load_model
    from genre_cnn.models.families.base import TRACK_BATCH as BATCH

    model = load_model(READY)
    clips = [sf.read(p, dtype="float32")[0] for p in sorted((GTZAN_MINI / "genres" / "jazz").glob("*.wav"))[:2]]
    sf.write(tmp_path / "jazz60.wav", np.concatenate(clips), 22050)  # 60 s: 20 patches
    sizes = []
    model.backbone.register_forward_hook(lambda module, args, out: sizes.append(len(args[0])))
    r = analyse(model, tmp_path / "jazz60.wav")
    # the timeline's 20 patches, then the answer `predict` gives (its own windows): every call in batches
    assert max(sizes) <= BATCH < 20 == len(r["window_probabilities"]) < sum(sizes)
    from genre_cnn.audio.decode import load_audio

    expected = model.predict_waveform(torch.from_numpy(load_audio(tmp_path / "jazz60.wav", 16000)))
    np.testing.assert_allclose(r["probabilities"], expected.numpy(), rtol=0, atol=1e-5)  # float32 sums, reordered


def test_a_killed_servers_upload_folder_is_removed_at_the_next_start(tmp_path):
    from genre_cnn.app.serve_guard import PREFIX, private_upload_dir

    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # a process id that no longer runs, as after kill -9
    stale = tmp_path / f"{PREFIX}{gone.pid}-abc123"
    stale.mkdir()
    (stale / "upload-x.flac").write_bytes(b"\0" * 1000)
    alive = tmp_path / f"{PREFIX}{os.getpid()}-def456"  # a server that still runs keeps its folder
    alive.mkdir()
    mine = private_upload_dir(tmp_path)
    assert not stale.exists() and alive.exists() and mine.name.startswith(f"{PREFIX}{os.getpid()}-")


@pytest.mark.parametrize(("option", "message"), [
    (["--port", "99999"], "error: --port 99999: not a port number (0-65535)"),
    (["--max-mb", "inf"], "error: --max-mb inf: give the largest upload as a positive number of MB"),
    (["--max-mb", "nan"], "error: --max-mb nan: give the largest upload as a positive number of MB"),
])
def test_impossible_settings_are_one_line(option, message, capsys):
    from genre_cnn.app.cli import main

    assert main(["serve", "--ckpt", str(READY), *option]) == 2
    captured = capsys.readouterr()
    assert captured.err.strip() == message and captured.out == ""  # no address printed


def test_a_busy_port_is_one_line_before_any_address(capsys):
    from genre_cnn.app.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["serve", "--ckpt", str(READY), "--port", str(port)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith(f"error: cannot listen on 127.0.0.1:{port}: Address already in use")


@pytest.mark.slow
@needs_gtzan_mini
def test_a_long_musicnn_analysis_fits_its_memory_bound(tmp_path):
    """3 min of real music (60 musicnn patches) through `analyse` within 800 MB of headroom; all patches in
    one batch take about 20 MB each (about 1.2 GB here)."""
    clips = [sf.read(p, dtype="float32")[0] for p in sorted((GTZAN_MINI / "genres").rglob("*.wav"))[:6]]
    sf.write(tmp_path / "three_minutes.flac", np.concatenate(clips), 22050)
    setup = f"""
        import torch
        torch.set_num_threads(1)
        from genre_cnn.inference.predict import load_model
        from genre_cnn.app.serve import _answer
        model = load_model({str(READY)!r})
    """
    code = f"""
        r = _answer(model, __import__("pathlib").Path({str(tmp_path / "three_minutes.flac")!r}))
        print(len(r["window_probabilities"]), r["logmel_png"][:22])
    """
    done = run_capped(code, headroom_mb=800, setup=setup)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["60", "data:image/png;base64,"]


def test_out_of_file_descriptors_is_a_json_503(served, monkeypatch):
    import errno

    from genre_cnn.app import serve

    def no_fds(*args, **kwargs):
        raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))

    monkeypatch.setattr(serve.tempfile, "mkstemp", no_fds)
    status, body = request(served, "POST", "/api/analyse?name=x.wav", wav_bytes(1.0))
    assert (status, body) == (503, b'{"error":"x.wav: the server cannot store uploads now (Too many open files); '
                                   b'try again"}')
