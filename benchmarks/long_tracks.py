"""Full-length tracks: what the default costs beside every window, and whether it gives the same answer.

    .venv/bin/python benchmarks/long_tracks.py [--ckpt CKPT] [--parts agreement cost folder model]
        [--real DIR ...] [--tracks-per-genre 5] [--folder-tracks 12] [--runs 5]

Tracks are built once under --dir from real clips of one genre, eight of them joined (4 min; ../shared's
gtzan_mini, 10 genres, and gtzan_unseen, 3 genres), drawn at random (seeded) for each track.
- agreement: for every joined track (22.05 kHz FLAC) and every file under --real DIR (e.g. game soundtracks
  from Debian's packages: `apt-get download singularity-music warzone2100-music nexuiz-music ...`), the top
  genre of the default against that of every window (`--max-windows all`), and the windows the default heard.
- cost: CPU seconds (user + sys) of `genre-cnn predict FILE` as a fresh process, median of --runs, for a 30-s
  clip and a 4-min track, both 44.1 kHz stereo MP3: the default, and every window for the 4-min one.
- folder: tracks/s of `genre-cnn predict DIR` on --folder-tracks 4-min MP3s with the default workers (one per
  core), beside this machine's limit: the default's own work per track (model time for the windows it hears,
  plus decoding and reading them), measured in this process on one core, times the cores.
- model: CPU ms per window of the model alone, ONNX Runtime and PyTorch, one window and eight at once, one
  thread and the default threads.
Every figure is this machine's, with `uptime` printed beside it; run it under the shared CPU lock.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's genre_cnn, whatever is installed
SHARED = REPO.parent / "shared"
SETS = {"gtzan_mini": SHARED / "gtzan_mini" / "genres", "gtzan_unseen": SHARED / "gtzan_unseen" / "genres"}


def joined_tracks(folder: Path, per_genre: int, seed: int = 0) -> list[Path]:
    """FLACs of eight random clips of one genre joined, `per_genre` per genre of each set (more for the 30-clip
    genres of gtzan_unseen, up to three times), made once."""
    import soundfile as sf

    rng, out = np.random.default_rng(seed), []
    for name, root in SETS.items():
        for genre in sorted(p.name for p in root.iterdir() if p.is_dir()):
            clips = sorted((root / genre).glob("*.*"))
            for i in range(min(3 * per_genre, per_genre * len(clips) // 10)):
                path = folder / name / f"{genre}-{i:02d}.flac"
                if not path.exists():
                    path.parent.mkdir(parents=True, exist_ok=True)
                    chosen = rng.choice(len(clips), size=8, replace=False)
                    sf.write(path, np.concatenate([sf.read(clips[j], dtype="float32")[0] for j in chosen]), 22050)
                out.append(path)
    return out


def to_mp3(src: Path, dst: Path) -> Path:
    """44.1 kHz stereo MP3 of `src` (ffmpeg, 192 kb/s), made once."""
    if not dst.exists():
        dst.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(src), "-ar", "44100", "-ac", "2", "-b:a", "192k",
                        str(dst)], check=True)
    return dst


class Counting:
    """A runner that counts the windows it is shown (rows of `window_values`) and the CPU its model takes."""

    def __init__(self, runner):
        self.runner, self.windows, self.model_cpu = runner, 0, 0.0

    def __getattr__(self, name: str):
        return getattr(self.runner, name)

    def window_values(self, y: np.ndarray) -> np.ndarray:
        start = time.process_time()
        values = self.runner.window_values(y)
        self.model_cpu += time.process_time() - start
        self.windows += len(values)
        return values

    def answer(self, means: np.ndarray) -> np.ndarray:
        start = time.process_time()
        out = self.runner.answer(means)
        self.model_cpu += time.process_time() - start
        return out


_RUNNER = None


def _init(spec) -> None:
    global _RUNNER
    _RUNNER = spec.runner(threads=1)


def _compare(path: Path) -> dict:
    """Top genre of the default and of every window, the default's windows and this process's CPU for it."""
    from genre_cnn.inference.track import predict_track

    out = {"file": str(path)}
    for name, max_windows in (("default", None), ("all", 0)):
        runner = Counting(_RUNNER)
        start = time.process_time()
        try:
            probs, _ = predict_track(runner, path, max_windows)
        except Exception as err:  # noqa: BLE001 - an unusable file is reported, not fatal
            return {**out, "error": str(err)}
        order = np.argsort(-probs)
        out[name] = {"top": _RUNNER.genres[order[0]], "margin": float(probs[order[0]] - probs[order[1]]),
                     "windows": runner.windows, "cpu": time.process_time() - start, "model_cpu": runner.model_cpu}
    return out


def compared(spec, files: list[Path], workers: int = 2) -> list[dict]:
    with mp.get_context("forkserver").Pool(workers, initializer=_init, initargs=(spec,)) as pool:
        return pool.map(_compare, files, chunksize=1)


def agreement(spec, sets: dict[str, list[Path]]) -> None:
    for name, files in sets.items():
        rows = [r for r in compared(spec, files) if "error" not in r]
        if not rows:
            continue
        same = sum(r["default"]["top"] == r["all"]["top"] for r in rows)
        heard = [r["default"]["windows"] for r in rows]
        every = [r["all"]["windows"] for r in rows]
        print(f"  {name}: {same}/{len(rows)} tracks ({100 * same / max(1, len(rows)):.1f}%) get the top genre of "
              f"every window; the default heard {np.mean(heard):.1f} windows a track (median {np.median(heard):.0f},"
              f" max {max(heard)}); the every-window pass computed {np.mean(every):.1f} (max {max(every)}; its "
              "30-s pieces add a window of context on either side)")
        for r in rows:
            if r["default"]["top"] != r["all"]["top"]:
                print(f"    differs: {Path(r['file']).name}: default {r['default']['top']} "
                      f"(lead {r['default']['margin']:.3f}, {r['default']['windows']} windows), every window "
                      f"{r['all']['top']} (lead {r['all']['margin']:.3f})")


def timed(cmd: list[str], runs: int) -> float:
    """Median child CPU seconds (user + sys) of `runs` fresh runs of `cmd`."""
    cpus = []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(cpus)


def cost(ckpt: Path, clip: Path, track: Path, runs: int) -> None:
    cli = [sys.executable, "-m", "genre_cnn.app.cli", "predict", "--ckpt", str(ckpt), "--json", "--no-progress"]
    short = timed([*cli, str(clip)], runs)
    default = timed([*cli, str(track)], runs)
    every = timed([*cli, str(track), "--max-windows", "all"], runs)
    print(f"  30-s clip: {short:.2f} s CPU; 4-min track: {default:.2f} s CPU by default ({default / short:.2f}x the "
          f"clip), {every:.2f} s with every window ({every / short:.2f}x); median of {runs} fresh processes")


def folder(spec, ckpt: Path, tracks: list[Path]) -> None:
    cores = os.cpu_count() or 1
    cmd = [sys.executable, "-m", "genre_cnn.app.cli", "predict", str(tracks[0].parent), "--ckpt", str(ckpt),
           "--json", "--no-progress"]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, cwd=REPO)
    wall = time.perf_counter() - start
    _init(spec)
    _compare(tracks[0])  # warm-up
    rows = [_compare(t)["default"] for t in tracks]
    per_track = statistics.mean(r["cpu"] for r in rows)
    model = statistics.mean(r["model_cpu"] for r in rows)
    windows = statistics.mean(r["windows"] for r in rows)
    limit = cores / per_track
    print(f"  {len(tracks)} four-minute MP3s: {len(tracks) / wall:.2f} tracks/s with `genre-cnn predict DIR` "
          f"({cores} workers, start-up included)")
    print(f"  the limit of this machine: {limit:.2f} tracks/s = {cores} cores / {per_track:.3f} s of work a track "
          f"(model {model:.3f} s for {windows:.1f} windows, decoding and reading {per_track - model:.3f} s, one "
          f"thread); measured / limit = {len(tracks) / wall / limit:.2f}")


def model_time(spec, ckpt: Path, track: Path) -> None:
    import torch

    from genre_cnn.audio.decode import load_audio
    from genre_cnn.inference.onnx_predict import OnnxRunner
    from genre_cnn.inference.predict import load_model
    from genre_cnn.inference.torch_runner import TorchRunner

    onnx = {t: OnnxRunner(spec.path, t) for t in (1, 0)} if spec.engine == "onnx" else {}
    model = load_model(ckpt)
    y = load_audio(track, model.sample_rate)
    step = TorchRunner(model).window_step or TorchRunner(model).segment_samples
    one, eight = y[:step], y[: 8 * step]
    for threads in (1, 0):
        torch.set_num_threads(1 if threads else cores_default())
        runners = {"PyTorch": TorchRunner(model), **({"ONNX Runtime": onnx[threads]} if onnx else {})}
        for name, runner in runners.items():
            ms = [1000 * _cpu(lambda r=runner, x=x: r.window_values(x)) / len(runner.window_values(x))
                  for x in (one, eight)]
            print(f"  {name}, {'one thread' if threads else 'default threads'}: {ms[0]:.1f} ms CPU a window "
                  f"alone, {ms[1]:.1f} ms a window with {len(runner.window_values(eight))} at once")


def cores_default() -> int:
    return os.cpu_count() or 1


def _cpu(fn, runs: int = 7) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None, help="default: the ready model")
    parser.add_argument("--parts", nargs="+", default=["agreement", "cost", "folder", "model"],
                        choices=["agreement", "cost", "folder", "model"])
    parser.add_argument("--real", type=Path, nargs="*", default=[], help="folders of real full-length music")
    parser.add_argument("--tracks-per-genre", type=int, default=5)
    parser.add_argument("--folder-tracks", type=int, default=12)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/genre_cnn_long_tracks"))
    args = parser.parse_args()
    from genre_cnn.inference.predict import READY_MODEL, expand_paths
    from genre_cnn.inference.session import Predictor

    ckpt = args.ckpt or READY_MODEL
    spec = Predictor.open(ckpt).spec
    print(f"{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; model {ckpt} ({spec.engine}); load: {os.getloadavg()}")
    tracks = joined_tracks(args.dir / "joined", args.tracks_per_genre)
    spaced = tracks[::max(1, len(tracks) // args.folder_tracks)][: args.folder_tracks]  # of several genres
    mp3s = [to_mp3(t, args.dir / f"mp3_{args.folder_tracks}" / t.with_suffix(".mp3").name) for t in spaced]
    if "agreement" in args.parts:
        print("agreement with every window:")
        sets = {name: [t for t in tracks if t.parent.name == name] for name in SETS}
        for real in args.real:
            sets[str(real)] = expand_paths([real])[0]
        agreement(spec, sets)
    if "cost" in args.parts:
        print("cost of `genre-cnn predict FILE`:")
        clip = to_mp3(SETS["gtzan_mini"] / "jazz" / "jazz.00005.wav", args.dir / "clip" / "jazz.00005.mp3")
        cost(ckpt, clip, mp3s[0], args.runs)
    if "folder" in args.parts:
        print("a folder:")
        folder(spec, ckpt, mp3s)
    if "model" in args.parts:
        print("model time:")
        model_time(spec, ckpt, mp3s[0])
    print(f"load at the end: {os.getloadavg()}")


if __name__ == "__main__":
    main()
