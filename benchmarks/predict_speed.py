"""Prediction speed on CPU: `genre-cnn predict FILE` start to answer, what imports cost, and model time.

    .venv/bin/python benchmarks/predict_speed.py --ckpt checkpoints/RUN/cnn/best.ckpt [--file FILE] [--runs 5]

Every figure uses the one --ckpt given (default: the default model, printed), on a real 30-s GTZAN clip.
1. Start to answer: the wall time of `python -m genre_cnn.app.cli predict FILE --ckpt CKPT --json` as a fresh
   process (interpreter start, imports, model, audio, answer), median of --runs, for the ONNX Runtime path
   (the default for a CNN; its cached export is made before timing) and for `--engine torch`. CPU time
   (user + sys of the child) is printed beside the wall time: on a loaded machine it is the steadier figure.
2. Imports, measured separately: a fresh `python -c "import X"` for the modules each path needs, minus a bare
   `python -c pass`, median of --runs.
   Then the first call: `genre-cnn predict FILE` in an empty project home (the ready model and the graph shipped
   beside it), and `--ckpt` of a checkpoint never exported before (its one-time export included).
3. Model time for the whole clip in this process, median of 20 after a warm-up: PyTorch `window_probs`
   and the ONNX graph.
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's genre_cnn, whatever is installed
CLIP = REPO.parent / "shared" / "gtzan_mini" / "genres" / "jazz" / "jazz.00005.wav"


def timed(cmd: list[str], runs: int, fresh_home: bool = False) -> tuple[float, float]:
    """(median wall seconds, median child CPU seconds) of `runs` fresh runs of `cmd`; with `fresh_home`, each in
    an empty project home (GENRE_CNN_HOME: no run, no cached export), as right after set-up."""
    import tempfile

    walls, cpus = [], []
    for _ in range(runs):
        home = tempfile.mkdtemp(prefix="genre_cnn_home_") if fresh_home else None
        env = {**os.environ, **({"GENRE_CNN_HOME": home} if home else {})}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, cwd=REPO, env=env)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus)


def model_ms(fn, runs: int = 20) -> float:
    fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, default=None, help="the model for every figure (default: the default)")
    parser.add_argument("--file", type=Path, default=CLIP)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()

    import torch

    from genre_cnn.audio.decode import load_audio
    from genre_cnn.inference.onnx_predict import OnnxRunner, cached_onnx, make_onnx
    from genre_cnn.inference.predict import load_model
    from genre_cnn.inference.session import choose_checkpoint

    ckpt, _ = choose_checkpoint(args.ckpt)
    model = load_model(ckpt)
    graph = cached_onnx(ckpt) or make_onnx(ckpt, model)
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU cores, load average "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())} (timings on a loaded machine are noisy), "
          f"torch {torch.__version__}")
    print(f"model: {type(model).__name__} ({ckpt}); file: {args.file.name}")

    cli = [sys.executable, "-m", "genre_cnn.app.cli", "predict", str(args.file), "--ckpt", str(ckpt), "--json"]
    rows = []
    if graph is not None:
        rows.append(("genre-cnn predict, ONNX Runtime path (default)", *timed(cli, args.runs)))
    rows.append(("genre-cnn predict --engine torch", *timed([*cli, "--engine", "torch"], args.runs)))
    first = [sys.executable, "-m", "genre_cnn.app.cli", "predict", str(args.file), "--json"]
    rows.append(("first genre-cnn predict after set-up (empty home: the ready model, its shipped graph)",
                 *timed(first, args.runs, fresh_home=True)))
    own = Path(__import__("tempfile").mkdtemp()) / "own.ckpt"
    saved = torch.load(ckpt, map_location="cpu", weights_only=True)
    torch.save({**saved, "trained_on": "a copy: a checkpoint never exported before"}, own)
    rows.append(("first genre-cnn predict --ckpt OWN (a new checkpoint: ONNX export included, once)",
                 *timed([*first, "--ckpt", str(own)], 1, fresh_home=True)))
    base = timed([sys.executable, "-c", "pass"], args.runs)
    rows.append(("python -c pass (interpreter start)", *base))
    for what in ("numpy, soundfile", "onnxruntime",
                 "genre_cnn.app.cli, genre_cnn.inference.predict, genre_cnn.inference.onnx_predict", "torch",
                 "librosa, librosa.filters"):
        wall, cpu = timed([sys.executable, "-c", f"import {what}"], args.runs)
        rows.append((f"import {what} (minus interpreter start)", wall - base[0], cpu - base[1]))
    print(f"\nstart to answer and imports, median of {args.runs} fresh processes:")
    for name, wall, cpu in rows:
        print(f"  {name:<78} {wall:6.2f} s wall  {cpu:6.2f} s CPU")

    y = load_audio(args.file, model.sample_rate)  # (samples,)
    print(f"\nmodel time for the whole {len(y) / model.sample_rate:.0f}-s clip, median of 20:")
    print(f"  PyTorch window_probs: {model_ms(lambda: model.window_probs(torch.from_numpy(y))):.1f} ms "
          f"({torch.get_num_threads()} threads)")
    if graph is not None:
        runner = OnnxRunner(graph)
        print(f"  ONNX Runtime graph:   {model_ms(lambda: runner.window_probs(y)):.1f} ms")


if __name__ == "__main__":
    main()
