"""A personal model end to end: a small tagged library (generated audio) trained through train.py with
configs/library.yaml, its report, and the model predict uses by default afterwards, named after the library.

    .venv/bin/python -m pytest -q tests/test_library_train.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.models.musicnn import WeightsNotFound, wheel_checkpoint

REPO = Path(__file__).resolve().parents[1]
RATE = 16000


def _wheel() -> bool:
    try:
        return wheel_checkpoint() is not None
    except WeightsNotFound:
        return False


def sound(genre: str, seed: int, seconds: float = 4.0) -> np.ndarray:
    """Seconds of a made-up genre: sustained chords (Classical), noise bursts (Noise) or short clicks (Clicks)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * RATE)) / RATE
    if genre == "Classical":
        return sum(0.1 * np.sin(2 * np.pi * f * (1 + 0.01 * rng.random()) * t) for f in (220, 277, 330, 440))
    if genre == "Noise":
        return 0.3 * rng.standard_normal(t.size) * (np.sin(2 * np.pi * (2 + rng.random()) * t) > 0)
    beat = t % (1 / (4 + 4 * rng.random()))  # seconds since the last click, 4 to 8 a second
    return 0.5 * np.sin(2 * np.pi * 1000 * t) * np.exp(-beat / 0.01)


@pytest.mark.slow
@pytest.mark.skipif(not _wheel(), reason="musicnn wheel not installed: run `pip install --no-deps musicnn==0.1.0`")
def test_a_library_trains_through_train_py_and_becomes_the_model_that_answers(tmp_path):
    from mutagen.flac import FLAC

    from genre_cnn.inference.api import predict_file
    from genre_cnn.inference.predict import load_model
    from genre_cnn.models.checkpoint import choose_default
    from genre_cnn.training.train import main

    lib = tmp_path / "Music"
    for g, genre in enumerate(("Classical", "Noise", "Clicks")):
        for artist in range(2):
            for i in range(4):
                path = lib / f"{genre} Artist {artist}" / f"{i}.flac"
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(path, sound(genre, 100 * g + 10 * artist + i).astype(np.float32), RATE)
                audio = FLAC(path)
                audio["genre"], audio["artist"] = [genre.lower() if i % 2 else genre], [f"{genre} Artist {artist}"]
                audio.save()
    short = lib / "Clicks Artist 0" / "jingle.flac"  # too short to hear: skipped, and not counted as heard
    sf.write(short, sound("Clicks", 999, seconds=0.5).astype(np.float32), RATE)
    audio = FLAC(short)
    audio["genre"], audio["artist"] = ["Clicks"], ["Clicks Artist 0"]
    audio.save()
    results = main(["--config", str(REPO / "configs" / "library.yaml"), "--data.source.data_dir", str(lib),
                    "--data.source.min_tracks", "4", "--data.split.num_folds", "2", "--trainer.max_steps", "60",
                    "--musicnn.members", "2", "--data.features.clip_seconds", "4", "--data.features.workers", "1",
                    "--trainer.enable_progress_bar", "false", "--output_root", str(tmp_path / "out"),
                    "--run_name", "mine"])
    result = results["musicnn"]
    assert result["cross_fit"] == ["1", "2"] and result["clips"] == 24 and len(result["per_genre"]) == 3
    report = (tmp_path / "out" / "runs" / "mine" / "report.md").read_text()
    assert f"## What the model learnt of the library {lib}" in report and "| Clicks | 8 | 2 |" in report
    assert "24 tracks of 3 genres" in report and "besides 1 whose audio could not be used" in report
    figures = json.loads((tmp_path / "out" / "runs" / "mine" / "library.json").read_text())["genres"]
    assert figures["Classical"]["ready_recall"] is not None and figures["Noise"]["ready_recall"] is None
    chosen, why = choose_default(tmp_path / "out")
    assert chosen == Path(result["checkpoint"]) and chosen.name == "refit.ckpt" and "real music" in why
    model = load_model(chosen)
    assert model.genres == ["Classical", "Clicks", "Noise"]
    assert model.trained_on == f"trained on the library {lib}, 24 clips of 3 genres"
    answer = predict_file(model, lib / "Noise Artist 1" / "2.flac")
    assert answer["top"][0]["genre"] in model.genres and len(answer["probabilities"]) == 3
