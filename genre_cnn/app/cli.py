"""The `genre-cnn` command: predict, sort, plot, export, serve and train.

    genre-cnn predict song.mp3 album/                  # top-3 genres of each file (folders: every audio file)
    genre-cnn predict *.wav --json                      # JSON list on stdout; --csv for CSV rows
    genre-cnn predict song.mp3 --ckpt checkpoints/RUN/dense/best.ckpt --top-k 5
    genre-cnn predict ~/Music --csv                     # a library: worker processes, long tracks sampled
    genre-cnn predict song.flac --max-windows all       # every 3-s window of the track
    genre-cnn predict s3://bucket/music --ray --out s3://bucket/genres.parquet   # an archive, on Ray (cluster.py)
    genre-cnn sort ~/Music/unsorted ~/Music/by-genre    # links each track into by-genre/<genre>/ (see sort.py)
    genre-cnn tag ~/Music --dry-run                     # the genre each file would get in its own tags (tag.py)
    genre-cnn plot song.mp3 --out plots/                # plots/song.png: waveform, spectrograms, features
    genre-cnn export --out genre_cnn.onnx               # the model with its front end as one ONNX graph
    genre-cnn train --config configs/demo.yaml          # the same as `python train.py ARGS...`
    genre-cnn serve [--ckpt CKPT] [--port 8000]         # a local web page: drop a song (pip install -e .[app])

Default model (without --ckpt): the most recent run under `<home>/checkpoints/` (<home>: GENRE_CNN_HOME,
else the source checkout, else the user's data folder; `python -m genre_cnn.paths` prints it) trained on real
music, its best model in the order musicnn > cnn > dense, refit.ckpt over best.ckpt; with no such run, the
ready model shipped in genre_cnn/ready/. A run on the generated demo clips is never chosen without --ckpt.
`export` takes the most recent such run's CNN or musicnn. Every command opens its model through
genre_cnn.inference.session (`Predictor.open`), and every answer names the model that gave it and why.
A model that knows what it does not know (an open-set detector, genre_cnn.models.openset) also judges each file:
"music", "unfamiliar" (music unlike the genres it learnt) or "not music", with its familiarity (0-1: the share of
its training music at least as atypical); the table shows it in a column and gives a file it does not judge to be
music no genre, `--json` has its `music` object, `--csv` the columns verdict, familiarity, music_probability.
A model whose pipeline is all torch (CNN, musicnn) is exported once to ONNX (cached under <home>/data/onnx/, keyed
by the checkpoint's content; the ready model's graph ships beside it) and run with onnxruntime, without importing
torch. `--engine torch` forces PyTorch.
`python -m genre_cnn.app.cli ...` works without installing the console script.
Exit codes: 0 when at least one file was predicted, sorted or plotted, 1 when none could be read, 2 for a
missing or bad checkpoint or bad usage, 130 on Ctrl-C (one line on stderr, no traceback); a closed output
pipe (`| head -1`) ends quietly. Unreadable files are one line each on stderr, then a count of them; `--json`
also lists each as {"file", "error"}, and `--csv` gives it a row whose `error` column says why.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

from genre_cnn.app.cli_parser import build_parser
from genre_cnn.errors import GenreCnnError, UsageError

VERDICT_COLUMNS = ["verdict", "familiarity", "music_probability"]  # --csv, with a model that has a verdict


def _table(results: list[dict], top_k: int) -> str:
    """The console table: a row per file with its top genres; with a model that knows what it does not know, a
    verdict column too, and "-- no genre" for a file it does not judge to be music."""
    from genre_cnn.audio.decode import shown
    from genre_cnn.inference.session import choose_genres, verdict_text

    names = [shown(r["file"]) for r in results]
    verdicts = [verdict_text(r) or "" for r in results]
    width = max([len("file")] + [len(n) for n in names])
    judged = max(map(len, verdicts)) if any(verdicts) else 0  # 0: no verdict column (a model without a detector)
    lead = [f"{'file':<{width}}"] + ([f"{'verdict':<{judged}}"] if judged else [])
    head = "  ".join(lead + [f"{f'top-{i + 1}':<20}" for i in range(top_k)])
    rows = [head.rstrip(), "-" * len(head.rstrip())]
    for name, said, r in zip(names, verdicts, results, strict=True):
        cells = [f"{t['genre']} {100 * t['probability']:.1f}%" for t in r["top"]]
        if choose_genres(r).reason in ("not music", "unfamiliar"):
            cells = ["-- no genre"]
        lead = [f"{name:<{width}}"] + ([f"{said:<{judged}}"] if judged else [])
        rows.append("  ".join(lead + [f"{c:<20}" for c in cells]).rstrip())
    return "\n".join(rows)


def _csv(rows: list[dict], genres: list[str]) -> None:
    """CSV on stdout: file, prediction, [verdict, familiarity, music_probability,] a column per genre, error. The
    verdict columns come with a model that knows what it does not know; a file it does not judge to be music has
    no prediction."""
    from genre_cnn.audio.decode import shown
    from genre_cnn.inference.session import choose_genres, verdict

    judged = any(verdict(r) for r in rows)
    writer = csv.writer(sys.stdout, lineterminator="\n")
    writer.writerow(["file", "prediction", *(VERDICT_COLUMNS if judged else []), *genres, "error"])
    for r in rows:
        if "error" in r:
            writer.writerow([shown(r["file"]), "", *[""] * (3 * judged + len(genres)), r["error"]])
            continue
        music = verdict(r) or {}
        said = [music.get("verdict", ""), *(f"{music[k]:.6f}" if k in music else "" for k in VERDICT_COLUMNS[1:])]
        top = r["top"][0]["genre"] if choose_genres(r).reason not in ("not music", "unfamiliar") else ""
        writer.writerow([shown(r["file"]), top, *(said if judged else []),
                         *(f"{r['probabilities'][g]:.6f}" for g in genres), ""])


def predict_on_ray(args: argparse.Namespace) -> int:
    """`predict --ray ... --out PARQUET` (genre_cnn.app.cluster)."""
    from genre_cnn.app.cluster import predict_on_ray
    from genre_cnn.inference.session import Predictor

    if args.ray is None or not args.out or args.json or args.csv:
        raise UsageError("--ray writes its results into --out PARQUET (not --json or --csv): give both")
    predictor = Predictor.open(args.ckpt, args.engine)
    summary = predict_on_ray(predictor, args.paths, args.out, args.top_k, args.max_windows, args.workers,
                             args.ray or None, not args.no_progress)
    return 0 if summary["results"] else 1


def predict(args: argparse.Namespace) -> int:
    from genre_cnn.inference.predict import expand_paths
    from genre_cnn.inference.session import Predictor

    if args.ray is not None or args.out:
        return predict_on_ray(args)
    files, errors = expand_paths(args.paths)
    predictor = Predictor.open(args.ckpt, args.engine)
    # every path in the order met: a result, or {"file", "error"} for one that was skipped
    rows: list[dict] = [{"file": e.file, "error": e.reason} for e in errors]
    warnings = []
    for _, res, error in predictor.predict_many(files, args.top_k, args.max_windows, args.workers,
                                                not args.no_progress):
        errors.extend([error] if error else [])
        warnings.extend([f"warning: {res['warning']}"] if res and "warning" in res else [])
        rows.append({**res, "model": predictor.description} if res else {"file": error.file, "error": error.reason})
    results = [r for r in rows if "error" not in r]
    for line in [*errors, *warnings]:
        print(line, file=sys.stderr)
    if errors:
        print(f"{len(errors)} of {len(rows)} file(s) skipped; {len(results)} predicted", file=sys.stderr)
    if args.json:  # file names that are not UTF-8 keep their bytes as \udcXX escapes (os.fsencode undoes them)
        json.dump(rows, sys.stdout, indent=2)
        print()
    elif args.csv:
        print(f"model: {predictor.description}", file=sys.stderr)
        _csv(rows, predictor.genres)
    elif results:
        print(f"model: {predictor.description}\n{_table(results, min(args.top_k, len(predictor.genres)))}")
    return 0 if results else 1


def sort(args: argparse.Namespace) -> int:
    from genre_cnn.app.sort import sort_library
    from genre_cnn.inference.session import Predictor

    predictor = Predictor.open(args.ckpt, args.engine)
    print(f"model: {predictor.description}", file=sys.stderr)
    summary = sort_library(predictor, args.src, args.dest, min_confidence=args.min_confidence, copy=args.copy,
                           symlink=args.symlink, keep_path=args.keep_path, dry_run=args.dry_run,
                           max_windows=args.max_windows, workers=args.workers, progress=not args.no_progress)
    if summary["unplaced"] or summary["stopped"]:
        return 1
    return 0 if summary["sorted"] or summary["already"] else 1


def tag(args: argparse.Namespace) -> int:
    from genre_cnn.app.tag import tag_files
    from genre_cnn.app.tagundo import undo
    from genre_cnn.genres import load_mapping
    from genre_cnn.inference.session import Predictor

    if bool(args.undo) == bool(args.paths):
        raise UsageError("give audio files or folders to tag, or --undo LOG (not both)")
    if args.undo:
        summary = undo(args.undo, force=args.force)
        return 1 if summary["failed"] and not summary["restored"] else 0
    mapping = load_mapping(args.genre_map) if args.genre_map else None
    predictor = Predictor.open(args.ckpt, args.engine)
    summary = tag_files(predictor, args.paths, count=args.count, min_confidence=args.min_confidence,
                        overwrite=args.overwrite, dry_run=args.dry_run, force=args.force, log_stem=args.log,
                        max_windows=args.max_windows, workers=args.workers, progress=not args.no_progress,
                        mapping=mapping)
    trouble = summary["failed"] or summary["linked"]
    return 1 if trouble and not (summary["tagged"] or summary["skipped"]) else 0


def plot(args: argparse.Namespace) -> int:
    from genre_cnn.app.plot import check_out_dir, plot_file, png_names
    from genre_cnn.audio.decode import AudioError
    from genre_cnn.inference.predict import expand_paths
    from genre_cnn.inference.session import Predictor

    check_out_dir(args.out)
    predictor = Predictor.open(args.ckpt, "torch")
    files, errors = expand_paths(args.paths)
    for line in errors:
        print(line, file=sys.stderr)
    written = 0
    for path, png in zip(files, png_names(files)):
        try:
            print(plot_file(path, args.out / png, predictor))
            written += 1
        except AudioError as err:  # this file's one line; the others are plotted
            print(err, file=sys.stderr)
        except OSError as err:  # e.g. a folder where the PNG should go, a full disk
            print(f"{args.out / png}: cannot write ({err.strerror or err})", file=sys.stderr)
    return 0 if written else 1


def export(args: argparse.Namespace) -> int:
    from genre_cnn.inference.export import check_out, export_onnx, input_contract
    from genre_cnn.inference.predict import READY_MODEL, load_model
    from genre_cnn.inference.session import choose_checkpoint
    from genre_cnn.paths import home

    ckpt, why = choose_checkpoint(args.ckpt, exportable=True)
    default = home() / "ready.onnx" if Path(ckpt) == READY_MODEL else Path(ckpt).with_name("model.onnx")
    out = check_out(args.out or default)  # never inside the installed package
    model = load_model(ckpt)
    model.trained_on = f"{model.trained_on}; {why}"
    out = export_onnx(model, out)  # CheckpointError for a family that does not export
    print(f"model: {ckpt} ({type(model).__name__}, {model.trained_on})", file=sys.stderr)
    print(f"input: {input_contract(model)}", file=sys.stderr)
    print(out)
    return 0


def serve(args: argparse.Namespace) -> int:
    from genre_cnn.inference.session import Predictor

    try:
        from genre_cnn.app.serve import run
    except ModuleNotFoundError as err:
        if err.name not in {"starlette", "uvicorn", "anyio"}:
            raise
        raise GenreCnnError(f"genre-cnn serve needs {err.name}: pip install -e .[app]") from None
    return run(Predictor.open(args.ckpt, "torch"), host=args.host, port=args.port, max_mb=args.max_mb)


def train(args: list[str]) -> int:
    from genre_cnn.training.train import main as train_main

    train_main(args)
    return 0


def _dispatch(argv: list[str]) -> int:
    if argv[:1] == ["train"]:  # everything after `train` belongs to train.py's own parser
        return train(argv[1:])
    args = build_parser(__doc__).parse_args(argv)
    return {"predict": predict, "sort": sort, "tag": tag, "plot": plot, "export": export,
            "serve": serve}[args.command](args)


def main(argv: list[str] | None = None) -> int:
    """Runs one subcommand on `argv` (default: the command line) and returns its exit code; a problem the user
    can fix is one line `error: ...` (see genre_cnn.errors.run_command), never a traceback."""
    from genre_cnn.errors import run_command

    return run_command(lambda: _dispatch(sys.argv[1:] if argv is None else list(argv)))


if __name__ == "__main__":
    sys.exit(main())
