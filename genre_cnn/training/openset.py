"""The open-set detector of a model whose family offers one (`--musicnn.openset true`), fitted once its head is trained:
on the cached clip embeddings of the clips the model learnt from and of the run's non-music recordings
(`--data.negatives`), so that the checkpoint answers "music", "unfamiliar" or "not music" beside its genres.

    from genre_cnn.training.openset import fit_openset      # used by genre_cnn/training/fitting.py; no CLI of its own

The rule is genre_cnn.models.openset.fit_detector's, scored out of fold (5 folds): familiar within the distance that
keeps `openset_keep` of the training music; with negatives, music when the music probability reaches the
`1 - openset_keep` quantile of the training music's. Negatives are cached by the feature store like any clip (their
centred `clip_seconds`, a shorter one looped), down to 0.5 s, the shortest file prediction takes.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from genre_cnn.audio.decode import PREDICT_MIN_SECONDS
from genre_cnn.data.store import FeatureStore
from genre_cnn.models.openset import fit_detector
from genre_cnn.training.datamodule import GenreDataModule
from genre_cnn.training.lit import GenreModule
from genre_cnn.training.report import say


def negative_vectors(dm: GenreDataModule) -> np.ndarray | None:
    """The clip vectors (K, D) of `dm`'s non-music recordings, as its family's inputs (cached on first use), or None
    when the run names none."""
    source = dm.options["negatives"]
    if source is None:
        return None
    model = dm.classifier_class
    store = FeatureStore(clip_seconds=dm.store.clip_seconds, min_seconds=PREDICT_MIN_SECONDS, workers=dm.store.workers)
    store.prepare(source, dm.extractor)
    return np.asarray(store.clipset(source, dm.extractor, model.cached, model.pool).features)


def fit_openset(module: GenreModule, dm: GenreDataModule) -> dict | None:
    """Fits and attaches the detector of `module`'s classifier when its settings ask for one (`openset`), from the
    clips `dm` trains on; records what rebuilds it in the module's hyperparameters (what checkpoints save).
    Returns its figures for the report, or None."""
    classifier = module.model
    if not getattr(classifier, "hparams", {}).get("openset"):
        return None
    rows = dm.train_idx
    music, labels = np.asarray(dm.features[rows]), dm.labels[rows]  # (N, 250), (N,)
    negatives = negative_vectors(dm)  # (K, 250) or None
    detector = fit_detector(music, labels, negatives, classes=len(dm.genres), keep=classifier.hparams["openset_keep"],
                            music_gate=negatives is not None)
    classifier.set_detector(detector)
    module.hparams["openset"] = True
    module.hparams["openset_references"] = len(music)
    with torch.no_grad():
        accepted = 0.0 if negatives is None else float(
            (detector(torch.from_numpy(negatives.astype(np.float32)))[2] == 0).float().mean())
    figures = {"clips": len(music), "negatives": 0 if negatives is None else len(negatives),
               "max_distance": float(detector.max_distance), "music_floor": float(detector.music_floor),
               "negatives_accepted": accepted}
    said = (f"{figures['negatives']} non-music recordings ({dm.options['negatives'].describe()}); music when the "
            f"music probability is at least {figures['music_floor']:.3f} and familiar; {accepted:.1%} of those "
            "recordings pass (in sample)" if negatives is not None else
            "no non-music recordings (--data.negatives): what it turns away is called unfamiliar")
    say(f"open-set detector: fitted on {len(music)} clips; familiar within distance {figures['max_distance']:.2f} "
        f"(keeps {classifier.hparams['openset_keep']:.1%} of them out of fold); {said}")
    return figures


def write_detector(ckpt: Path, module: GenreModule) -> None:
    """Puts `module`'s fitted detector and what rebuilds it into the checkpoint `ckpt` (a validated fit's best.ckpt,
    written during the fit), atomically through the runs' one checkpoint writer."""
    from genre_cnn.training.runs import atomic_checkpoint_io

    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    detector = module.model.detector.state_dict()
    checkpoint["state_dict"].update({f"model.detector.{k}": v.cpu() for k, v in detector.items()})
    checkpoint["hyper_parameters"].update(openset=True, openset_references=module.hparams["openset_references"])
    atomic_checkpoint_io().save_checkpoint(checkpoint, ckpt)
