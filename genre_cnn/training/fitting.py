"""One model family's part of a training run: the validated fit, calibration, the optional refit, the test; or,
for a split into groups, cross-fitting.

    from genre_cnn.training.fitting import train_one   # used by genre_cnn/training/train.py; no CLI of its own

Lightning keeps the state: an interrupted fit resumes from its last.ckpt (`ckpt_path`), whose callback states say
whether it had finished (the epoch count reached, or early stopping's stop, which `LastingEarlyStopping` keeps
across a resume); the test confusion matrix comes back through the `TestConfusion` callback. Every checkpoint is
written by Lightning through genre_cnn.training.runs.atomic_checkpoint_io, the one checkpoint writer.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace

import lightning as L
import numpy as np
import torch
from jsonargparse import Namespace
from lightning.pytorch.callbacks import Callback, EarlyStopping, LearningRateMonitor, ModelCheckpoint

from genre_cnn.audio.frontend import FrontEndConfig
from genre_cnn.models import families
from genre_cnn.paths import Run
from genre_cnn.training.datamodule import GenreDataModule
from genre_cnn.training.lit import GenreModule, build_module
from genre_cnn.training.openset import fit_openset, write_detector
from genre_cnn.training.report import say, seen
from genre_cnn.training.runs import atomic_checkpoint_io

log = logging.getLogger("genre_cnn")


def wants_gpu(trainer_options: dict) -> bool:
    """Whether a Trainer built from these options trains on a GPU: one is present and the accelerator allows it."""
    return torch.cuda.is_available() and str(trainer_options.get("accelerator", "auto")) in ("auto", "gpu", "cuda")


def make_trainer(cfg: Namespace, run: Run, name: str, callbacks: list, version: str = "", **overrides):
    """A Trainer from the `trainer` options, logging to runs/<run>/<name>/<version>; mixed precision on GPU."""
    from lightning.pytorch.loggers import TensorBoardLogger

    args = {**vars(cfg.trainer), **overrides}
    if args.get("precision") is None and wants_gpu(args):
        args["precision"] = "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
    logger = TensorBoardLogger(run.dir, name=name, version=version, default_hp_metric=False)
    return L.Trainer(**args, default_root_dir=run.dir, logger=logger, callbacks=callbacks,
                     plugins=[atomic_checkpoint_io()])


class LastingEarlyStopping(EarlyStopping):
    """EarlyStopping whose stop holds when the fit is resumed from a checkpoint saved after it: that fit is done."""

    @property
    def state_key(self) -> str:  # EarlyStopping's: checkpoints of runs that used it resume alike
        return super().state_key.replace(type(self).__qualname__, "EarlyStopping", 1)

    def on_train_start(self, trainer, pl_module) -> None:
        if self.stopped_epoch > 0:  # restored from the checkpoint's callback state
            trainer.should_stop = True


class TestConfusion(Callback):
    """Keeps the test confusion matrix (n, n), rows = true genre, and shows it in TensorBoard as a figure."""

    def __init__(self):
        self.matrix: np.ndarray | None = None

    def on_test_epoch_end(self, trainer, pl_module) -> None:  # before the module's hook resets the metric
        self.matrix = pl_module.test_metrics["confusion"].compute().cpu().numpy()
        experiment = getattr(trainer.logger, "experiment", None)
        if trainer.is_global_zero and hasattr(experiment, "add_figure"):
            from genre_cnn.training.report import confusion_figure

            experiment.add_figure("test/confusion_matrix", confusion_figure(self.matrix, pl_module.genres),
                                  pl_module.global_step)


def data_module(data: GenreDataModule, name: str, fit_on: str = "train", **changes) -> GenreDataModule:
    """The DataModule of model family `name` with `data`'s settings but `changes` (the same clips and split): it
    serves the inputs the family declares; features loaded, so that its genres and training statistics can be
    handed over."""
    dm = data.like(family=name, fit_on=fit_on, **changes)
    dm.prepare_data()
    dm.setup("fit")
    return dm


def new_model(name: str, cfg: Namespace, dm: GenreDataModule) -> GenreModule:
    """A fresh model of family `name` for `dm`'s genres with the run's `--<name>.*` options; a vector model gets
    `dm`'s training statistics, a class-balanced one its class counts."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = build_module(families.get(name), dm.genres, FrontEndConfig(**vars(cfg.frontend)), vars(cfg[name]))
    if hasattr(model.model, "set_scaler"):
        model.model.set_scaler(*dm.vector_stats())
    model.set_class_counts(dm.class_counts())
    return model


def fit(name: str, cfg: Namespace, run: Run, dm: GenreDataModule, callbacks: list):
    """The validated fit: up to max_epochs, early stopping on val/acc, best.ckpt and last.ckpt written every
    epoch; with --resume it goes on from last.ckpt, or does nothing if that fit had finished.
    `callbacks` join the trainer's. Returns (model, trainer, {"epochs", "val_acc", "best_epoch", "max_epochs"})."""
    model = new_model(name, cfg, dm)
    folder = run.checkpoints / name
    best = ModelCheckpoint(str(folder), filename="best", monitor="val/acc", mode="max", enable_version_counter=False)
    # every epoch, for --resume (Lightning's save_last only follows saves of the best checkpoint)
    latest = ModelCheckpoint(str(folder), filename="last", enable_version_counter=False)
    early = LastingEarlyStopping("val/acc", mode="max", patience=cfg.patience)
    trainer = make_trainer(cfg, run, name, [best, latest, early, LearningRateMonitor("epoch"), *callbacks])
    last = run.checkpoint(name, "last")
    resume = last if cfg.resume and last.is_file() else None
    start_epoch = torch.load(resume, map_location="cpu", weights_only=True)["epoch"] + 1 if resume else 0
    weights = sum(p.numel() for p in model.parameters())
    say(f"fit {name} ({type(model.model).__name__}, {weights / 1e3:.0f} K weights): up to "
        f"{cfg.trainer.max_epochs} epochs on {seen(dm)}, validated on {len(dm.idx['val'])} clips, early "
        f"stopping patience {cfg.patience}" + (f"; resuming after epoch {start_epoch} of {resume}" if resume else ""))
    start = time.time()
    trainer.fit(model, datamodule=dm, ckpt_path=resume)
    result = {"epochs": trainer.current_epoch, "val_acc": float(best.best_model_score or 0.0),
              "max_epochs": cfg.trainer.max_epochs}
    result["best_epoch"] = int(torch.load(run.checkpoint(name, "best"), map_location="cpu",
                                          weights_only=True)["epoch"]) + 1
    done = "nothing left to train" if trainer.current_epoch == start_epoch else f"{result['epochs']} epochs"
    say(f"fit {name}: done in {time.time() - start:.0f} s, {done}; best val accuracy {result['val_acc']:.1%} at "
        f"epoch {result['best_epoch']} -> {run.checkpoint(name, 'best')}")
    return model, trainer, result


def fit_unvalidated(name: str, cfg: Namespace, run: Run, dm: GenreDataModule, version: str, callbacks: list,
                    **overrides):
    """A fresh model fitted on `dm`'s training parts without validation (the trainer's epoch or step budget, or
    `overrides`). Returns (model, trainer)."""
    model = new_model(name, cfg, dm)
    trainer = make_trainer(cfg, run, name, [LearningRateMonitor("epoch"), *callbacks], version=version,
                           limit_val_batches=0, enable_checkpointing=False, **overrides)
    trainer.fit(model, datamodule=dm)
    return model, trainer


def refit(name: str, cfg: Namespace, run: Run, data: GenreDataModule, epochs: int, temperature: float,
          callbacks: list):
    """A fresh model trained on train + val for `epochs` epochs (the validated fit's count), no validation, with
    the validated fit's `temperature`, saved as refit.ckpt (atomically, when done: a killed refit starts again);
    `callbacks` join the trainer's. Returns (model, trainer, its DataModule, the checkpoint's path)."""
    start = time.time()
    dm = data_module(data, name, fit_on="train+val")
    say(f"refit {name}: a fresh model on train + val ({seen(dm)}) for {epochs} epochs, the validated fit's count; "
        "no validation")
    model, trainer = fit_unvalidated(name, cfg, run, dm, "refit", callbacks, max_epochs=epochs)
    model.model.temperature.fill_(temperature)  # val is trained on: the temperature is the validated fit's
    path = run.checkpoint(name, "refit")
    trainer.save_checkpoint(path, weights_only=True)  # for prediction: no optimiser
    say(f"refit {name}: done in {time.time() - start:.0f} s -> {path}")
    return model, trainer, dm, path


def test(name: str, trainer, model, dm: GenreDataModule, checkpoint, confusion: TestConfusion) -> dict:
    """Tests `model` (from `checkpoint`) on the held-out clips of `dm`, track by track, with the `trainer` that
    fitted it (`confusion` among its callbacks): the report's metrics."""
    from genre_cnn.training.report import metrics_from_confusion

    start = time.time()
    say(f"test {name}: {checkpoint.name} on the {len(dm.idx['test'])} held-out clips")
    metrics = trainer.test(model, datamodule=dm, verbose=False)[0]
    result = {**metrics_from_confusion(confusion.matrix, dm.genres), "window_acc": metrics["test/window_acc"]}
    say(f"test {name}: done in {time.time() - start:.0f} s, clip accuracy {result['clip_acc']:.1%} "
        f"(windows {result['window_acc']:.1%}), macro-F1 {result['macro_f1']:.3f}")
    return result


def cross_fit(name: str, cfg: Namespace, run: Run, data: GenreDataModule) -> dict:
    """Cross-fitting over the split's groups (genre_cnn.data.splits, kind "groups"): a fresh model trained without
    each group in turn (no validation: the trainer's budget) predicts that group; the temperature is fitted on the
    pooled out-of-fold predictions, which give the report's figures; then the model kept is trained on every clip,
    given that temperature (and, if its settings ask, its open-set detector: genre_cnn.training.openset) and saved as
    refit.ckpt. Returns the report's figures for it."""
    from genre_cnn.training.calibration import (
        clip_probs,
        collect_window_logits,
        expected_calibration_error,
        fit_temperature,
    )
    from genre_cnn.training.report import metrics_from_confusion

    start, policy = time.time(), data.split_policy
    logits, labels = [], []
    for fold, group in enumerate(policy.group_names):
        dm = data_module(data, name, split=replace(policy, fold=fold))
        say(f"cross-fit {name}: without group {group} ({len(dm.idx['test'])} clips), on {seen(dm)}")
        model, _ = fit_unvalidated(name, cfg, run, dm, f"without-{group}", [])
        window_logits, y = collect_window_logits(model.model, dm.test_dataloader())  # (N, K, n), (N,)
        logits.append(window_logits)
        labels.append(y)
    logits, labels = np.concatenate(logits), np.concatenate(labels)
    t = fit_temperature(logits, labels)
    before, after = clip_probs(logits, 1.0), clip_probs(logits, t)
    n = len(data.genres)
    confusion = np.bincount(labels * n + after.argmax(1), minlength=n * n).reshape(n, n)
    windows = logits.argmax(-1) == labels[:, None]  # (N, K)
    result = {**metrics_from_confusion(confusion, data.genres), "window_acc": float(windows.mean()),
              "cross_fit": policy.group_names, "split": "groups",
              "calibration": {"temperature": t, "clips": int(len(labels)),
                              "ece_before": expected_calibration_error(before, labels),
                              "ece_after": expected_calibration_error(after, labels)}}
    say(f"cross-fit {name}: out-of-fold accuracy {result['clip_acc']:.1%} on {len(labels)} clips; temperature "
        f"{t:.2f}, expected calibration error {result['calibration']['ece_before']:.3f} -> "
        f"{result['calibration']['ece_after']:.3f}")
    dm = data_module(data, name, fit_on="train+test")  # every clip
    say(f"cross-fit {name}: the model kept, trained on every clip ({seen(dm)})")
    model, trainer = fit_unvalidated(name, cfg, run, dm, "refit", [])
    model.model.temperature.fill_(t)
    if (openset := fit_openset(model, dm)) is not None:
        result["openset"] = openset
    path = run.checkpoint(name, "refit")
    trainer.save_checkpoint(path, weights_only=True)
    result.update(checkpoint=str(path), steps=trainer.global_step, train_seconds=time.time() - start)
    say(f"cross-fit {name}: done in {time.time() - start:.0f} s -> {path}")
    return result


def train_one(name: str, cfg: Namespace, run: Run, data: GenreDataModule) -> dict:
    """Fits model family `name` on `data` (resuming if asked), calibrates its best checkpoint on the validation
    clips, refits on train + val with `cfg.refit`, fits its open-set detector if its settings ask for one (into the
    tested checkpoint), and tests the result (for a split into groups: `cross_fit`): the report's figures for it,
    `split` the kind of split used (genre_cnn.data.splits)."""
    from genre_cnn.training.calibration import calibrate_checkpoint
    from genre_cnn.training.report import log_hparams

    if not data.split_policy.has_validation:
        return cross_fit(name, cfg, run, data)
    start, confusion = time.time(), TestConfusion()
    dm = data_module(data, name)
    model, trainer, result = fit(name, cfg, run, dm, [confusion])
    checkpoint = run.checkpoint(name, "best")
    result["calibration"] = calibration = calibrate_checkpoint(checkpoint, dm)  # its temperature, into best.ckpt
    say(f"calibrate {name}: temperature {calibration['temperature']:.2f} on {len(dm.idx['val'])} validation clips, "
        f"expected calibration error {calibration['ece_before']:.3f} -> {calibration['ece_after']:.3f}")
    if cfg.refit:
        model, trainer, dm, checkpoint = refit(name, cfg, run, data, result["epochs"], calibration["temperature"],
                                               [confusion])
        result["refit_epochs"] = result["epochs"]
    else:  # the best epoch's weights and temperature, read as plain tensors (no pickled code runs)
        model.load_state_dict(torch.load(checkpoint, map_location="cpu", weights_only=True)["state_dict"])
    if (openset := fit_openset(model, dm)) is not None:
        result["openset"] = openset
        if trainer.is_global_zero:
            write_detector(checkpoint, model)
    result.update(checkpoint=str(checkpoint), train_seconds=time.time() - start, split=dm.split_kind)
    result.update(test(name, trainer, model, dm, checkpoint, confusion))
    if trainer.is_global_zero:
        log_hparams(trainer.logger, cfg, name, result)
    return result
