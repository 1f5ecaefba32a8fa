"""What `genre-cnn tag` costs over prediction alone, per file, with the library's worker processes.

    .venv/bin/python benchmarks/tag_speed.py [--ckpt CKPT] [--files 24] [--workers 2] [--repeats 3]

Makes --files real 30-s clips of ../shared/gtzan_mini in mp3, flac, ogg and m4a (ffmpeg, a quarter each) with
title/artist tags and, for mp3/flac/m4a, a cover picture. Then, alternately --repeats times each, on fresh
copies: (a) `Predictor.predict_many` (genre_cnn.inference.session) over the files (prediction alone), (b)
`genre_cnn.app.tag.tag_files` over the same files (prediction, reading each file's genre, the undo log, the safe
write and the report), both with the model that `genre-cnn tag` uses (ONNX Runtime when it exports) and the same
workers. Prints the median seconds of each and the extra cost of tagging per file; the target is at most 20 ms a
file. On a busy machine that difference drowns in the noise of prediction, so the tagging work alone (reading the
file's genre, the fsynced undo entry, the copy + save + read-back check (tags, stream information, audio bytes) + fsync
+ rename) is also timed file by file, in this process.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's genre_cnn, whatever is installed
MINI = REPO.parent / "shared" / "gtzan_mini" / "genres"
FORMATS = ("mp3", "flac", "ogg", "m4a")


def make_files(folder: Path, n: int) -> list[Path]:
    cover = folder / "cover.png"
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", "color=red:s=64x64", "-frames:v", "1",
                    str(cover)], check=True)
    clips = sorted(MINI.glob("*/*.wav"))[:: max(1, 100 // n)][:n]
    files = []
    for i, clip in enumerate(clips):
        fmt = FORMATS[i % len(FORMATS)]
        out = folder / f"{clip.stem}.{fmt}"
        art = ["-i", str(cover), "-map", "0:a", "-map", "1", "-c:v", "copy", "-disposition:v", "attached_pic"] \
            if fmt != "ogg" else []
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", str(clip), *art, "-metadata", f"title={clip.stem}",
                        "-metadata", "artist=Someone", str(out)], check=True)
        files.append(out)
    return files


def fresh(files: list[Path], folder: Path) -> list[Path]:
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir()
    return [Path(shutil.copy(f, folder / f.name)) for f in files]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", type=Path, help="a checkpoint (default: the model genre-cnn tag uses)")
    parser.add_argument("--files", type=int, default=24)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None or not MINI.is_dir():
        sys.exit("needs ffmpeg and ../shared/gtzan_mini")

    from genre_cnn.app.tag import tag_files
    from genre_cnn.app.tagfile import read_genre, write_genres
    from genre_cnn.app.tagundo import append_entry
    from genre_cnn.inference.session import Predictor

    predictor = Predictor.open(args.ckpt)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "made").mkdir()
        files = make_files(tmp / "made", args.files)
        times = {"predict": [], "tag": []}
        for r in range(args.repeats):
            work = fresh(files, tmp / "work")
            start = time.perf_counter()
            assert all(res for _, res, _ in predictor.predict_many(work, 1, None, args.workers))
            times["predict"].append(time.perf_counter() - start)
            work = fresh(files, tmp / "work")
            start = time.perf_counter()
            with contextlib.redirect_stderr(io.StringIO()):
                summary = tag_files(predictor, work, workers=args.workers, progress=False, log_stem=tmp / f"log{r}")
            times["tag"].append(time.perf_counter() - start)
            assert summary["tagged"] == len(files), summary
        alone = []
        for path in fresh(files, tmp / "work"):
            start = time.perf_counter()
            current = read_genre(path)
            append_entry(tmp / "alone.undo.jsonl", {"file": str(path), "previous": current.values, "written": ["Jazz"]})
            write_genres(path, ["Jazz"], expect=current)
            alone.append(time.perf_counter() - start)
    predict, tag = statistics.median(times["predict"]), statistics.median(times["tag"])
    print(f"model: {predictor.description}")
    print(f"{len(files)} files (30 s each, {', '.join(FORMATS)}), {args.workers} workers, median of {args.repeats}")
    print(f"prediction alone: {predict:.2f} s ({1000 * predict / len(files):.0f} ms a file); runs "
          + " ".join(f"{t:.2f}" for t in times["predict"]))
    print(f"genre-cnn tag:    {tag:.2f} s ({1000 * tag / len(files):.0f} ms a file); runs "
          + " ".join(f"{t:.2f}" for t in times["tag"]))
    print(f"tagging costs {1000 * (tag - predict) / len(files):+.1f} ms a file over prediction (target: <= 20 ms)")
    print(f"the tagging work alone, file by file: median {1000 * statistics.median(alone):.1f} ms, "
          f"max {1000 * max(alone):.1f} ms")


if __name__ == "__main__":
    main()
