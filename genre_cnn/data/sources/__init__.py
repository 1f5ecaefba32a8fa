"""Dataset kinds: where a dataset's audio lies, its genres, its clips with their labels, its own split if any.

    from genre_cnn.data.sources.gtzan import Gtzan
    source = Gtzan("~/gtzan")
    source.ensure()                       # downloads GTZAN (or generates the demo) if needed
    clips = source.clips()                # [Clip(path, genre)], sorted; odd files logged once
    python -m genre_cnn.data.sources Folder ~/music     # lists a dataset's genres and clip counts

A kind is one module of this package with one `Source` subclass whose typed `__init__` arguments are its options:
`gtzan.Gtzan` (GTZAN's ten genres, downloaded when missing), `folder.Folder` (any folder per genre, or several:
their genres), `demo.Demo` (generated clips), `fma.Fma` (the Free Music Archive's top-level genres, with its own
split), `csvlist.CsvList` (a CSV file of paths and labels) and `library.Library` (your own music, labelled by its
genre tags, split by artist). train.py's `--data.source` takes one by class name
or class path, with its options (`--data.source Fma --data.source.subset medium`); a kind in another package is
named by its class path. The feature cache (genre_cnn.data.cache), the split (genre_cnn.data.splits) and the loaders
(genre_cnn.training.loaders) are separate pieces that the DataModule composes; `genre_cnn.data.clipset` serves a
source's features without Lightning.
"""

from __future__ import annotations

import importlib
import pkgutil
from pathlib import Path
from typing import ClassVar

from genre_cnn.data.layout import Clip


class Source:
    """One dataset: its genres (the one list models, reports and prediction use), its clips and their labels.
    Subclasses take the options they need as typed `__init__` arguments; nothing is read or written until a
    method is called."""

    name: ClassVar[str]
    has_official_split: ClassVar[bool] = False  # whether official_split() gives the dataset's own split
    generated: ClassVar[bool] = False  # made-up clips (the demo): models trained on them are never chosen by default

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)

    def ensure(self) -> None:
        """Downloads or generates the audio if needed; DataError, saying what to do, if there is none."""

    def genres(self) -> list[str]:
        """Class names in label order."""
        raise NotImplementedError

    def clips(self) -> list[Clip]:
        """Every audio file of the dataset with its genre, sorted by key (odd files are logged once and left out)."""
        raise NotImplementedError

    def official_split(self) -> dict[str, list[str]] | None:
        """The dataset's own split by clip key ({"train", "val", "test"}), or None if it has none (a kind that has
        one says so with `has_official_split`, known before any file is read); after ensure()."""
        return None

    def groups(self) -> dict[str, str] | None:
        """Clip key -> the group whose clips a split keeps on one side (e.g. the artist), or None if the dataset
        has none (genre_cnn.data.splits: kind "groups" without named groups); after ensure()."""
        return None

    def cache_source(self) -> str:
        """What names the feature cache (genre_cnn.data.cache.FeatureSettings.cache_dir): the dataset's folder, or
        the audio folder in use where data_dir holds several."""
        return str(self.data_dir.resolve())

    def describe(self) -> str:
        """Where the dataset is, in a few words, for reports and a checkpoint's `trained_on`: its folder as given,
        or the kind's name when it lies in its default place."""
        return self.name if getattr(self, "default_place", False) else str(self.data_dir)


def kinds() -> dict[str, type[Source]]:
    """Every dataset kind of this package by class name (importing their modules, so that train.py's
    `--data.source NAME` finds them)."""
    for module in pkgutil.iter_modules(__path__):
        if module.name != "__main__":
            importlib.import_module(f"{__name__}.{module.name}")
    found, todo = {}, list(Source.__subclasses__())
    while todo:
        cls = todo.pop()
        if cls.__module__.startswith(f"{__name__}."):
            found[cls.__name__] = cls
        todo += cls.__subclasses__()
    return dict(sorted(found.items()))
