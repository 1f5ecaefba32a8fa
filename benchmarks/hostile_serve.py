"""Hostile inputs against `genre-cnn serve` and `genre-cnn plot`: what each costs, as peak memory (RSS).

    .venv/bin/python benchmarks/hostile_serve.py [--ckpt CKPT] [--skip-long]

Starts `genre-cnn serve` in a child process on a free localhost port (the default model unless --ckpt) and
sends it, one case at a time: FLACs of hours of silence that compress to a few hundred KB (refused from the
header), one whose header states no length (refused while decoding), a real 14.5-min FLAC made of GTZAN
clips (../shared/gtzan_mini), four of those at once, three clients that give up after a second, 50 stalled
uploads, and a POST from another site. Before each case the server's peak RSS is reset (/proc/PID/clear_refs),
after it the peak (VmHWM) is read, so each line is that case's own peak for the whole server process, model
included. Then `genre-cnn plot` runs on the 14.5-min and the 3-h file, each in its own process (peak RSS
from wait4). Linux only. Nothing here should pass 1.5 GB.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
MINI = ROOT.parent / "shared" / "gtzan_mini" / "genres"
CLI = [sys.executable, "-m", "genre_cnn.app.cli"]


def silence_flac(path: Path, hours: float, rate: int = 8000, stated: bool = True) -> Path:
    """Hours of digital silence as FLAC (a few hundred KB); `stated=False` zeroes the header's length field."""
    with sf.SoundFile(path, "w", rate, 1, format="FLAC") as f:
        block = np.zeros(rate * 600, np.float32)
        for _ in range(int(hours * 6)):
            f.write(block)
    if not stated:
        data = bytearray(path.read_bytes())
        field = int.from_bytes(data[18:26], "big") & ~((1 << 36) - 1)  # STREAMINFO: 36-bit total samples
        data[18:26] = field.to_bytes(8, "big")
        path.write_bytes(bytes(data))
    return path


def long_flac(path: Path, clips: int = 29) -> Path:
    """`clips` real 30-s GTZAN clips end to end: 14.5 min for 29, about 20 MB of FLAC."""
    files = sorted(MINI.rglob("*.wav"))[:clips]
    with sf.SoundFile(path, "w", 22050, 1, format="FLAC") as out:
        for f in files:
            out.write(sf.read(f, dtype="float32")[0])
    return path


def post(url: str, path: Path, timeout: float = 600, headers: dict | None = None) -> str:
    req = urllib.request.Request(f"{url}/api/analyse?name={path.name}", data=path.read_bytes(), method="POST",
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return f"{resp.status} {json.loads(resp.read()).get('model')}"
    except urllib.error.HTTPError as err:
        return f"{err.code} {json.loads(err.read())['error'][:70]}"
    except (TimeoutError, urllib.error.URLError) as err:
        return f"client gave up ({type(err).__name__})"


def stall(url: str, n: int, wait: float) -> str:
    """n uploads that send their headers and 1 byte of a 10 MB body, then nothing; the answers after `wait` s."""
    host, port = url.removeprefix("http://").split(":")
    socks = []
    for _ in range(n):
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /api/analyse?name=x.wav HTTP/1.1\r\nHost: %s:%s\r\nContent-Length: 10485760\r\n\r\n\0"
                  % (host.encode(), port.encode()))
        socks.append(s)
    time.sleep(wait)
    answers = []
    for s in socks:
        s.settimeout(1)
        try:
            answers.append(s.recv(64).split(b"\r\n")[0].decode() or "closed")
        except OSError:
            answers.append("no answer")
        s.close()
    return f"{n} stalled uploads after {wait:g} s: " + ", ".join(f"{answers.count(a)} x {a!r}" for a in set(answers))


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def run_child(args: list[str]) -> tuple[int, float, str]:
    """(exit code, peak RSS in MB, last stderr line) of a genre-cnn command in its own process."""
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(CLI + args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        err.seek(0)
        lines = err.read().decode(errors="replace").strip().splitlines()
    return os.waitstatus_to_exitcode(status), usage.ru_maxrss / 1024, (lines or [""])[-1][:90]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, help="a checkpoint (default: genre-cnn's default model)")
    parser.add_argument("--skip-long", action="store_true", help="leave out the 14.5-min cases (minutes of CPU)")
    args = parser.parse_args()
    ckpt = ["--ckpt", str(args.ckpt)] if args.ckpt else []
    work = Path(tempfile.mkdtemp(prefix="hostile-"))
    files = {"3 h of silence, 8 kHz FLAC": silence_flac(work / "3h.flac", 3),
             "10 h of silence, 8 kHz FLAC": silence_flac(work / "10h.flac", 10),
             "20 min, header states no length": silence_flac(work / "nolen.flac", 1 / 3, stated=False)}
    long = None if args.skip_long else long_flac(work / "long.flac")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([*CLI, "serve", "--port", str(port), *ckpt], cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    print(server.stdout.readline().strip())
    print(f"machine: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}; server peak RSS per case:")
    cases = [(f"{name} ({path.stat().st_size // 1024} KB)", lambda p=path: post(url, p))
             for name, path in files.items()]
    cases.append(("POST with Origin: http://evil.example",
                  lambda: post(url, files["3 h of silence, 8 kHz FLAC"], headers={"Origin": "http://evil.example"})))
    cases.append(("50 stalled uploads", lambda: stall(url, 50, 20)))
    if long is not None:
        size = f"{long.stat().st_size / 2**20:.0f} MB"
        cases.append((f"real 14.5-min FLAC ({size})", lambda: post(url, long)))
        cases.append(("four 14.5-min FLACs at once", lambda: ", ".join(
            ThreadPoolExecutor(4).map(lambda _: post(url, long), range(4)))))
        cases.append(("three 14.5-min uploads, clients give up after 1 s", lambda: ", ".join(
            ThreadPoolExecutor(3).map(lambda _: post(url, long, timeout=1), range(3)))))
    try:
        for name, case in cases:
            reset_peak(server.pid)
            start = time.perf_counter()
            answer = case()
            time.sleep(3)  # work that outlives the request (a client that gave up) is counted too
            print(f"  {name}: {peak_mb(server.pid):.0f} MB peak, {time.perf_counter() - start:.0f} s -> {answer}")
    finally:
        server.terminate()
        server.wait(30)
    print("genre-cnn plot, peak RSS of its process:")
    for path in [files["3 h of silence, 8 kHz FLAC"], *([long] if long is not None else [])]:
        code, peak, last = run_child(["plot", str(path), "--out", str(work / "plots"), *ckpt])
        print(f"  {path.name}: exit {code}, {peak:.0f} MB peak -> {last}")


if __name__ == "__main__":
    main()
