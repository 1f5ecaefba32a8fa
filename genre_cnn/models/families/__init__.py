"""Model families: what genre_cnn knows about each, in one record per family; the rest of the package asks here.

    from genre_cnn.models import families
    families.get("cnn").classifier()      # WindowClassifier (imports torch only now)
    list(families.best_first())           # ["musicnn", "cnn", "dense"]: the order a run's models are preferred in
    python -m genre_cnn.models.families          # each family: its classifier, inputs, features and size

A family is one module of this package (`cnn.py`, `dense.py`, `musicnn.py`) holding its plain classifier (a
`GenreClassifier`, what prediction rebuilds from a checkpoint), which declares the features it trains on: the
feature cache's extractor (`features`), the cached array it reads (`cached`) and how cached rows become its inputs
(`pool`). Its record below names that classifier and the LightningModule that trains it by class path, says
whether it exports to ONNX and how it ranks among a run's models. Records import nothing: choosing a checkpoint
and answering through ONNX Runtime need no torch. `train.py --models`, the DataModule, checkpoint loading and
choosing, ONNX export and the reports all read the records; `register` adds a family from anywhere else.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field


def load(path: str) -> object:
    """The object a class path "package.module:Name" names."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


@dataclass(frozen=True)
class Family:
    """One model family.

    Args:
        name: its `--models` name, its option group (`--cnn.widths`) and its folder in checkpoints/<run>/.
        classifier: class path of the plain classifier prediction rebuilds (checkpoints name its class).
        lit: class path of the LightningModule that trains it (imported by training only).
        exportable: its whole pipeline is torch, so one ONNX graph holds it.
        preference: lower answers first when a run holds several families.
        legacy: the values that checkpoints and runs saved before a setting existed were trained with.
    """

    name: str
    classifier_path: str
    lit_path: str
    exportable: bool = True
    preference: int = 100
    legacy: dict = field(default_factory=dict)

    @property
    def class_name(self) -> str:
        return self.classifier_path.rpartition(":")[2]

    def classifier(self) -> type:
        """The classifier class (imports its module, and torch)."""
        return load(self.classifier_path)

    def lit(self) -> type:
        """The LightningModule class that trains this family (imports the training stack)."""
        return load(self.lit_path)

    def build(self, hparams: dict):
        """The classifier from a checkpoint's or a LightningModule's hyperparameters, `legacy` filling settings
        they predate."""
        return self.classifier().from_hparams({**self.legacy, **hparams})


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Adds (or replaces) a family; returns it."""
    _REGISTRY[family.name] = family
    return family


for _family in (  # the write-up's CNN, its dense baseline, then transfer from musicnn: the order runs train in
    Family("cnn", "genre_cnn.models.families.cnn:WindowClassifier", "genre_cnn.training.lit:LitCNN",
           preference=1, legacy={"stem": 0, "pitch_shift": 0}),  # runs from before these options had neither
    Family("dense", "genre_cnn.models.families.dense:HandcraftedClassifier", "genre_cnn.training.lit:LitDense",
           exportable=False, preference=2),  # its hand-crafted vector is computed with librosa, outside the graph
    Family("musicnn", "genre_cnn.models.families.musicnn:MusicnnClassifier", "genre_cnn.training.lit:LitMusicnn",
           preference=0),
):
    register(_family)


def all() -> dict[str, Family]:  # noqa: A001 - families.all() reads as what it is
    """Every family by name, in the order they were registered (the order train.py trains them in)."""
    return dict(_REGISTRY)


def best_first() -> dict[str, Family]:
    """Every family by name, the one whose answer is preferred first (preference, then name)."""
    return dict(sorted(_REGISTRY.items(), key=lambda item: (item[1].preference, item[0])))


def get(name: str) -> Family:
    """The family called `name`; KeyError naming the known ones otherwise."""
    if name not in _REGISTRY:
        raise KeyError(f"no model family {name!r} (known: {', '.join(all())})")
    return _REGISTRY[name]


def of(classifier: object) -> Family | None:
    """The family of a classifier: an instance, its class, or its class name as checkpoints store it."""
    if not isinstance(classifier, str):
        classifier = (classifier if isinstance(classifier, type) else type(classifier)).__name__
    return next((f for f in all().values() if f.class_name == classifier), None)

