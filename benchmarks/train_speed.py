"""Training throughput of the CNN on this machine, and the wall time of a GTZAN-sized run from it.

    .venv/bin/python benchmarks/train_speed.py [--epochs 4] [--accelerator auto]

Trains the CNN (GenreModule) with the real Trainer, DataModule and augmentation on the cached features of
../shared/gtzan_mini (60 training clips x crops_per_clip random 3-s windows an epoch), times every epoch
after the first, and reports windows/s. It then extrapolates a full GTZAN run: 600 training clips (8:2
train:test, a quarter of train for validation) x 8 windows x 60 epochs, plus validation.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path

GTZAN_MINI = Path(__file__).resolve().parents[2] / "shared" / "gtzan_mini"


def main() -> None:
    import lightning as L
    import torch

    from genre_cnn.audio.frontend import FrontEndConfig
    from genre_cnn.data.sources.folder import Folder
    from genre_cnn.models import families
    from genre_cnn.training.datamodule import GenreDataModule
    from genre_cnn.training.lit import build_module

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--batch_size", type=int, default=32)
    parser.add_argument("--data_dir", type=Path, default=GTZAN_MINI)
    args = parser.parse_args()

    class EpochTimer(L.Callback):
        def __init__(self):
            self.times: list[float] = []

        def on_train_epoch_start(self, trainer, module):
            self.start = time.perf_counter()

        def on_train_epoch_end(self, trainer, module):
            self.times.append(time.perf_counter() - self.start)

    dm = GenreDataModule(Folder(str(args.data_dir)), batch_size=args.batch_size)
    dm.prepare_data()
    dm.setup("fit")
    timer = EpochTimer()
    L.seed_everything(0, verbose=False)
    trainer = L.Trainer(max_epochs=args.epochs, accelerator=args.accelerator, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[timer], precision="bf16-mixed" if torch.cuda.is_available() else "32-true")
    model = build_module(families.get("cnn"), dm.genres, FrontEndConfig(), {})
    trainer.fit(model, datamodule=dm)
    windows = len(dm.idx["train"]) * dm.crops_per_clip
    rate = windows / (sum(timer.times[1:]) / len(timer.times[1:]))

    # evaluation: every window of every validation clip, forward only
    classifier = model.model.eval()
    batch = next(iter(dm.val_dataloader()))
    batch = [t.to(model.device) for t in batch]
    start = time.perf_counter()
    with torch.no_grad():
        for _ in range(3):
            classifier.clip_probs(batch[0])
    eval_rate = 3 * batch[0].shape[0] * batch[0].shape[1] / (time.perf_counter() - start)

    device = torch.cuda.get_device_name() if torch.cuda.is_available() else f"{os.cpu_count()} CPU cores"
    full_epoch = 600 * 8 / rate + 200 * 18 / eval_rate  # train windows + validation windows (18 per clip)
    print(f"machine: {platform.machine()}, {device}; torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"CNN training: {rate:.0f} windows/s (3-s windows, batch {args.batch_size}, epochs 2-{args.epochs})")
    print(f"CNN evaluation: {eval_rate:.0f} windows/s")
    print(f"full GTZAN (600 train clips x 8 windows + 200 val clips): {full_epoch:.0f} s an epoch, "
          f"{60 * full_epoch / 60:.0f} min for 60 epochs")


if __name__ == "__main__":
    main()
