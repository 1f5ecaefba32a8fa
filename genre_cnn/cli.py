"""The `genre-cnn` command: predict, plot, export, serve and train.

    genre-cnn predict song.mp3 album/                  # top-3 genres of each file (folders: every audio file)
    genre-cnn predict *.wav --json                      # JSON list on stdout; --csv for CSV rows
    genre-cnn predict song.mp3 --ckpt checkpoints/RUN/dense/best.ckpt --top-k 5
    genre-cnn plot song.mp3 --out plots/                # plots/song.png: waveform, spectrograms, features
    genre-cnn export --out genre_cnn.onnx               # the CNN with its front end as one ONNX graph
    genre-cnn train --config configs/demo.yaml          # the same as `python train.py ARGS...`
    genre-cnn serve [--ckpt CKPT] [--port 8000]         # a local web page: drop a song (pip install -e .[app])

Without --ckpt the CNN of the most recent run under `<project>/checkpoints/` is used (GENRE_CNN_HOME moves
the project folder). `python -m genre_cnn.cli ...` works without installing the console script.
Exit codes: 0 when at least one file was predicted or plotted, 1 when none could be read, 2 for a missing
or bad checkpoint (one line on stderr, no traceback). Unreadable files are one line each on stderr.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genre-cnn", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="{predict,plot,export,train,serve}")
    ckpt_help = "a checkpoint (default: checkpoints/<latest run>/cnn/best.ckpt of the project)"

    p = sub.add_parser("predict", help="the genres of audio files or folders")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH",
                   help="audio files or folders (searched recursively)")
    p.add_argument("--ckpt", type=Path, help=ckpt_help)
    p.add_argument("--top-k", type=int, default=3, help="genres shown per file (default: 3)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="a JSON list on stdout, one object per file")
    fmt.add_argument("--csv", action="store_true", help="CSV on stdout: file, prediction, a column per genre")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    p = sub.add_parser("plot", help="a PNG per file: waveform, spectrograms, features, genre probabilities")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio files or folders")
    p.add_argument("--ckpt", type=Path, help=ckpt_help)
    p.add_argument("--out", type=Path, default=Path("."),
                   help="folder for the PNGs (default: .): song.png per file; files that share a name get "
                        "song.mp3.png, song.flac.png, and song.wav-2.png for a second song.wav, never overwritten")

    p = sub.add_parser("export", help="the CNN with its front end as one ONNX graph")
    p.add_argument("--ckpt", type=Path, help=ckpt_help)
    p.add_argument("--out", type=Path, help="the .onnx file (default: model.onnx beside the checkpoint)")

    p = sub.add_parser("serve", help="a local web page: drop a song, see its genre (needs .[app])")
    p.add_argument("--ckpt", type=Path, help=ckpt_help)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    p.add_argument("--port", type=int, default=8000, help="(default: 8000)")
    p.add_argument("--max-mb", type=float, default=50.0, help="largest upload in MB (default: 50)")

    sub.add_parser("train", help="train both models: the same as `python train.py ARGS...` (try --help)",
                   add_help=False)
    return parser


def _load(ckpt: Path | None):
    from genre_cnn.predict import latest_checkpoint, load_model

    path = ckpt or latest_checkpoint()
    return path, load_model(path)


def _table(results: list[dict], top_k: int) -> str:
    width = max([len("file")] + [len(r["file"]) for r in results])
    head = "  ".join([f"{'file':<{width}}"] + [f"{f'top-{i + 1}':<20}" for i in range(top_k)])
    rows = [head.rstrip(), "-" * len(head.rstrip())]
    for r in results:
        cells = [f"{t['genre']} {100 * t['probability']:.1f}%" for t in r["top"]]
        rows.append("  ".join([f"{r['file']:<{width}}"] + [f"{c:<20}" for c in cells]).rstrip())
    return "\n".join(rows)


def predict(args: argparse.Namespace) -> int:
    from genre_cnn.predict import predict_files

    ckpt, model = _load(args.ckpt)
    results, errors = predict_files(model, args.paths, top_k=args.top_k, progress=not args.no_progress)
    for line in errors:
        print(line, file=sys.stderr)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    elif args.csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["file", "prediction", *model.genres])
        for r in results:
            probs = (f"{r['probabilities'][g]:.6f}" for g in model.genres)
            writer.writerow([r["file"], r["top"][0]["genre"], *probs])
    elif results:
        print(f"model: {ckpt}\n{_table(results, min(args.top_k, len(model.genres)))}")
    return 0 if results else 1


def plot(args: argparse.Namespace) -> int:
    from genre_cnn.audio import AudioError
    from genre_cnn.plot import plot_file, png_names
    from genre_cnn.predict import expand_paths

    _, model = _load(args.ckpt)
    files, errors = expand_paths(args.paths)
    for line in errors:
        print(line, file=sys.stderr)
    written = 0
    for path, png in zip(files, png_names(files)):
        try:
            print(plot_file(path, args.out / png, model))
            written += 1
        except AudioError as err:
            print(err, file=sys.stderr)
    return 0 if written else 1


def export(args: argparse.Namespace) -> int:
    from genre_cnn.classifiers import WindowClassifier
    from genre_cnn.export import export_onnx
    from genre_cnn.predict import CheckpointError

    ckpt, model = _load(args.ckpt)
    if not isinstance(model, WindowClassifier):
        raise CheckpointError(f"{ckpt}: export needs a CNN checkpoint, this one is {type(model).__name__}")
    print(export_onnx(model, args.out or Path(ckpt).with_name("model.onnx")))
    return 0


def serve(args: argparse.Namespace) -> int:
    try:
        from genre_cnn.serve import run
    except ModuleNotFoundError as err:
        if err.name not in {"starlette", "uvicorn", "anyio"}:
            raise
        print(f"error: genre-cnn serve needs {err.name}: pip install -e .[app]", file=sys.stderr)
        return 1
    ckpt, model = _load(args.ckpt)
    return run(model, ckpt, host=args.host, port=args.port, max_mb=args.max_mb)


def train(args: list[str]) -> int:
    from genre_cnn.audio import DataError
    from genre_cnn.download import DownloadError
    from genre_cnn.frontend import SettingsError
    from genre_cnn.train import RunError
    from genre_cnn.train import main as train_main

    try:
        train_main(args)
    except SettingsError as err:  # a setting out of range: one line naming the option, as train.py says it
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (DataError, DownloadError, RunError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand on `argv` (default: the command line) and returns its exit code."""
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["train"]:  # everything after `train` belongs to train.py's own parser
        return train(argv[1:])
    args = _parser().parse_args(argv)
    from genre_cnn.predict import CheckpointError

    try:
        return {"predict": predict, "plot": plot, "export": export, "serve": serve}[args.command](args)
    except CheckpointError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
