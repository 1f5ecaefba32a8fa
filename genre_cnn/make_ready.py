"""The ready model in the box: the musicnn genre head trained on all 100 clips of ../shared/gtzan_mini.

    .venv/bin/python -m genre_cnn.make_ready                 # rewrites genre_cnn/ready/musicnn_gtzan_mini.ckpt
    .venv/bin/python -m genre_cnn.make_ready --seed 1        # any train.py option (configs/ready.yaml first)

The recipe is configs/ready.yaml (the same settings as `python train.py --config configs/mini.yaml --models
[musicnn]`), trained on every clip for the configured number of epochs: nothing is held out, so this model is
not tested here; its expected accuracy is the musicnn row of BENCHMARKS.md, measured with the same recipe on
held-out clips. The file holds what prediction needs and nothing else (no optimiser state): the genre list,
the hyperparameters, the weights (backbone included) and a `trained_on` note that `genre-cnn predict` prints.
"""

from __future__ import annotations

import sys
from pathlib import Path

from genre_cnn.checkpoint import READY_MODEL
from genre_cnn.paths import REPO, atomic_write

READY_CONFIG = REPO / "configs" / "ready.yaml"


def main(argv: list[str] | None = None) -> Path:
    import lightning as L
    import torch

    from genre_cnn.datamodule import GenreDataModule
    from genre_cnn.frontend import FrontEndConfig
    from genre_cnn.train import build_parser, data_module, new_model

    argv = sys.argv[1:] if argv is None else list(argv)
    cfg = build_parser().parse_args(["--config", str(READY_CONFIG), *argv])
    data = GenreDataModule(**vars(cfg.data), frontend=FrontEndConfig(**vars(cfg.frontend)), inputs="musicnn")
    dm = data_module(data, "musicnn", fit_on="train+val+test")
    model = new_model("musicnn", cfg, dm)
    trainer = L.Trainer(max_epochs=cfg.trainer.max_epochs, accelerator="cpu", limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, deterministic=True)
    trainer.fit(model, datamodule=dm)
    trained_on = (f"all {len(dm.train_idx)} clips of {dm.data_dir.name} ({', '.join(dm.genres)}), "
                  f"{cfg.trainer.max_epochs} epochs, seed {cfg.seed} (python -m genre_cnn.make_ready)")
    checkpoint = {"genre_cnn_class": model.classifier_class.__name__, "hyper_parameters": dict(model.hparams),
                  "state_dict": model.state_dict(), "trained_on": trained_on}
    atomic_write(READY_MODEL, lambda f: torch.save(checkpoint, f))
    print(f"{READY_MODEL}: {READY_MODEL.stat().st_size / 1e6:.1f} MB, trained on {trained_on}")
    return READY_MODEL


if __name__ == "__main__":
    main()
