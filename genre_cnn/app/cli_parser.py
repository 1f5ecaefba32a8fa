"""The `genre-cnn` command line's options: one argparse parser for every subcommand, and the defaults they share.

    from genre_cnn.app.cli_parser import build_parser, MIN_CONFIDENCE
    args = build_parser().parse_args(["predict", "song.mp3", "--top-k", "5"])   # what genre_cnn.app.cli.main runs on

genre_cnn.app.cli runs the subcommands; this module only says what they accept (and imports nothing heavy), so that
other front ends such as the beets plugin share its defaults.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from genre_cnn.inference.windows import DEFAULT_MAX_WINDOWS


def _positive(text: str) -> int:
    """argparse type: a whole number >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give a whole number of at least 1")
    return value


def _windows(text: str) -> int:
    """argparse type of --max-windows: a whole number >= 0, or "all" (0: every window)."""
    if text.strip().lower() == "all":
        return 0
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is neither a whole number nor 'all'") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} is not allowed: give a number of windows, or 'all'")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a probability between 0 and 1")
    return value


def is_ray_address(text: str) -> bool:
    """Whether `--ray`'s value names a Ray cluster: auto, local, ray://HOST:PORT or HOST:PORT."""
    return text in ("auto", "local") or text.startswith("ray://") or bool(re.fullmatch(r"[\w.-]+:\d+", text))


def _ray_address(text: str) -> str:
    """argparse type of --ray's value ("" for a bare --ray): a Ray cluster's address, else a usage error."""
    if text == "" or is_ray_address(text):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a Ray address (auto, local, HOST:PORT or ray://HOST:PORT); "
                                     "put the paths before --ray, or give its address")


def _library_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--ckpt", type=Path, help=CKPT_HELP)
    p.add_argument("--max-windows", type=_windows, metavar="N|all",
                   help=f"a track of more than N 3-s windows is heard at N windows at most, spread over it and "
                        f"read alone, fewer once more cannot change its top genre (default: {DEFAULT_MAX_WINDOWS}, "
                        "about 1.5 min); 'all' or 0: every window of every track")
    p.add_argument("--workers", type=_positive, metavar="N",
                   help="worker processes (default: one per core for 4 files or more, else 1)")
    p.add_argument("--engine", choices=("auto", "onnx", "torch"), default="auto",
                   help="auto (default): ONNX Runtime when the model exports, else PyTorch")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")


EXPORT_CONTRACT = (
    "Writes the model (a CNN or musicnn checkpoint) with its front end as one ONNX graph. Input `waveform`: "
    "float32, shape (1, samples), mono, values in [-1, 1], at the model's sample rate (22050 Hz for the CNN, "
    "16000 Hz for musicnn; metadata `sample_rate`), at least 4096 samples: decode, mix to mono and resample "
    "the file first. Outputs `probabilities` (1, n_genres), in the order of the JSON list in metadata "
    "`genres`, and `window_probabilities` (K, n_genres). The metadata `input` states the same.")
# the calibrated ready model's answers at >= 0.7 keep 91% of its right answers and leave 11 of 14 wrong ones
# alone on unseen artists (benchmarks/ready_protocol.py, BENCHMARKS.md)
MIN_CONFIDENCE = 0.7
CKPT_HELP = ("a checkpoint file or model folder (default: the latest run trained on real music, its best model, "
             "musicnn > cnn > dense, refit over best; else the ready model in genre_cnn/ready/; runs on generated "
             "demo clips are never the default)")


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The `genre-cnn` parser: every subcommand and option except `train`'s, which train.py parses itself;
    `description` is the text --help shows above the commands (genre_cnn.app.cli passes its docstring)."""
    parser = argparse.ArgumentParser(prog="genre-cnn", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True,
                                metavar="{predict,sort,tag,learn,plot,export,train,serve}")

    p = sub.add_parser("predict", help="the genres of audio files or folders")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders (searched recursively for every "
                   "format the loader decodes); with --ray also URIs that pyarrow reads (s3://..., gs://...)")
    p.add_argument("--top-k", type=_positive, default=3, help="genres shown per file, at least 1 (default: 3)")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true",
                     help='a JSON list on stdout, one object per file; a skipped file is {"file", "error"}')
    fmt.add_argument("--csv", action="store_true",
                     help="CSV on stdout: file, prediction, a column per genre, error (why a file was skipped)")
    p.add_argument("--ray", nargs="?", const="", type=_ray_address, metavar="ADDRESS",
                   help="predict on a Ray cluster (needs .[cluster]), into --out: ADDRESS auto, HOST:PORT or "
                        "ray://HOST:PORT (default: RAY_ADDRESS, else the cluster `ray start` began on this machine, "
                        "else Ray started here); --workers actors (default: one per CPU of the cluster)")
    p.add_argument("--out", metavar="PARQUET", help="with --ray: the results folder (a path or URI), a Parquet part "
                   "at a time, with the fields of --json; a rerun predicts only the files it does not hold")
    _library_options(p)

    p = sub.add_parser("sort", help="link (or copy) each track into DEST/<genre>/, with a manifest CSV")
    p.add_argument("src", type=Path, nargs="+", metavar="SRC", help="audio files or folders to sort")
    p.add_argument("dest", type=Path, metavar="DEST", help="the sorted library (created)")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--copy", action="store_true", help="independent copies: the only choice that lets you edit "
                     "tags in DEST without changing the originals (default: a hard link on the same filesystem, "
                     "which is the original file under a second name, else a symbolic link)")
    how.add_argument("--symlink", action="store_true", help="symbolic links to the originals")
    p.add_argument("--keep-path", action="store_true",
                   help="mirror each track's folders below SRC under its genre: DEST/<genre>/Artist/Album/track")
    p.add_argument("--min-confidence", type=_probability, default=MIN_CONFIDENCE, metavar="P",
                   help=f"tracks whose top genre is below P go to DEST/_unsure/ (default: {MIN_CONFIDENCE})")
    p.add_argument("--dry-run", action="store_true", help="print what would be done, change nothing")
    _library_options(p)

    p = sub.add_parser("tag", help="write the predicted genre into each file's own tags (mutagen), undoable")
    p.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="audio files or folders")
    p.add_argument("--overwrite", action="store_true", help="replace a genre the file already has (default: keep)")
    p.add_argument("--count", type=_positive, default=1, metavar="N",
                   help="write up to N genres, as separate values (default: 1)")
    p.add_argument("--min-confidence", type=_probability, default=MIN_CONFIDENCE, metavar="P",
                   help="write only genres of probability >= P; a file whose top genre is below P is left "
                        f"alone (default: {MIN_CONFIDENCE})")
    p.add_argument("--dry-run", action="store_true", help="print `file: existing -> proposed (probability, "
                   "model)`, change nothing")
    p.add_argument("--force", action="store_true", help="also tag files with several hard links (this name gets "
                   "a new file; the other names keep the old one); with --undo, restore files changed since")
    p.add_argument("--genre-map", type=Path, metavar="FILE", help="your spellings of the genres, one `name: "
                   "spelling` per line (default: the usual ones, Blues, Classical, Country, Disco, Hip-Hop, Jazz, "
                   "Metal, Pop, Reggae, Rock)")
    p.add_argument("--log", type=Path, metavar="STEM", help="write STEM.undo.jsonl and STEM.report.json "
                   "(default: data/tag-logs/<time>-<pid> in the project folder)")
    p.add_argument("--undo", type=Path, nargs="+", metavar="LOG", help="restore the genres that the runs which "
                   "wrote these undo logs (or --log STEMs) replaced, newest run first")
    _library_options(p)

    p = sub.add_parser("learn", help="a model of your own genres, learnt from the music you have already tagged",
                       description="Trains a personal model on the genre tags of your music (python train.py "
                                   "--config configs/library.yaml), with a report of what it learnt; it then "
                                   "answers predict, sort, tag and serve by default.")
    p.add_argument("folders", nargs="+", metavar="FOLDER", help="folders of tagged music (searched recursively)")
    p.add_argument("--genre-map", type=Path, metavar="FILE",
                   help="`name: genre` lines that rename and merge genres (`name: -`: not a genre)")
    p.add_argument("--min-tracks", type=_positive, default=10, metavar="N",
                   help="genres with fewer tracks are left out, one line each (default: 10)")
    p.add_argument("--multi", choices=("first", "drop"), default="first",
                   help="a file naming several genres: take the first (default) or leave it out")

    p = sub.add_parser("plot", help="a PNG per file: waveform, spectrograms, features, genre probabilities",
                       description="A PNG per audio file (at most 15 min long): waveform, spectrograms, "
                                   "features, and the model's genre probabilities.")
    p.add_argument("paths", nargs="+", type=Path, metavar="PATH", help="audio files or folders")
    p.add_argument("--ckpt", type=Path, help=CKPT_HELP)
    p.add_argument("--out", type=Path, default=Path("."),
                   help="folder for the PNGs (default: .): song.png per file; files that share a name get "
                        "song.mp3.png, song.flac.png, and song.wav-2.png for a second song.wav, never overwritten")

    p = sub.add_parser("export", help="a CNN or musicnn model with its front end as one ONNX graph",
                       description=EXPORT_CONTRACT)
    p.add_argument("--ckpt", type=Path, help="a checkpoint (default: the latest run's musicnn or CNN model)")
    p.add_argument("--out", type=Path, help="the .onnx file, new or a regular file to replace (default: "
                   "model.onnx beside the checkpoint; for the ready model, ready.onnx in the folder "
                   "`python -m genre_cnn.paths` prints)")

    p = sub.add_parser("serve", help="a local web page: drop a song, see its genre (needs .[app])")
    p.add_argument("--ckpt", type=Path, help=CKPT_HELP)
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine)")
    p.add_argument("--port", type=int, default=8000, help="(default: 8000)")
    p.add_argument("--max-mb", type=float, default=50.0, help="largest upload in MB (default: 50)")

    sub.add_parser("train", help="train and compare the model families: the same as `python train.py ARGS...` "
                   "(try --help)", add_help=False)
    return parser
