"""Train the CNN and the dense baseline, test both on the held-out tracks, and write a side-by-side report.

    python train.py                                   # both models on GTZAN (downloaded if missing)
    python train.py --config configs/demo.yaml        # synthetic demo: under a minute, no download
    python train.py --models [cnn]                    # one model
    python train.py --data.data_dir ~/music/genres    # your own copy of GTZAN, or any folder per genre
    python train.py --resume true --run_name NAME     # finish an interrupted run from its last checkpoints
    python train.py --help                            # every option, with its default
    tensorboard --logdir runs                         # the curves

Defaults live in the typed `__init__` signatures of FrontEndConfig (`--frontend`), GenreDataModule (`--data`),
LitCNN (`--cnn`) and LitDense (`--dense`); YAML files under configs/ state only overrides. Each model family
gets a DataModule of its own that serves the inputs the family declares, with the same front end and split.
Writes runs/<run>/{config.yaml, report.md, report.json, confusion_*.png, <model>/ TensorBoard logs} and
checkpoints/<run>/<model>/{best,last}.ckpt.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Literal

from jsonargparse import ActionConfigFile, ArgumentParser, Namespace

from genre_cnn.datamodule import GenreDataModule
from genre_cnn.frontend import FrontEndConfig
from genre_cnn.lit import LitCNN, LitDense, LitMusicnn
from genre_cnn.paths import atomic_write_text, project_root

log = logging.getLogger("genre_cnn")

RUN_ENV = "GENRE_CNN_RUN"  # the run name, for DDP's extra processes only while a run trains


class RunError(RuntimeError):
    """A run that cannot start as asked (e.g. its name is taken); the message says what to do."""


# the `--models` names, each also the option group of its LightningModule (e.g. --musicnn.embedding tags)
MODELS = {"cnn": LitCNN, "dense": LitDense, "musicnn": LitMusicnn}


def build_parser() -> ArgumentParser:
    from lightning import Trainer

    parser = ArgumentParser(prog="train.py", description=__doc__, default_env=False)
    parser.add_argument("--config", action=ActionConfigFile, help="a YAML file of overrides, e.g. configs/demo.yaml")
    parser.add_argument("--models", type=list[Literal["cnn", "dense", "musicnn"]], default=["cnn", "dense", "musicnn"],
                        help="the model families to train and compare")
    parser.add_argument("--run_name", type=str | None, default=None, help="default: the date and time")
    parser.add_argument("--resume", type=bool, default=False,
                        help="continue run_name (default: the latest run) from its last checkpoints")
    parser.add_argument("--seed", type=int, default=0, help="seeds weights, batches and augmentation")
    parser.add_argument("--patience", type=int, default=20, help="early stopping: epochs without better val/acc")
    parser.add_argument("--refit", type=bool, default=False,
                        help="after the validated run, retrain on train + val for as many epochs and test that model")
    parser.add_argument("--output_root", type=Path | None, default=None,
                        help="where runs/ and checkpoints/ go (default: the project folder)")
    parser.add_class_arguments(FrontEndConfig, "frontend", instantiate=False)
    parser.add_class_arguments(GenreDataModule, "data", instantiate=False, skip={"frontend", "inputs", "fit_on"})
    for name, cls in MODELS.items():
        parser.add_class_arguments(cls, name, instantiate=False, skip={"genres", "frontend"})
    parser.link_arguments("data.window_seconds", "cnn.window_seconds")
    parser.link_arguments("data.clip_seconds", "dense.clip_seconds")
    parser.add_class_arguments(Trainer, "trainer", instantiate=False, skip={
        "callbacks", "logger", "default_root_dir", "enable_checkpointing", "plugins"})
    parser.set_defaults({"trainer.max_epochs": 60, "trainer.log_every_n_steps": 10})
    return parser


def _latest_run(checkpoints: Path) -> str:
    runs = sorted((p for p in checkpoints.glob("*") if p.is_dir()), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise SystemExit(f"--resume: no run in {checkpoints} to resume")
    return runs[-1].name


def atomic_checkpoint_io():
    """Lightning's checkpoint writer, but through `genre_cnn.paths.atomic_write`, so that a run killed while
    saving never leaves a truncated `last.ckpt` to resume from."""
    import torch
    from lightning.pytorch.plugins.io import TorchCheckpointIO

    from genre_cnn.paths import atomic_write

    class AtomicCheckpointIO(TorchCheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            atomic_write(Path(path), lambda f: torch.save(checkpoint, f))

    return AtomicCheckpointIO()


def make_trainer(cfg: Namespace, run_dir: Path, name: str, callbacks: list, version: str = "", **overrides):
    """A Trainer from the `trainer` options, logging to runs/<run>/<name>/<version>; mixed precision on GPU."""
    import lightning as L
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    args = {**vars(cfg.trainer), **overrides}
    on_gpu = torch.cuda.is_available() and str(args.get("accelerator", "auto")) in ("auto", "gpu", "cuda")
    if args.get("precision") is None and on_gpu:
        args["precision"] = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    logger = TensorBoardLogger(run_dir, name=name, version=version, default_hp_metric=False)
    return L.Trainer(**args, default_root_dir=run_dir, logger=logger, callbacks=callbacks,
                     plugins=[atomic_checkpoint_io()])


def data_module(cfg: Namespace, name: str, fit_on: str = "train") -> GenreDataModule:
    """The DataModule of model family `name`: the `--data` options, the front end, and the family's inputs;
    features cached and split loaded, so that its genres and training statistics can be handed over."""
    dm = GenreDataModule(**vars(cfg.data), frontend=FrontEndConfig(**vars(cfg.frontend)),
                         inputs=MODELS[name].classifier_class.inputs, fit_on=fit_on)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def new_model(name: str, cfg: Namespace, dm: GenreDataModule):
    """A fresh model of family `name` for `dm`'s genres; a vector model gets `dm`'s training statistics."""
    import lightning as L

    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = MODELS[name](genres=dm.genres, frontend=FrontEndConfig(**vars(cfg.frontend)), **vars(cfg[name]))
    if hasattr(model.model, "set_scaler"):
        model.model.set_scaler(*dm.vector_stats())
    return model


def train_one(name: str, cfg: Namespace, run_dir: Path, ckpt_dir: Path) -> dict:
    """Fits one model (resuming from last.ckpt if asked and present) and tests its best checkpoint.

    With `cfg.refit`, a fresh model is then trained on train + val for as many epochs as the validated run
    trained (early stopping included), and that model (checkpoints/<run>/<name>/refit.ckpt) is the one tested.
    """
    from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint

    from genre_cnn.report import metrics_from_confusion

    dm = data_module(cfg, name)
    model = new_model(name, cfg, dm)
    checkpoint = ModelCheckpoint(str(ckpt_dir / name), filename="best", monitor="val/acc", mode="max",
                                 enable_version_counter=False)
    # every epoch, for --resume (Lightning's save_last only follows saves of the best checkpoint)
    latest = ModelCheckpoint(str(ckpt_dir / name), filename="last", enable_version_counter=False)
    early = EarlyStopping("val/acc", mode="max", patience=cfg.patience)
    trainer = make_trainer(cfg, run_dir, name, [checkpoint, latest, early, LearningRateMonitor("epoch")])
    last, best = ckpt_dir / name / "last.ckpt", ckpt_dir / name / "best.ckpt"
    # the validated fit ended under this max_epochs (an early stop cannot be resumed; more epochs can)
    fitted = ckpt_dir / name / "fit_done.json"
    done = json.loads(fitted.read_text()) if cfg.resume and fitted.is_file() else {}
    start = time.time()
    if done.get("max_epochs") == cfg.trainer.max_epochs:
        result = {"epochs": done["epochs"], "val_acc": done["val_acc"]}
    else:
        trainer.fit(model, datamodule=dm, ckpt_path=last if cfg.resume and last.is_file() else None)
        result = {"epochs": trainer.current_epoch, "val_acc": float(checkpoint.best_model_score or 0.0)}
        if trainer.is_global_zero:
            atomic_write_text(fitted, json.dumps({**result, "max_epochs": cfg.trainer.max_epochs}))
    result["checkpoint"] = str(best)
    if cfg.refit:
        epochs = result["epochs"]  # as many as the validated run trained, early stopping included
        dm = data_module(cfg, name, fit_on="train+val")
        model = new_model(name, cfg, dm)
        trainer = make_trainer(cfg, run_dir, name, [LearningRateMonitor("epoch")], version="refit",
                               max_epochs=epochs, limit_val_batches=0, enable_checkpointing=False)
        # a killed refit starts again on --resume; refit.ckpt is written (atomically) only when it is done
        trainer.fit(model, datamodule=dm)
        trainer.save_checkpoint(ckpt_dir / name / "refit.ckpt")
        result.update(refit_epochs=epochs, checkpoint=str(ckpt_dir / name / "refit.ckpt"))
    result["train_seconds"] = time.time() - start
    test = trainer.test(model, datamodule=dm, ckpt_path=None if cfg.refit else best, weights_only=True)[0]
    result.update(metrics_from_confusion(model.test_confusion, dm.genres),
                  window_acc=test["test/window_acc"])
    return result


def main(args: list[str] | None = None) -> dict[str, dict]:
    """Parses `args` (default: the command line), trains and tests, and returns each model's results."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    parser = build_parser()
    args = sys.argv[1:] if args is None else list(args)
    cfg = parser.parse_args(args)
    root = cfg.output_root or project_root()
    if cfg.resume:  # the run's own saved config first, then what this command line changes
        run_name = cfg.run_name or _latest_run(root / "checkpoints")
        saved = root / "runs" / run_name / "config.yaml"
        if saved.is_file():
            cfg = parser.parse_args(["--config", str(saved), *args, "--run_name", run_name])
        cfg.run_name = run_name
    GenreDataModule(**vars(cfg.data), frontend=FrontEndConfig(**vars(cfg.frontend))).ensure_audio()  # before a run
    if rank_zero_only.rank != 0:  # DDP's extra processes re-run this command: they join rank 0's run
        cfg.run_name = os.environ[RUN_ENV]
    elif not cfg.resume:
        cfg.run_name = new_run(root / "runs", cfg.run_name)
    run_dir, ckpt_dir = root / "runs" / cfg.run_name, root / "checkpoints" / cfg.run_name
    if rank_zero_only.rank == 0 and not (run_dir / "config.yaml").is_file():  # a resume keeps the run's own
        run_dir.mkdir(parents=True, exist_ok=True)
        parser.save(cfg, run_dir / "config.yaml", overwrite=True, skip_check=True)
    previous = os.environ.get(RUN_ENV)
    os.environ[RUN_ENV] = cfg.run_name  # for DDP's processes, started during the fit; removed when done
    try:
        return train_all(cfg, run_dir, ckpt_dir)
    finally:
        if previous is None:
            os.environ.pop(RUN_ENV, None)
        else:
            os.environ[RUN_ENV] = previous


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


def train_all(cfg: Namespace, run_dir: Path, ckpt_dir: Path) -> dict[str, dict]:
    """Trains and tests every model of `cfg.models` in the run, then writes and prints the report."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    from genre_cnn.report import side_by_side, write_report

    results: dict[str, dict] = {}
    for name in cfg.models:
        done = run_dir / f"result_{name}.json"
        if cfg.resume and done.is_file():
            log.info("%s already finished in run %s: reusing its result", name, cfg.run_name)
            results[name] = json.loads(done.read_text())
            continue
        results[name] = train_one(name, cfg, run_dir, ckpt_dir)
        if rank_zero_only.rank == 0:
            atomic_write_text(done, json.dumps(results[name]))
    if rank_zero_only.rank == 0:
        report = write_report(results, run_dir)
        print(f"\n{side_by_side(results)}\n\nreport: {report}\ncheckpoints: {ckpt_dir}\n"
              f"curves: tensorboard --logdir {run_dir.parent}")
    return results


def cli() -> None:
    """`python train.py`: like main(), but a dataset or download problem is one line, not a traceback."""
    from genre_cnn.audio import DataError
    from genre_cnn.download import DownloadError

    try:
        main()
    except (DataError, DownloadError, RunError) as err:
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    cli()
