"""What a training run needs around the training itself: its options parsed and checked in one line, its
folder and lock, and checkpoint writes that survive a full disk or kill -9.

    from genre_cnn.training.runs import OptionParser, lock_run, new_run   # used by train.py; no CLI of its own

`OptionParser` is jsonargparse's parser with one-line errors (a typo names the closest option); `check_run_options`
holds the run's own options to RUN_RANGES; `new_run` creates a run folder exclusively and `lock_run` locks it
(fcntl, released even by kill -9), so two train.py never write into one run; `atomic_checkpoint_io` writes
checkpoints atomically and turns a failed write into one RunError line (the one checkpoint writer);
`sweep_partial_checkpoints` removes what a killed write left; `upgrade_config` reads a run saved by an earlier
version in today's options; `ship` copies a model with its ONNX graph beside it (the ready model).
"""

from __future__ import annotations

import codecs
import difflib
import fcntl
import itertools
import os
import re
import sys
import time
from pathlib import Path
from typing import NoReturn

from jsonargparse import ArgumentParser, Namespace

from genre_cnn.bounds import out_of
from genre_cnn.errors import GenreCnnError, SettingsError

# run options -> (low, high), inclusive; a model's own options are held to its family's bounds, the data's by the
# data classes themselves. 10000 epochs at most: the learning rate warms up over a tenth of all steps, so a huge
# max_epochs would never leave the warm-up.
RUN_RANGES = {"seed": (0, 2**32 - 1), "patience": (0, 10000),
              "trainer.max_epochs": (1, 10000), "trainer.min_epochs": (0, 10000), "trainer.max_steps": (-1, 10**7),
              "trainer.accumulate_grad_batches": (1, 10000), "trainer.check_val_every_n_epoch": (1, 10000),
              "trainer.log_every_n_steps": (1, 10**6)}


class RunError(GenreCnnError):
    """A run that cannot start or go on as asked (its name is taken, it is in use, the disk is full); the
    message says what to do."""


class OptionParser(ArgumentParser):
    """jsonargparse's parser, but a mistyped option or a value of the wrong type is one line (exit code 2)
    naming the option, and the closest known option for a typo, instead of the whole usage."""

    given: list[str] = []  # the arguments last parsed (by any such parser: jsonargparse parses a class's apart)
    hints: list[str] = []  # options of the classes an option may name (--data.source.subset), for "did you mean"

    def parse_args(self, args=None, *rest, **kwargs):
        OptionParser.given = list(sys.argv[1:] if args is None else args)  # to name the options of a class given
        return super().parse_args(config_texts(OptionParser.given), *rest, **kwargs)

    def error(self, message: str, ex: Exception | None = None) -> NoReturn:
        print(f"error: {self.one_line(message)}", file=sys.stderr)
        raise SystemExit(2)

    def _spelled(self, name: str) -> str:
        """The option the command line spelled for `name`, an argument of a class given by class path (jsonargparse
        names it alone): e.g. "--data.source.subset" for "subset"."""
        return next((a.split("=")[0] for a in OptionParser.given if a.split("=")[0].endswith(f".{name}")
                     and a.startswith("--")), name)

    def one_line(self, message: str) -> str:
        lines = [line.strip() for line in message.strip().splitlines() if line.strip()] or ["invalid arguments"]
        refused = re.match(r"Option '(\w+)' is not accepted", lines[0])
        if refused:
            return f"unknown option {self._spelled(refused.group(1))}: not an option of the class it is given to"
        unknown = re.match(r"unrecognized arguments: (\S+)", lines[0], re.IGNORECASE)
        if unknown:
            word = unknown.group(1).split("=")[0]
            known = [o for action in self._actions for o in action.option_strings if o.startswith("--")] + self.hints
            close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
            hint = f": did you mean {close[0]}?" if close else f"; see {self.prog} --help"
            return f"unknown option {word}{hint}"
        key = re.match(r'Parser key "([^"]+)":?\s*(.*)', lines[0])
        if key:
            detail = key.group(2) or (lines[1] if len(lines) > 1 else "invalid value")
            if "dot import path" in detail and key.group(1) == "data.source":
                from genre_cnn.data.sources import kinds

                return (f"--data.source: no dataset kind {lines[-1].split(':')[-1].strip()[:60]} (known: "
                        f"{', '.join(kinds())}, or a class path)")
            if "Union subtypes" in detail:
                detail = "expected " + " or ".join(re.findall(r"Expected a <class '(\w+)'>", message))
            detail = re.sub(r"Expected a <class '(\w+)'>", r"expected \1", detail.split(". Got value")[0])
            given = re.findall(r"(?:Given|Got) value:\s*(.+)", message)
            name = key.group(1) if "." in key.group(1) else self._spelled(key.group(1)).removeprefix("--")
            return f"--{name}: {detail[:160]}" + (f", got {given[-1][:60]}" if given else "")
        return " ".join(lines)[:300]


BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"), (codecs.BOM_UTF8, "utf-8-sig"))  # UTF-32 first: its LE mark starts as UTF-16's


def config_texts(args: list[str]) -> list[str]:
    """`args` with each `--config FILE` that is not plain UTF-8 replaced by its text: a file whose byte-order mark
    says UTF-8, UTF-16 or UTF-32 (Windows' Notepad and PowerShell's `>` write UTF-16) is read in that encoding; a
    file that is none of these is a SettingsError saying how to fix it. Other arguments are kept as they are."""
    out = list(args)
    for i, arg in enumerate(out):
        name, given, value = arg.partition("=")
        if name != "--config" or not (given or i + 1 < len(out)):
            continue
        at = i if given else i + 1
        path = Path(value if given else out[at])
        try:
            data = path.read_bytes() if path.is_file() else None
        except OSError as err:
            raise SettingsError(f"--config {path}: cannot be read ({err.strerror})") from None
        if data is None:
            continue  # jsonargparse says it is missing, or takes it as YAML text
        encoding = next((enc for bom, enc in BOMS if data.startswith(bom)), None)
        try:
            text = data.decode(encoding or "utf-8")
        except UnicodeDecodeError as err:
            raise SettingsError(f"--config {path}: not UTF-8 text (byte 0x{data[err.start]:02x} at offset "
                                f"{err.start}): save it as UTF-8 (e.g. in Notepad: Save as, Encoding UTF-8)") from None
        if encoding is not None:
            out[at] = f"--config={text}" if given else text
    return out


def check_run_options(cfg: Namespace) -> None:
    """Raises SettingsError, naming the option, for a run option of RUN_RANGES out of its range (-1 is
    max_epochs' "no limit" when max_steps sets the budget)."""
    for option, (low, high) in RUN_RANGES.items():
        value = cfg[option]
        if option == "trainer.max_epochs" and value == -1 and cfg.trainer.max_steps not in (None, -1):
            continue
        why = out_of(value, low, high) if value is not None else None
        if why or (option == "trainer.max_steps" and value == 0):
            raise SettingsError(f"--{option} {why or 'must be -1 (no limit) or at least 1, got 0'}")


# the data options of runs saved before dataset kinds, the features and the split had options of their own
SOURCES = {"gtzan": "genre_cnn.data.sources.gtzan.Gtzan", "folder": "genre_cnn.data.sources.folder.Folder",
           "demo": "genre_cnn.data.sources.demo.Demo", "fma": "genre_cnn.data.sources.fma.Fma"}
MOVED = {"split": ("split", "kind"), "split_lists_dir": ("split", "lists_dir"), "test_fraction": ("split",),
         "val_fraction": ("split",), "num_folds": ("split",), "fold": ("split",), "seed": ("split",),
         "clip_seconds": ("features",), "min_seconds": ("features",), "cache_workers": ("features", "workers"),
         "features_in_memory": ("features", "in_memory")}
SOURCE_OPTIONS = {"data_dir": "data_dir", "download": "download", "demo_clips_per_genre": "clips_per_genre",
                  "fma_subset": "subset"}
KIND_OPTIONS = {"gtzan": {"data_dir", "download"}, "folder": {"data_dir"}, "demo": {"data_dir", "clips_per_genre"},
                "fma": {"data_dir", "download", "subset"}}  # what each kind took of them


def upgrade_config(conf: dict) -> dict:
    """A run's saved config in today's options: the flat data options of earlier versions (`dataset`, `data_dir`,
    `split`, `clip_seconds`, ...) become `data.source`, `data.split.*` and `data.features.*`; the rest is kept."""
    data = dict(conf.get("data") or {})
    if "source" in data or not ({"dataset"} | set(MOVED) | set(SOURCE_OPTIONS)) & set(data):
        return conf
    kind = data.pop("dataset", "gtzan")
    init = {new: data.pop(old) for old, new in SOURCE_OPTIONS.items() if old in data}
    init = {k: v for k, v in init.items() if k in KIND_OPTIONS[kind] and v is not None}
    if kind == "demo":
        init["seconds"] = data.get("clip_seconds", 30.0)  # the demo's clips were made as long as the clips
        init["sample_rate"] = (conf.get("frontend") or {}).get("sample_rate", 22050)
    upgraded = {"source": {"class_path": SOURCES[kind], "init_args": init}}
    for old, (group, *new) in MOVED.items():
        if old in data:
            upgraded.setdefault(group, {})[new[0] if new else old] = data.pop(old)
    return {**conf, "data": {**data, **upgraded}}


def new_run(runs: Path, name: str | None) -> str:
    """Creates runs/<name> exclusively and returns the name: by default the date and time, with a suffix
    (-2, -3, ...) if another run started in the same second. An existing name is refused, not reused."""
    runs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
    for n in itertools.count(1):
        candidate = name or (stamp if n == 1 else f"{stamp}-{n}")
        try:
            (runs / candidate).mkdir()
            return candidate
        except FileExistsError:
            if name:
                raise RunError(f"run {name!r} already exists in {runs}: continue it with `--resume true "
                               f"--run_name {name}`, or pick another --run_name") from None
    raise AssertionError("unreachable")


def lock_run(run_dir: Path):
    """Takes the run's lock (an fcntl lock on runs/<run>/.lock, released when this process ends, even by
    kill -9) and returns its open file; RunError if another train.py holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = (run_dir / ".lock").open("a+")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        holder = lock.read().strip()[:20]
        lock.close()
        raise RunError(f"run {run_dir.name!r} is in use by another train.py{f' (pid {holder})' if holder else ''}: "
                       "wait for it to end, or pick another --run_name") from None
    lock.seek(0)
    lock.truncate()
    lock.write(str(os.getpid()))
    lock.flush()
    return lock


def atomic_checkpoint_io():
    """Lightning's checkpoint writer, but through `genre_cnn.paths.atomic_write`, so that a run killed while
    saving never leaves a truncated `last.ckpt` to resume from; a write that fails (a full disk) is one RunError
    line naming the file, and leaves no temporary file."""
    import torch
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    from genre_cnn.paths import atomic_write

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            try:
                atomic_write(Path(path), lambda f: torch.save(checkpoint, f))
            except (OSError, RuntimeError) as err:  # torch's zip writer reports ENOSPC as a RuntimeError
                raise RunError(f"cannot write the checkpoint {path}: {write_failure(err)}; free some space and "
                               "continue with --resume true") from None

    return AtomicCheckpointIO()


def write_failure(err: BaseException) -> str:
    """The reason of a failed write in words: the OSError found in the exception's chain, else its first line."""
    seen: BaseException | None = err
    while seen is not None:
        if isinstance(seen, OSError) and seen.strerror:
            return seen.strerror
        seen = seen.__cause__ or seen.__context__
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:160]


def sweep_partial_checkpoints(folder: Path) -> list[Path]:
    """Removes the temporary files of interrupted atomic writes (".NAME.XXXX.tmp": a checkpoint, a result) that a
    run killed while writing left in `folder` and its sub-folders, and returns them. Only while no other process
    writes there (the run's lock)."""
    stale = sorted(p for p in folder.glob("**/.*.tmp") if p.is_file())
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def ship(checkpoint: Path, dest: Path) -> Path:
    """Copies `checkpoint` to `dest` (atomically) and exports its ONNX graphs beside it
    (genre_cnn.inference.onnx_predict.shipped_onnx_path), removing the graphs of earlier copies: how the ready model
    in genre_cnn/ready/ is made, so that the first `genre-cnn predict` after set-up exports nothing."""
    import contextlib
    import io

    from genre_cnn.inference.export import exportable
    from genre_cnn.inference.onnx_predict import answer_path, export_graphs, shipped_onnx_path
    from genre_cnn.inference.predict import load_model
    from genre_cnn.paths import atomic_write
    from genre_cnn.training.report import say

    atomic_write(dest, lambda f: f.write(checkpoint.read_bytes()))
    say(f"ship: {dest} ({dest.stat().st_size / 1e6:.2f} MB)")
    model = load_model(dest)
    graph = shipped_onnx_path(dest)
    for old in dest.parent.glob(f"{dest.stem}.*.onnx"):
        if old not in (graph, answer_path(graph)):
            old.unlink()
    if exportable(model):
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines
            export_graphs(model, graph)
        say(f"ship: {graph} ({graph.stat().st_size / 1e6:.1f} MB), its ONNX graph")
    return dest
