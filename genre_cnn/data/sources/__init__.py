"""Dataset kinds: where a dataset's audio lies, its genres, its clips with their labels, its own split if any.

    from genre_cnn.data.sources import open_source
    source = open_source("gtzan", Path("~/gtzan").expanduser())
    source.ensure()                       # downloads GTZAN (or generates the demo) if needed
    clips = source.clips()                # [Clip(path, genre)], sorted; odd files logged once
    python -m genre_cnn.data.sources folder ~/music     # lists a dataset's genres and clip counts

A kind is one module of this package with one `Source` subclass: `gtzan` (GTZAN's ten genres, downloaded when
missing), `folder` (any folder per genre: its genres), `demo` (generated clips) and `fma` (the Free Music Archive's
top-level genres, with its own split). `--data.dataset` names it.
The feature cache (genre_cnn.data.cache), the split (genre_cnn.data.splits) and the loaders
(genre_cnn.training.loaders) are separate pieces that the DataModule composes; `genre_cnn.data.clipset` serves a
source's features without Lightning.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import ClassVar

from genre_cnn.data.layout import Clip
from genre_cnn.errors import SettingsError

KINDS = {  # --data.dataset name -> class path of its Source
    "gtzan": "genre_cnn.data.sources.gtzan:Gtzan",
    "folder": "genre_cnn.data.sources.folder:Folder",
    "demo": "genre_cnn.data.sources.demo:Demo",
    "fma": "genre_cnn.data.sources.fma:Fma",
}


class Source:
    """One dataset: its genres (the one list models, reports and prediction use), its clips and their labels.

    Subclasses take `data_dir` and the options they need (named like the DataModule's, e.g. `download`).
    Nothing is read or written until a method is called.
    """

    name: ClassVar[str]
    has_official_split: ClassVar[bool] = False  # whether official_split() gives the dataset's own split

    def __init__(self, data_dir: Path):
        self.data_dir = Path(data_dir)

    def ensure(self) -> None:
        """Downloads or generates the audio if needed; DataError, saying what to do, if there is none."""

    def genres(self) -> list[str]:
        """Class names in label order."""
        raise NotImplementedError

    def clips(self) -> list[Clip]:
        """Every audio file of the dataset with its genre, sorted (odd files are logged once and left out)."""
        raise NotImplementedError

    def official_split(self) -> dict[str, list[str]] | None:
        """The dataset's own split by clip key ({"train", "val", "test"}), or None if it has none (a kind that has
        one says so with `has_official_split`, known before any file is read); after ensure()."""
        return None

    def cache_source(self) -> Path:
        """The folder the feature cache is named after (genre_cnn.data.cache.FeatureSettings.cache_dir): data_dir, or
        the audio folder in use where data_dir holds several."""
        return self.data_dir


def open_source(kind: str, data_dir: Path, **options) -> Source:
    """The Source of kind `kind` over `data_dir`, given the options its constructor takes (others are ignored);
    SettingsError naming the known kinds for an unknown one."""
    import importlib

    if kind not in KINDS:
        raise SettingsError(f"--data.dataset {kind!r} is not a dataset kind (known: {', '.join(KINDS)})")
    module, _, name = KINDS[kind].partition(":")
    cls = getattr(importlib.import_module(module), name)
    params = inspect.signature(cls.__init__).parameters
    return cls(Path(data_dir), **{k: v for k, v in options.items() if k in params})
