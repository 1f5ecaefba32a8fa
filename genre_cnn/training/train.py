"""Train the model families (CNN, dense baseline, musicnn transfer), test each on the held-out tracks, report.

    python train.py                                   # all three on GTZAN (downloaded if missing)
    python train.py --config configs/demo.yaml        # synthetic demo clips, no download
    python train.py --models [cnn]                    # one model
    python train.py --data.data_dir ~/gtzan           # your own copy of GTZAN
    python train.py --data.data_dir ~/music --data.dataset folder   # any folder per genre: its genres
    python train.py --data.dataset fma --data.data_dir ~/fma        # FMA (fma_small), its own split
    python train.py --resume true --run_name NAME     # finish an interrupted run from its last checkpoints
    python train.py --help                            # every option, with its default
    tensorboard --logdir runs                         # the curves

Defaults live in the typed `__init__` signatures of FrontEndConfig (`--frontend`), GenreDataModule (`--data`),
LitCNN (`--cnn`), LitDense (`--dense`) and LitMusicnn (`--musicnn`); YAML files under configs/ state only
overrides. Each model family gets a DataModule of its own that serves the inputs the family declares, with the
same front end and split; genre_cnn.training.fitting fits, calibrates, refits and tests each.
Writes runs/<run>/{config.yaml, report.md, report.json, confusion_*.png, <model>/ TensorBoard logs} and
checkpoints/<run>/<model>/{best,last}.ckpt.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile, ArgumentParser, DefaultHelpFormatter, Namespace

from genre_cnn.audio.frontend import FrontEndConfig
from genre_cnn.errors import SettingsError, run_command
from genre_cnn.models import families
from genre_cnn.paths import atomic_write_text, home
from genre_cnn.training.datamodule import GenreDataModule
from genre_cnn.training.fitting import make_trainer, train_one, wants_gpu
from genre_cnn.training.report import say
from genre_cnn.training.runs import (
    OptionParser,
    RunError,
    check_run_options,
    lock_run,
    new_run,
    sweep_partial_checkpoints,
)

log = logging.getLogger("genre_cnn")

RUN_ENV = "GENRE_CNN_RUN"  # the run name, for DDP's extra processes only while a run trains



def models() -> dict:
    """The `--models` names (genre_cnn.models.families), each also the option group of the LightningModule that trains
    that family (e.g. --musicnn.embedding tags): name -> LightningModule class."""
    return {name: family.lit() for name, family in families.all().items()}


class _Help(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """--help with the defaults, and the docstring's examples one per line as written."""


def build_parser() -> ArgumentParser:
    from lightning import Trainer

    parser = OptionParser(prog="train.py", description=__doc__, default_env=False, formatter_class=_Help)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of overrides, e.g. configs/demo.yaml")
    lits = models()
    parser.add_argument("--models", type=list[Literal[tuple(lits)]], default=list(lits),
                        help="the model families to train and compare (genre_cnn.models.families)")
    parser.add_argument("--run_name", type=str | None, default=None, help="default: the date and time")
    parser.add_argument("--resume", type=bool, default=False,
                        help="continue run_name (default: the latest run) from its last checkpoints")
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, batches and augmentation")
    parser.add_argument("--patience", type=int, default=20, help="early stopping: epochs without better val/acc")
    parser.add_argument("--refit", type=bool, default=False,
                        help="after the validated run, retrain on train + val for as many epochs and test that model")
    parser.add_argument("--output_root", type=Path | None, default=None,
                        help="where runs/ and checkpoints/ go (default: genre_cnn.paths.home())")
    parser.add_class_arguments(FrontEndConfig, "frontend", instantiate=False)
    parser.add_class_arguments(GenreDataModule, "data", instantiate=False, skip={"frontend", "family", "fit_on"})
    for name, cls in lits.items():
        parser.add_class_arguments(cls, name, instantiate=False, skip={"genres", "frontend"})
        for key in ("window_seconds", "clip_seconds"):  # the input length a family is built for is the data's
            if key in inspect.signature(cls.__init__).parameters:
                parser.link_arguments(f"data.{key}", f"{name}.{key}")
    parser.add_class_arguments(Trainer, "trainer", instantiate=False, skip={
        "callbacks", "logger", "default_root_dir", "enable_checkpointing", "plugins"})
    # the phase lines give the parameter count: no per-model summary table
    parser.set_defaults({"trainer.max_epochs": 60, "trainer.log_every_n_steps": 10,
                         "trainer.enable_model_summary": False})
    return parser


def _added_since(saved: Path) -> list[str]:
    """The settings a run's saved config.yaml predates (each family's `legacy`), as arguments giving the values
    that run was trained with, so that --resume rebuilds its models."""
    import yaml

    conf = yaml.safe_load(saved.read_text()) or {}
    return [arg for name, family in families.all().items() for key, value in family.legacy.items()
            if key not in (conf.get(name) or {}) for arg in (f"--{name}.{key}", str(value))]


def _latest_run(checkpoints: Path) -> str:
    runs = sorted((p for p in checkpoints.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RunError(f"--resume: no run in {checkpoints} to resume")
    return runs[-1].name


def check_settings(cfg: Namespace) -> FrontEndConfig:
    """Raises SettingsError, naming the option, for any run, data, front-end, model or trainer setting out of its
    range, before anything is written; returns the front end's settings. Each model family is held to the ranges
    its checkpoints are held to when loaded (genre_cnn.bounds), weight count included."""
    check_run_options(cfg)
    frontend = FrontEndConfig(**vars(cfg.frontend))
    for name, model in models().items():
        model.check_settings({**vars(cfg[name]), "frontend": frontend})
    _check_trainer(cfg)
    return frontend


def _check_trainer(cfg: Namespace) -> None:
    """Builds the run's Trainer once and drops it (nothing is written), so that a `--trainer` option Lightning
    refuses (e.g. `--trainer.devices 0`, `--trainer.precision 7`) is one SettingsError line before any work."""
    import tempfile

    chatter = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # "GPU available: ..." comes again later
    level = chatter.level
    chatter.setLevel(logging.WARNING)
    try:
        make_trainer(cfg, Path(tempfile.gettempdir()), "check", [])
    except Exception as err:  # noqa: BLE001 - Lightning's refusals are of several types
        reason = (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
        raise SettingsError(f"--trainer options: {reason}") from None
    finally:
        chatter.setLevel(level)


def launched_outside() -> bool:
    """Whether a launcher such as torchrun or SLURM's srun started this process as one of several (rather than
    Lightning, which starts DDP's extra processes from rank 0 and passes them the run's name)."""
    return RUN_ENV not in os.environ and int(os.environ.get("WORLD_SIZE") or os.environ.get("SLURM_NTASKS") or 1) > 1


def main(args: list[str] | None = None) -> dict[str, dict]:
    """Parses `args` (default: the command line), trains and tests, and returns each model's results."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from genre_cnn.training.report import setup_console

    setup_console()
    parser = build_parser()
    args = sys.argv[1:] if args is None else list(args)
    cfg = parser.parse_args(args)
    root = cfg.output_root or home()
    if cfg.resume:  # the run's own saved config first, then what this command line changes
        run_name = cfg.run_name or _latest_run(root / "checkpoints")
        if not any((root / folder / run_name).is_dir() for folder in ("runs", "checkpoints")):
            raise RunError(f"--resume: no run {run_name!r} in {root / 'runs'} to resume; start it without --resume")
        saved = root / "runs" / run_name / "config.yaml"
        if saved.is_file():
            cfg = parser.parse_args([*_added_since(saved), "--config", str(saved), *args, "--run_name", run_name])
        cfg.run_name = run_name
    # settings, data, features and split first: a run that cannot start leaves no run folder behind
    frontend = check_settings(cfg)
    if launched_outside() and not cfg.run_name:
        raise SettingsError("started as one of several processes (torchrun, SLURM): give --run_name NAME, the same "
                            "in every process, so that they join one run")
    with contextlib.ExitStack() as held:  # the run's lock, from here to the end (rank 0 only)
        if cfg.resume and rank_zero_only.rank == 0:  # before any work: a second train.py on the run stops here
            held.enter_context(lock_run(root / "runs" / cfg.run_name))
        return _start(parser, cfg, root, frontend, held)


def _start(parser: ArgumentParser, cfg: Namespace, root: Path, frontend: FrontEndConfig,
           held: contextlib.ExitStack) -> dict[str, dict]:
    """main() once the settings are checked: data, the run folder (locked in `held`), then train_all."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    data = GenreDataModule(**vars(cfg.data), frontend=frontend, family=cfg.models[0])
    start = time.time()
    data.prepare_data()
    split = data.make_split()
    say(f"features: {sum(map(len, split.values()))} clips of {len(data.genres)} genres ready in "
        f"{time.time() - start:.0f} s ({data.cache_dir}); {data.split_kind} split by track: "
        + ", ".join(f"{p} {len(k)}" for p, k in split.items()))
    if rank_zero_only.rank != 0:  # DDP's extra processes re-run this command (or torchrun started them all)
        cfg.run_name = os.environ.get(RUN_ENV) or cfg.run_name  # they join rank 0's run
    elif not cfg.resume:
        cfg.run_name = new_run(root / "runs", cfg.run_name)
    run_dir, ckpt_dir = root / "runs" / cfg.run_name, root / "checkpoints" / cfg.run_name
    if rank_zero_only.rank == 0:
        if not cfg.resume:
            held.enter_context(lock_run(run_dir))
        for stale in sweep_partial_checkpoints(ckpt_dir) + sweep_partial_checkpoints(run_dir):  # after kill -9
            log.info("removed %s, a file left half-written by an interrupted run", stale)
    if rank_zero_only.rank == 0 and not (run_dir / "config.yaml").is_file():  # a resume keeps the run's own
        run_dir.mkdir(parents=True, exist_ok=True)
        parser.save(cfg, run_dir / "config.yaml", overwrite=True, skip_check=True)
    gpu = wants_gpu(vars(cfg.trainer))
    say(f"run {cfg.run_name}{' (resumed)' if cfg.resume else ''}: {', '.join(cfg.models)} on {'GPU' if gpu else 'CPU'}")
    previous = os.environ.get(RUN_ENV)
    os.environ[RUN_ENV] = cfg.run_name  # for DDP's processes, started during the fit; removed when done
    try:
        return train_all(cfg, run_dir, ckpt_dir, data)
    finally:
        if rank_zero_only.rank == 0:
            sweep_partial_checkpoints(ckpt_dir)  # a failed write (full disk) removes its own; this is to be sure
        if previous is None:
            os.environ.pop(RUN_ENV, None)
        else:
            os.environ[RUN_ENV] = previous


def train_all(cfg: Namespace, run_dir: Path, ckpt_dir: Path, data: GenreDataModule) -> dict[str, dict]:
    """Trains and tests every model of `cfg.models` on `data` in the run, then writes and prints the report.
    On --resume a model already tested in the run is reused as it is, whatever the command line says."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from genre_cnn.training.report import side_by_side, write_report

    results: dict[str, dict] = {}
    for name in cfg.models:
        done = run_dir / f"result_{name}.json"
        if cfg.resume and done.is_file():
            results[name] = r = json.loads(done.read_text())
            other = (f"; --trainer.max_epochs {cfg.trainer.max_epochs} does not retrain a finished model (start a "
                     "new run for that)" if r.get("max_epochs") not in (None, cfg.trainer.max_epochs) else "")
            say(f"{name}: already trained ({r['epochs']} epochs) and tested in run {cfg.run_name}: reusing its "
                f"result{other}")
            continue
        results[name] = train_one(name, cfg, run_dir, ckpt_dir, data)
        if rank_zero_only.rank == 0:
            atomic_write_text(done, json.dumps(results[name]))
    if rank_zero_only.rank == 0:
        report = write_report(results, run_dir)
        print(f"\n{side_by_side(results)}\n\nreport: {report}\ncheckpoints: {ckpt_dir}\n"
              f"curves: tensorboard --logdir {run_dir.parent}")
    return results


def cli(args: list[str] | None = None) -> None:
    """`python train.py`: like main(), but a problem the user can fix (a bad setting: exit code 2; a dataset,
    download or run problem: 1) is one line, not a traceback, and Ctrl-C is one line and exit code 130."""

    def train() -> int:
        main(args)
        return 0

    sys.exit(run_command(train))


if __name__ == "__main__":
    cli()
