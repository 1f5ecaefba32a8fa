"""musicnn (MSD) embedding speed on CPU: model time for one 30-s clip, and clips/s over gtzan_mini with file loading.

    .venv/bin/python benchmarks/musicnn_speed.py [--clips 20] [--runs 7] [--bf16]

Model time: front end + the 10 patches of a 30-s clip as one batch + the mean over patches (`embed`), under
torch.inference_mode, torch's default threads, the median of `--runs` after a warm-up; wall and process CPU time
(the CPU time shows whether other processes were competing for the cores). Throughput: a loop over the first
`--clips` clips of ../shared/gtzan_mini (load + resample to 16 kHz + embed), one process. `--bf16` also times
bfloat16 autocast and prints how far its taggram is from float32's (it is not what load_pretrained runs).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[2] / "shared"
CLIP = SHARED / "gtzan_mini" / "genres" / "jazz" / "jazz.00005.wav"


def timed(fn, runs: int) -> tuple[float, float]:
    """Median wall and process-CPU seconds of fn() over `runs` runs, after one warm-up."""
    fn()
    walls, cpus = [], []
    for _ in range(runs):
        w, c = time.perf_counter(), time.process_time()
        fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return statistics.median(walls), statistics.median(cpus)


def main() -> None:
    import torch

    from genre_cnn.audio.decode import load_audio
    from genre_cnn.audio.frontend import FrontEnd
    from genre_cnn.data.layout import dataset_clips
    from genre_cnn.models.musicnn import FRONTEND, embed, load_pretrained

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()

    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads, load average {os.getloadavg()[0]:.1f}")
    t0 = time.perf_counter()
    model, front = load_pretrained(), FrontEnd(FRONTEND)
    print(f"load_pretrained + front end: {time.perf_counter() - t0:.2f} s")
    wave = load_audio(CLIP, FRONTEND.sample_rate)
    wall, cpu = timed(lambda: embed(model, front, wave), args.runs)
    print(f"model time, one 30-s clip ({CLIP.name}): {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU "
          f"(median of {args.runs})")
    x = torch.from_numpy(wave)[None]  # (1, samples)
    with torch.inference_mode():
        wall, _ = timed(lambda: front(x), args.runs)
    print(f"  of which front end: {wall * 1000:.1f} ms")
    if args.bf16:
        ref = embed(model, front, wave)["taggram"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            wall, cpu = timed(lambda: embed(model, front, wave), args.runs)
            err = (embed(model, front, wave)["taggram"].float() - ref).abs().max()
        print(f"  bf16 autocast: {wall * 1000:.0f} ms wall, {cpu * 1000:.0f} ms CPU, taggram max abs diff {err:.1e}")

    clips = dataset_clips(SHARED / "gtzan_mini")[: args.clips]
    t0 = time.perf_counter()
    for clip in clips:
        embed(model, front, load_audio(clip.path, FRONTEND.sample_rate))
    elapsed = time.perf_counter() - t0
    print(f"embedding loop with file loading: {len(clips)} clips in {elapsed:.1f} s = "
          f"{len(clips) / elapsed:.2f} clips/s")


if __name__ == "__main__":
    main()
