"""train.py's main, with a record of which cached clips each process reads; or a one-process test of a checkpoint.

    python tests/ddp_probe.py OUT_DIR TRAIN_ARGS...     # OUT_DIR/rank<r>.txt: one line a read
    from tests.ddp_probe import retest                  # in the test's own process: the test confusion matrix

Used by tests/test_ondisk.py and tests/test_streamed.py. Lines: "train INDEX LENGTH NAME" for a training window
(INDEX of the epoch's LENGTH items), "stream KEY" for a training clip read from LitData shards, "val NAME" /
"test NAME" for a whole clip evaluated ("peek NAME": the loader reading one clip for its window count).
Lightning's DDP launcher starts the other processes by running this script again (torchrun starts each one the
same way), so each process patches itself the same way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from genre_cnn.data import streamed
from genre_cnn.training import datamodule, loaders


def record(line: str) -> None:
    with open(Path(sys.argv[1]) / f"rank{os.environ.get('LOCAL_RANK', '0')}.txt", "a") as f:
        f.write(line + "\n")


def patch() -> None:
    random_item, clip_item = loaders.RandomWindows.__getitem__, loaders.ClipWindows.__getitem__
    crop = streamed.RandomCrops.__call__

    def streamed_clip(self, item):
        record(f"stream {item['key']}")
        return crop(self, item)

    def random_windows(self, i):
        record(f"train {i} {len(self)} {Path(self.spec.paths[i // self.crops]).name}")
        return random_item(self, i)

    def clip_windows(self, i):
        record(f"{getattr(self, 'part', 'peek')} {Path(self.spec.paths[i]).name}")  # peek: the loader's look at K
        return clip_item(self, i)

    def tagged(part: str):
        def loader(self):
            dl = self._eval_loader(part)
            dl.dataset.part = part
            return dl
        return loader

    loaders.RandomWindows.__getitem__, loaders.ClipWindows.__getitem__ = random_windows, clip_windows
    streamed.RandomCrops.__call__ = streamed_clip
    datamodule.GenreDataModule.val_dataloader = tagged("val")
    datamodule.GenreDataModule.test_dataloader = tagged("test")


def retest(checkpoint: Path, args: list[str]) -> list[list[int]]:
    """Tests `checkpoint` in one process with the run's data settings, features in RAM: the confusion matrix."""
    import lightning as L

    from genre_cnn.inference.predict import load_model
    from genre_cnn.training.fitting import TestConfusion
    from genre_cnn.training.lit import GenreModule
    from genre_cnn.training.train import build_parser, check_settings

    parser = build_parser()
    _, dm = check_settings(parser, parser.parse_args([*args, "--data.features.in_memory", "true"]))
    model = GenreModule(load_model(checkpoint))
    confusion = TestConfusion()
    trainer = L.Trainer(accelerator="cpu", devices=1, logger=False, callbacks=[confusion], enable_progress_bar=False)
    trainer.test(model, datamodule=dm, verbose=False)
    return confusion.matrix.tolist()


if __name__ == "__main__":
    from genre_cnn.training.train import main

    patch()
    main(sys.argv[2:])
