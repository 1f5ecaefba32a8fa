"""Shared fixtures: a private project home per test session, the demo data set, one trained demo run."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[2] / "shared"
GTZAN_MINI = SHARED / "gtzan_mini"
GTZAN_SPLITS = SHARED / "gtzan_splits"

needs_gtzan_mini = pytest.mark.skipif(
    not (GTZAN_MINI / "genres").is_dir(),
    reason=f"real GTZAN clips not found at {GTZAN_MINI} (../shared/gtzan_mini beside the checkout)",
)


@pytest.fixture(scope="session", autouse=True)
def project_home(tmp_path_factory) -> Path:
    """Points data/ and the feature cache at a temporary folder, so tests never touch the user's."""
    home = tmp_path_factory.mktemp("home")
    old = os.environ.get("GENRE_CNN_HOME")
    os.environ["GENRE_CNN_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("GENRE_CNN_HOME", None)
    else:
        os.environ["GENRE_CNN_HOME"] = old


@pytest.fixture(scope="session")
def demo_dir(project_home) -> Path:
    from genre_cnn.data.demo import make_demo_dataset

    return make_demo_dataset(project_home / "data" / "demo", clips_per_genre=12, seconds=8.0)


DEMO_ARGS = ["--config", str(Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"),
             "--trainer.enable_progress_bar", "false"]


@pytest.fixture(scope="session")
def demo_run(project_home, demo_dir) -> dict:
    """Both models trained and tested once on the demo set: {"results", "root", "run"}."""
    from genre_cnn.training.train import main

    results = main([*DEMO_ARGS, "--run_name", "demo", "--output_root", str(project_home)])
    return {"results": results, "root": project_home, "run": "demo"}


@pytest.fixture
def without_verdict(monkeypatch):
    """Results as a model without an open-set detector gives them (no "music"): generated tones, which the ready
    model's detector judges not music, still get a genre in tests of what the commands do with one (workers=1)."""
    from genre_cnn.inference import predict

    real = predict.result

    def result(*args, **kwargs):
        out = real(*args, **kwargs)
        out.pop("music", None)
        return out

    monkeypatch.setattr(predict, "result", result)
