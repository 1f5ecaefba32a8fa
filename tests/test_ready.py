"""How the ready model is made, as ordinary options of train.py (configs/ready.yaml): cross-fitting over groups of
clips keeps every held-out clip out of training and tests each once, the class-balanced loss learns a minority genre
that the unweighted one drowns, the members of an ensemble each learn on their own, and a cross-fitted run ships its
model (`--ship`).

    .venv/bin/python -m pytest -q tests/test_ready.py
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from genre_cnn.data.splits import Split, group_split
from genre_cnn.errors import SettingsError
from genre_cnn.models import families
from tests.conftest import DEMO_ARGS

KEYS = [f"rock/gtzan_mini/rock.{n:05d}.wav" for n in range(10)] + \
       [f"{g}/gtzan_unseen/{g}.{n:05d}.flac" for g in ("rock", "jazz") for n in range(70, 100)]
HALVES = {"A": ["*/gtzan_unseen/*.0007?.*", "*/gtzan_unseen/*.0008[0-4].*"],
          "B": ["*/gtzan_unseen/*.0008[5-9].*", "*/gtzan_unseen/*.0009?.*"]}  # as in configs/ready.yaml


def test_cross_fitting_tests_each_grouped_clip_once_and_never_trains_on_it():
    tested = []
    for fold, numbers in ((0, range(70, 85)), (1, range(85, 100))):
        split = group_split(KEYS, HALVES, fold)
        assert not set(split["train"]) & set(split["test"]) and split["val"] == []
        assert {int(k[-10:-5]) for k in split["test"]} == set(numbers) and len(split["test"]) == 30
        assert sorted(split["train"] + split["test"]) == sorted(KEYS)
        tested += split["test"]
    assert sorted(tested) == sorted(k for k in KEYS if "unseen" in k)


def test_groups_that_overlap_or_match_nothing_are_one_line():
    with pytest.raises(ValueError, match="is in groups A and B"):
        group_split(KEYS, {"A": ["rock/*"], "B": ["*/gtzan_unseen/*"]}, 0)
    with pytest.raises(SettingsError, match="--data.split.groups: no clip matches group B"):
        labels = [int(k.startswith("jazz")) for k in KEYS]
        Split("groups", groups={"A": ["rock/*"], "B": ["pop/*"]}).make(KEYS, labels, ["rock", "jazz"])
    with pytest.raises(SettingsError, match="--data.split.fold"):
        Split("groups", groups=HALVES, fold=2)


def fitted(x: np.ndarray, y: np.ndarray, genres: list[str], steps: int, **settings):
    """A GenreModule over a dense classifier of the vectors x (N, 91), fitted for `steps` batches of 32."""
    import lightning as L
    from torch.utils.data import DataLoader, TensorDataset

    from genre_cnn.audio.frontend import FrontEndConfig
    from genre_cnn.training.lit import build_module

    L.seed_everything(0, verbose=False)
    module = build_module(families.get("dense"), genres, FrontEndConfig(), settings)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    module.model.set_scaler(xt.double().mean(0), xt.double().std(0))
    module.set_class_counts(torch.bincount(yt, minlength=len(genres)))
    trainer = L.Trainer(max_steps=steps, max_epochs=-1, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    trainer.fit(module, DataLoader(TensorDataset(xt, yt), batch_size=32, shuffle=True))
    return module.eval()


def test_the_balanced_loss_recalls_a_rare_genre():
    rng = np.random.default_rng(0)
    y = np.array([0] * 190 + [1] * 10)  # 19:1
    x = rng.normal(size=(200, 91)).astype(np.float32)
    x[:, 0] += 1.5 * y  # the rare genre shifts one value: overlapping classes
    x_test = rng.normal(size=(400, 91)).astype(np.float32)
    y_test = np.array([0] * 200 + [1] * 200)
    x_test[:, 0] += 1.5 * y_test
    recall = {}
    for balanced in (False, True):
        module = fitted(x, y, ["common", "rare"], 300, widths=[], dropout=0.0, lr=0.01, balanced=balanced)
        with torch.no_grad():
            pred = module.model(torch.from_numpy(x_test)).argmax(-1).numpy()
        recall[balanced] = float(np.mean(pred[y_test == 1] == 1))
    assert recall[True] > recall[False] + 0.2, recall


def test_each_member_of_an_ensemble_learns_on_its_own_and_the_answer_is_their_mean():
    from genre_cnn.audio.frontend import FrontEndConfig
    from genre_cnn.training.lit import build_module

    module = build_module(families.get("musicnn"), ["a", "b", "c"], FrontEndConfig(), {"members": 3, "widths": [8]})
    x, y = torch.randn(6, 250), torch.tensor([0, 1, 2, 0, 1, 2])
    module.model.eval()  # no dropout: the same logits in both passes
    members = module.model.member_logits(x)  # (3, 6, 3)
    torch.testing.assert_close(module.model(x), members.mean(0))
    module.training_step((x, y), 0).backward()
    first = [p.grad.clone() for p in module.model.net.members[0].parameters()]
    module.zero_grad()
    with torch.no_grad():  # another second member: the first one's gradient does not move
        for p in module.model.net.members[1].parameters():
            p.add_(torch.randn_like(p))
    module.training_step((x, y), 0).backward()
    for before, p in zip(first, module.model.net.members[0].parameters(), strict=True):
        torch.testing.assert_close(p.grad, before)


@pytest.mark.slow
def test_a_cross_fitted_run_reports_out_of_fold_figures_and_ships_the_model_trained_on_every_clip(demo_dir, tmp_path):
    from genre_cnn.inference.onnx_predict import answer_path, shipped_onnx_path
    from genre_cnn.inference.predict import load_model
    from genre_cnn.training.train import main

    groups = json.dumps({"A": ["*/*.0000[0-2].wav"], "B": ["*/*.0000[3-5].wav"]})  # 3 + 3 clips of each genre
    ship = tmp_path / "ready" / "model.ckpt"
    (tmp_path / "ready").mkdir()
    (tmp_path / "ready" / "model.0123.onnx").write_text("a graph of an earlier build")
    result = main([*DEMO_ARGS, "--models", "[cnn]", "--cnn.widths", "[8]", "--cnn.stem", "0", "--output_root",
                   str(tmp_path), "--run_name", "x", "--data.split.kind", "groups", "--data.split.groups", groups,
                   "--cnn.balanced", "true", "--trainer.max_steps", "6", "--trainer.max_epochs", "-1",
                   "--ship", str(ship)])["cnn"]
    assert result["cross_fit"] == ["A", "B"] and result["clips"] == 24 and result["steps"] == 6
    kept = tmp_path / "checkpoints" / "x" / "cnn" / "refit.ckpt"
    assert ship.read_bytes() == kept.read_bytes()  # the model trained on every clip, as it was written
    model = load_model(ship)
    assert float(model.temperature) == pytest.approx(result["calibration"]["temperature"])
    graphs = sorted((tmp_path / "ready").glob("*.onnx"))
    graph = shipped_onnx_path(ship)
    assert graphs == sorted([graph, answer_path(graph)])  # its graphs beside it; an earlier build's removed
    assert "cross-fitting" in (tmp_path / "runs" / "x" / "report.md").read_text()
