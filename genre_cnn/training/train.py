"""Train the model families (CNN, dense baseline, musicnn transfer), test each on the held-out tracks, report.

    python train.py                                   # all three on GTZAN (downloaded if missing)
    python train.py --config configs/demo.yaml        # synthetic demo clips, no download
    python train.py --models [cnn]                    # one model
    python train.py --data.source.data_dir ~/gtzan    # your own copy of GTZAN
    python train.py --data.source Folder --data.source.data_dir ~/music     # any folder per genre: its genres
    python train.py --data.source Fma --data.source.data_dir ~/fma          # FMA (fma_small), its own split
    python train.py --config configs/ready.yaml       # rebuilds the ready model in genre_cnn/ready/
    python train.py --resume true --run_name NAME     # finish an interrupted run from its last checkpoints
    python train.py --help                            # every option, with its default
    tensorboard --logdir runs                         # the curves

Defaults live in typed `__init__` signatures: FrontEndConfig (`--frontend`), GenreDataModule (`--data`, with the
dataset kind `--data.source`, the feature store `--data.features` and the split `--data.split`), and for each
model family (genre_cnn.models.families) one flat group, `--cnn.*`: its classifier's settings, its augmentation's
and the LightningModule's training settings (genre_cnn.training.lit). YAML files under configs/ state only
overrides. Each model family gets a DataModule of its own that serves the inputs the family declares, with the
same front end and split; genre_cnn.training.fitting fits, calibrates, refits and tests each. `--ship PATH` then
copies the first model's tested checkpoint to PATH with its ONNX graph beside it (how the ready model is made).
Writes runs/<run>/{config.yaml, report.md, report.json, confusion_*.png, <model>/ TensorBoard logs} and
checkpoints/<run>/<model>/{best,last,refit}.ckpt (genre_cnn.paths.Run).
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
from genre_cnn.paths import Run, atomic_write_text, home, resolve
from genre_cnn.training.datamodule import GenreDataModule
from genre_cnn.training.fitting import make_trainer, train_one, wants_gpu
from genre_cnn.training.lit import check_settings as check_family
from genre_cnn.training.lit import legacy_settings, option_sources
from genre_cnn.training.report import say
from genre_cnn.training.runs import (
    OptionParser,
    RunError,
    check_run_options,
    lock_run,
    new_run,
    ship,
    sweep_partial_checkpoints,
    upgrade_config,
)

log = logging.getLogger("genre_cnn")

RUN_ENV = "GENRE_CNN_RUN"  # the run name, for DDP's extra processes only while a run trains



class _Help(argparse.RawDescriptionHelpFormatter, DefaultHelpFormatter):
    """--help with the defaults, and the docstring's examples one per line as written."""


def build_parser() -> ArgumentParser:
    from lightning import Trainer

    from genre_cnn.data.sources import kinds

    parser = OptionParser(prog="train.py", description=__doc__, default_env=False, formatter_class=_Help)
    parser.hints = sorted({f"--data.source.{option}" for kind in kinds().values()  # kinds: --data.source NAME
                           for option in inspect.signature(kind).parameters})
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of overrides, e.g. configs/demo.yaml")
    names = list(families.all())
    parser.add_argument("--models", type=list[Literal[tuple(names)]], default=names,
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
    parser.add_argument("--ship", type=str | None, default=None,
                        help="copy the first model's tested checkpoint here, with its ONNX graph beside it")
    parser.add_class_arguments(FrontEndConfig, "frontend", instantiate=False)
    parser.add_class_arguments(GenreDataModule, "data", instantiate=False, skip={"frontend", "family", "fit_on"})
    for name, family in families.all().items():
        add_family_arguments(parser, name, family)
    parser.add_class_arguments(Trainer, "trainer", instantiate=False, skip={
        "callbacks", "logger", "default_root_dir", "enable_checkpointing", "plugins"})
    # the phase lines give the parameter count: no per-model summary table
    parser.set_defaults({"trainer.max_epochs": 60, "trainer.log_every_n_steps": 10,
                         "trainer.enable_model_summary": False})
    return parser


def add_family_arguments(parser: ArgumentParser, name: str, family) -> None:
    """The family's flat option group `--<name>.*`: its classifier's settings, then its augmentation's and
    GenreModule's (genre_cnn.training.lit.option_sources); the input length it is built for is the data's."""
    sources = option_sources(family)
    for i, cls in enumerate(dict.fromkeys(sources.values())):  # classifier, augmentation, module: in that order
        skip = {k for k in inspect.signature(cls).parameters if sources.get(k) is not cls}
        parser.add_class_arguments(cls, name, instantiate=False, as_group=i == 0, skip=skip)
    for key, data_key in (("window_seconds", "data.window_seconds"), ("clip_seconds", "data.features.clip_seconds")):
        if key in sources:
            parser.link_arguments(data_key, f"{name}.{key}")


def _added_since(saved: dict) -> list[str]:
    """The settings a run's saved config predates (each family's and augmentation's `legacy`), as arguments giving
    the values that run was trained with, so that --resume rebuilds its models."""
    return [arg for name, family in families.all().items() for key, value in legacy_settings(family).items()
            if key not in (saved.get(name) or {}) for arg in (f"--{name}.{key}", str(value))]


def _latest_run(checkpoints: Path) -> str:
    runs = sorted((p for p in checkpoints.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RunError(f"--resume: no run in {checkpoints} to resume")
    return runs[-1].name


def check_settings(parser: ArgumentParser, cfg: Namespace) -> tuple[FrontEndConfig, GenreDataModule]:
    """Raises SettingsError, naming the option, for any run, data, front-end, model or trainer setting out of its
    range, before anything is written; returns the front end's settings and the run's DataModule (nothing read
    yet). Each model family is held to the ranges its checkpoints are held to when loaded, weight count included;
    each data part checks its own options when built."""
    check_run_options(cfg)
    frontend = FrontEndConfig(**vars(cfg.frontend))
    data = GenreDataModule(**vars(parser.instantiate(Namespace(data=cfg.data.clone())).data), frontend=frontend,
                           family=cfg.models[0])  # before the families: the lengths they are linked to are the data's
    for name, family in families.all().items():
        check_family(family, vars(cfg[name]), frontend)
    _check_trainer(cfg)
    return frontend, data


def _check_trainer(cfg: Namespace) -> None:
    """Builds the run's Trainer once and drops it (nothing is written), so that a `--trainer` option Lightning
    refuses (e.g. `--trainer.devices 0`, `--trainer.precision 7`) is one SettingsError line before any work."""
    import tempfile

    chatter = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # "GPU available: ..." comes again later
    level = chatter.level
    chatter.setLevel(logging.WARNING)
    try:
        make_trainer(cfg, Run(Path(tempfile.gettempdir()), "check"), "check", [])
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
        cfg = _resumed(parser, cfg, root, args)
    # settings, data, features and split first: a run that cannot start leaves no run folder behind
    frontend, data = check_settings(parser, cfg)
    if launched_outside() and not cfg.run_name:
        raise SettingsError("started as one of several processes (torchrun, SLURM): give --run_name NAME, the same "
                            "in every process, so that they join one run")
    with contextlib.ExitStack() as held:  # the run's lock, from here to the end (rank 0 only)
        if cfg.resume and rank_zero_only.rank == 0:  # before any work: a second train.py on the run stops here
            held.enter_context(lock_run(Run(root, cfg.run_name).dir))
        return _start(parser, cfg, root, data, held)


def _resumed(parser: ArgumentParser, cfg: Namespace, root: Path, args: list[str]) -> Namespace:
    """The options of the run --resume continues: its saved config.yaml (in today's options, with the values of
    settings it predates), then `args` over it."""
    import tempfile

    import yaml

    run = Run(root, cfg.run_name or _latest_run(root / "checkpoints"))
    if not (run.dir.is_dir() or run.checkpoints.is_dir()):
        raise RunError(f"--resume: no run {run.name!r} in {root / 'runs'} to resume; start it without --resume")
    if run.config.is_file():
        saved = upgrade_config(yaml.safe_load(run.config.read_text()) or {})
        with tempfile.TemporaryDirectory() as folder:
            config = Path(folder) / "config.yaml"
            config.write_text(yaml.safe_dump(saved))
            cfg = parser.parse_args([*_added_since(saved), "--config", str(config), *args, "--run_name", run.name])
    cfg.run_name = run.name
    return cfg


def _start(parser: ArgumentParser, cfg: Namespace, root: Path, data: GenreDataModule,
           held: contextlib.ExitStack) -> dict[str, dict]:
    """main() once the settings are checked: data, the run folder (locked in `held`), then train_all."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

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
    run = Run(root, cfg.run_name)
    if rank_zero_only.rank == 0:
        if not cfg.resume:
            held.enter_context(lock_run(run.dir))
        for stale in sweep_partial_checkpoints(run.checkpoints) + sweep_partial_checkpoints(run.dir):  # after kill -9
            log.info("removed %s, a file left half-written by an interrupted run", stale)
    if rank_zero_only.rank == 0 and not run.config.is_file():  # a resume keeps the run's own
        run.dir.mkdir(parents=True, exist_ok=True)
        parser.save(cfg, run.config, overwrite=True, skip_check=True)
    gpu = wants_gpu(vars(cfg.trainer))
    say(f"run {cfg.run_name}{' (resumed)' if cfg.resume else ''}: {', '.join(cfg.models)} on {'GPU' if gpu else 'CPU'}")
    previous = os.environ.get(RUN_ENV)
    os.environ[RUN_ENV] = cfg.run_name  # for DDP's processes, started during the fit; removed when done
    try:
        results = train_all(cfg, run, data)
        if cfg.ship and rank_zero_only.rank == 0:
            ship(Path(results[cfg.models[0]]["checkpoint"]), resolve(cfg.ship))
        return results
    finally:
        if rank_zero_only.rank == 0:
            sweep_partial_checkpoints(run.checkpoints)  # a failed write (full disk) removes its own; to be sure
        if previous is None:
            os.environ.pop(RUN_ENV, None)
        else:
            os.environ[RUN_ENV] = previous


def train_all(cfg: Namespace, run: Run, data: GenreDataModule) -> dict[str, dict]:
    """Trains and tests every model of `cfg.models` on `data` in the run, then writes and prints the report.
    On --resume a model already tested in the run is reused as it is, whatever the command line says."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from genre_cnn.training.report import side_by_side, write_report

    results: dict[str, dict] = {}
    for name in cfg.models:
        done = run.result(name)
        if cfg.resume and done.is_file():
            results[name] = r = json.loads(done.read_text())
            other = (f"; --trainer.max_epochs {cfg.trainer.max_epochs} does not retrain a finished model (start a "
                     "new run for that)" if r.get("max_epochs") not in (None, cfg.trainer.max_epochs) else "")
            trained = f"{r['epochs']} epochs" if "epochs" in r else f"{r.get('steps')} steps"
            say(f"{name}: already trained ({trained}) and tested in run {cfg.run_name}: reusing its result{other}")
            continue
        results[name] = train_one(name, cfg, run, data)
        if rank_zero_only.rank == 0:
            atomic_write_text(done, json.dumps(results[name]))
    if rank_zero_only.rank == 0:
        report = write_report(results, run.dir, data.duplicates.summary(data.make_split()))
        print(f"\n{side_by_side(results)}\n\nreport: {report}\ncheckpoints: {run.checkpoints}\n"
              f"curves: tensorboard --logdir {run.dir.parent}")
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
