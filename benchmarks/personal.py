"""A personal model of a library of real recordings: how long it takes, cold, warm and after changes, and what it
learns (per-genre recall on held-out artists, beside the ready model's on the same files).

    flock /work/cpu.lock .venv/bin/python benchmarks/personal.py --work /tmp/genre_cnn_library
    # or in parts, each under the lock: --steps build, then --steps cold, then --steps warm,changed

The library is built by benchmarks/library_corpus.py (real recordings, tagged at run time; nothing committed). With
an empty project home (`GENRE_CNN_HOME=WORK/home`), in fresh processes:
1. cold: the library read (tags, audio digests) and every track's musicnn embedding computed; then
   `python train.py --config configs/library.yaml --data.source.data_dir LIBRARY --data.source.mapping MAPPING`
   in full (cross-fitting over five folds of artists, then the model kept);
2. warm: the same again, nothing changed;
3. changed: 20 files moved to another folder, 20 retagged (their title, and their genre's spelling), and the four
   untagged Country files given their genre (a genre appears: 10 tracks); then the same again.
For each: the data step (reading the library, the cache, the split) timed on its own, then train.py end to end, and
how many embeddings the cache holds (a moved or retagged file must not add one). Then the cold run's report: each
genre's recall on held-out artists and the ready model's on the same files. `uptime` is printed beside the timings.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

PREPARE = """
import sys, time
start = time.time()
from genre_cnn.data.sources.library import Library
from genre_cnn.data.splits import Split
from genre_cnn.training.datamodule import GenreDataModule
dm = GenreDataModule(Library(sys.argv[1], mapping=sys.argv[2]), split=Split(kind="groups"), family="musicnn")
dm.prepare_data()
split = dm.make_split()
print(f"PREPARED {time.time() - start:.2f} {len(dm.source.clips())} {len(dm.genres)}")
"""


def uptime() -> str:
    return open("/proc/loadavg").read().split()[0]


def entries(home: Path) -> int:
    return sum(1 for _ in (home / "data" / "cache").glob("library-*/content/*.npz"))


def step(name: str, root: Path, work: Path, env: dict) -> dict:
    """The data step alone, then train.py in full, each in a fresh process; their times and the cache's size."""
    for old in ("runs", "checkpoints"):  # a step run again starts afresh
        shutil.rmtree(Path(env["GENRE_CNN_HOME"]) / old / name, ignore_errors=True)
    load = uptime()
    out = subprocess.run([sys.executable, "-c", PREPARE, str(root), str(work / "mapping.txt")], env=env,
                         capture_output=True, text=True, cwd=REPO)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("PREPARED")), None)
    if line is None:
        sys.exit(out.stderr[-3000:])
    seconds, tracks, genres = line.split()[1:]
    start = time.time()
    run = subprocess.run([sys.executable, str(REPO / "train.py"), "--config", str(REPO / "configs" / "library.yaml"),
                          "--data.source.data_dir", str(root), "--data.source.mapping", str(work / "mapping.txt"),
                          "--run_name", name, "--trainer.enable_progress_bar", "false"], env=env, capture_output=True,
                         text=True, cwd=REPO)
    total = time.time() - start
    if run.returncode:
        sys.exit(run.stderr[-3000:])
    fits = re.findall(r"cross-fit musicnn: done in (\d+) s", run.stderr + run.stdout)
    return {"step": name, "data_s": float(seconds), "train_py_s": round(total, 1), "fits_s": fits[0] if fits else "?",
            "tracks": int(tracks), "genres": int(genres), "embeddings": entries(Path(env["GENRE_CNN_HOME"])),
            "load": f"{load} -> {uptime()}"}


def change(root: Path, work: Path) -> None:
    """Moves 20 files, retags 20 others (title and genre spelling), tags the untagged Country files."""
    from library_corpus import tag
    from mutagen import File

    manifest = json.loads((work / "manifest.json").read_text())
    files = [root / m["file"] for m in manifest]
    for path in files[5::15][:20]:
        dest = root / "Moved" / path.relative_to(root)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(path, dest)
    for path in [p for p in files[11::13] if p.exists()][:20]:
        audio = File(path, easy=path.suffix in (".mp3", ".m4a"))
        genre = (audio.get("genre") or [""])[0]
        audio["title"] = ["Retagged"]
        if genre:
            audio["genre"] = [genre.upper()]
        audio.save(**({"v2_version": 3} if path.suffix == ".mp3" else {}))
    for m in manifest:
        path = root / m["file"]
        if m["truth"] == "country" and path.exists() and not (File(path, easy=path.suffix in (".mp3", ".m4a"))
                                                              or {}).get("genre"):
            tag(path, ["Country"], m["artist"], "Country Album", path.stem)


def table(rows: list[dict], home: Path) -> None:
    """Prints the timings and, once the cold run is done, its report's figures."""
    print("\n| step | tracks | genres | data step (s) | train.py end to end (s) | cross-fit and kept model (s) | "
          "embeddings cached | load |\n|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['step']} | {r['tracks']} | {r['genres']} | {r['data_s']:.1f} | {r['train_py_s']:.0f} | "
              f"{r['fits_s']} | {r['embeddings']} | {r['load']} |")
    summary = home / "runs" / "cold" / "library.json"
    if not summary.is_file():
        return
    report = json.loads(summary.read_text())
    print("\n| genre | tracks | artists | recall on held-out artists | the ready model, same files |\n"
          "|---|---|---|---|---|")
    for genre, f in report["genres"].items():
        ready = "-" if f["ready_recall"] is None else f"{f['ready_recall']:.0%}"
        print(f"| {genre} | {f['tracks']} | {f['artists']} | {f['recall']:.0%} | {ready} |"
              + (f" {f['verdict']}" if f["verdict"] else ""))
    print("\ndropped:", report["dropped"], "\nnotes:", report["notes"])
    print(f"\nreport: {home / 'runs' / 'cold' / 'report.md'}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/genre_cnn_library"))
    parser.add_argument("--steps", default="build,cold,warm,changed",
                        help="which steps to run, in order (e.g. `build` in one call, `cold` in the next); each "
                             "step's figures are kept in WORK/rows.json and the table printed after each call")
    args = parser.parse_args()
    from library_corpus import build

    work, steps = args.work, args.steps.split(",")
    home, rows_file, root = work / "home", work / "rows.json", work / "library"
    env = {**os.environ, "GENRE_CNN_HOME": str(home)}
    if "build" in steps:
        for stale in (root, home, work / "raw"):
            shutil.rmtree(stale, ignore_errors=True)
        for stale in ("manifest.json", "rows.json"):
            (work / stale).unlink(missing_ok=True)
        start = time.time()
        root = build(work)
        print(f"library built in {time.time() - start:.0f} s: {root}")
    if not (work / "manifest.json").is_file():
        sys.exit(f"no library in {work}: run --steps build first")
    rows = json.loads(rows_file.read_text()) if rows_file.is_file() else []
    for name in [s for s in steps if s in ("cold", "warm", "changed")]:
        if name == "changed":
            change(root, work)
        rows = [r for r in rows if r["step"] != name] + [step(name, root, work, env)]
        rows_file.write_text(json.dumps(rows, indent=1))
    table(rows, home)


if __name__ == "__main__":
    main()
