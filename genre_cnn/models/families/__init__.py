"""Model families: which ones genre_cnn knows, in one torch-free record per family; the rest of the package asks here.

    from genre_cnn.models import families
    families.get("cnn").classifier()      # WindowClassifier (imports torch only now)
    list(families.best_first())           # ["musicnn", "cnn", "dense"]: the order a run's models are preferred in
    python -m genre_cnn.models.families          # each family: its classifier, inputs, features and size

A family is one module of this package (`cnn.py`, `dense.py`, `musicnn.py`) holding its plain classifier (a
`GenreClassifier`, what training hands to its one LightningModule and prediction rebuilds from a checkpoint). The
classifier declares everything about the family: its settings (typed `__init__` arguments, the `--<family>.*`
options of train.py), their ranges (`bounds`), the values that checkpoints saved before a setting
existed were trained with (`legacy`), the features it trains on (`features`, `cached`, `pool`, `inputs`) and how
it loads weights. Its record below names that classifier by class path, says whether it exports to ONNX and how
it ranks among a run's models. Records import nothing: choosing a checkpoint and answering through ONNX Runtime
need no torch. `register` adds a family from anywhere else (a plugin, a test).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """One model family.

    Args:
        name: its `--models` name, its option group (`--cnn.widths`) and its folder in checkpoints/<run>/.
        classifier_path: "module:Class" of its plain classifier (checkpoints name the class).
        exportable: its whole pipeline is torch, so one ONNX graph holds it.
        preference: lower answers first when a run holds several families.
    """

    name: str
    classifier_path: str
    exportable: bool = True
    preference: int = 100

    @property
    def class_name(self) -> str:
        return self.classifier_path.rpartition(":")[2]

    def classifier(self) -> type:
        """The classifier class (imports its module, and torch)."""
        module, _, name = self.classifier_path.partition(":")
        return getattr(importlib.import_module(module), name)

    def build(self, hparams: dict):
        """The classifier from a checkpoint's or a run's hyperparameters (`GenreClassifier.from_hparams`: the
        family's `legacy` values fill settings they predate)."""
        return self.classifier().from_hparams(hparams)


_REGISTRY: dict[str, Family] = {}


def register(family: Family) -> Family:
    """Adds (or replaces) a family; returns it."""
    _REGISTRY[family.name] = family
    return family


def unregister(name: str) -> None:
    """Forgets the family called `name` (a plugin's, a test's)."""
    _REGISTRY.pop(name, None)


for _family in (  # the write-up's CNN, its dense baseline, transfer from musicnn
    Family("cnn", "genre_cnn.models.families.cnn:WindowClassifier", preference=1),
    Family("dense", "genre_cnn.models.families.dense:HandcraftedClassifier", exportable=False,
           preference=2),  # its hand-crafted vector is computed with librosa, outside the graph
    Family("musicnn", "genre_cnn.models.families.musicnn:MusicnnClassifier", preference=0),
):
    register(_family)


def all() -> dict[str, Family]:  # noqa: A001 - families.all() reads as what it is
    """Every family by name, in name order (the order train.py trains them in)."""
    return dict(sorted(_REGISTRY.items()))


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
