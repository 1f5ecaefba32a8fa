"""Which model answers without --ckpt: the latest run trained on real music, else the ready model; a run on the
generated demo clips is never chosen implicitly, and every answer says which model answered and why."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import torch

from genre_cnn.data.demo import DEMO_GENRES
from genre_cnn.models import checkpoint
from genre_cnn.models.checkpoint import choose_default, dataset_kind, default_checkpoint

UNSEEN_ROCK = Path(__file__).resolve().parents[2] / "shared" / "gtzan_unseen" / "genres" / "rock" / "rock.00080.flac"


def _run(root: Path, name: str, dataset: str | None, age: float, model: str = "cnn") -> Path:
    """A run folder as train.py leaves it: checkpoints/<name>/<model>/best.ckpt and runs/<name>/config.yaml."""
    ckpt = root / "checkpoints" / name / model / "best.ckpt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.touch()
    os.utime(ckpt, (time.time() - age, time.time() - age))
    if dataset is not None:
        (root / "runs" / name).mkdir(parents=True, exist_ok=True)
        (root / "runs" / name / "config.yaml").write_text(f"models:\n- {model}\ndata:\n  dataset: {dataset}\n"
                                                         f"  data_dir: null\nseed: 0\n")
    return ckpt


def test_a_demo_run_is_skipped_for_the_latest_real_run(tmp_path):
    real = _run(tmp_path, "real", "folder", age=100)
    _run(tmp_path, "demo", "demo", age=1)  # newer, but trained on generated clips
    path, why = choose_default(tmp_path)
    assert path == real and "latest run on real music" in why


def test_only_demo_runs_fall_back_to_the_ready_model_and_say_why(tmp_path, monkeypatch):
    ready = tmp_path / "ready.ckpt"
    ready.touch()
    monkeypatch.setattr(checkpoint, "READY_MODEL", ready)
    _run(tmp_path, "2026-demo", "demo", age=1)
    path, why = choose_default(tmp_path)
    assert path == ready and "2026-demo" in why and "generated" in why
    assert default_checkpoint(tmp_path / "empty") == ready


def test_the_kind_of_an_old_checkpoint_without_its_run_config_comes_from_its_contents(tmp_path):
    demo, real = list(DEMO_GENRES), ["rock", "jazz"]
    for name, genres, data in (("a", demo, None), ("b", real, None), ("c", real, {"dataset": "demo"}),
                               ("d", demo, {"dataset": "gtzan"})):
        ckpt = _run(tmp_path, name, None, age=1)
        saved = {"genre_cnn_class": "WindowClassifier", "hyper_parameters": {"genres": genres}, "state_dict": {}}
        torch.save({**saved, **({"datamodule_hyper_parameters": data} if data else {})}, ckpt)
    kinds = {name: dataset_kind(tmp_path / "checkpoints" / name / "cnn" / "best.ckpt") for name in "abcd"}
    assert kinds == {"a": "generated", "b": "real", "c": "generated", "d": "real"}


@pytest.mark.slow
@pytest.mark.skipif(not UNSEEN_ROCK.is_file(), reason=f"real GTZAN clip not found at {UNSEEN_ROCK} (../shared)")
def test_after_training_the_demo_a_real_clip_is_answered_by_the_ready_model(demo_run, capsys):
    """The session's demo run (configs/demo.yaml, trained into GENRE_CNN_HOME) is the only run there."""
    from genre_cnn.app.cli import main
    from genre_cnn.inference.predict import READY_MODEL, load_model

    assert os.environ["GENRE_CNN_HOME"] == str(demo_run["root"])
    assert main(["predict", str(UNSEEN_ROCK), "--no-progress"]) == 0
    out = capsys.readouterr().out
    model_line = out.splitlines()[0]
    assert model_line.startswith(f"model: {READY_MODEL} ") and "generated" in model_line and "--ckpt" in model_line
    assert main(["predict", str(UNSEEN_ROCK), "--no-progress", "--json"]) == 0
    answer = json.loads(capsys.readouterr().out)[0]
    assert list(answer["probabilities"]) == load_model(READY_MODEL).genres  # the ten genres, not the demo's four
    assert "demo" in answer["model"] and str(READY_MODEL) in answer["model"]
