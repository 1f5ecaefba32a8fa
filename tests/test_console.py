"""What a user sees of a run: the console of `python train.py` (one line per phase, no Lightning noise),
report.md (which checkpoint was tested), TensorBoard's hyperparameters, --help, and the offline first run.

    .venv/bin/python -m pytest tests/test_console.py
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MODELS = ("cnn", "dense", "musicnn")  # train.py's default --models
NOISE = ["Total Flops", "Modules in train mode", "GPU available", "TPU available", "LeafSpec", "log_every_n_steps",
         "weights_only", "Restoring states", "Loaded model weights", "Tip:", "Test metric",
         "in eval mode at the start of training"]


@pytest.fixture(scope="module")
def console(project_home, demo_dir, tmp_path_factory) -> dict:
    """The demo with a refit, every model family, run as a user runs it: (stdout + stderr), the run folder."""
    out = tmp_path_factory.mktemp("console")
    cmd = [sys.executable, str(REPO / "train.py"), "--config", str(REPO / "configs" / "demo.yaml"),
           "--trainer.max_epochs", "2", "--refit", "true", "--output_root", str(out), "--run_name", "c"]
    env = {**os.environ, "GENRE_CNN_HOME": str(project_home)}  # the test session's own data/ and cache
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=out, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return {"text": proc.stdout + proc.stderr, "run": out / "runs" / "c"}


def test_console_has_a_line_per_phase_and_no_lightning_noise(console):
    text = console["text"]
    for noise in NOISE:
        assert noise not in text, f"{noise!r} in the console:\n{text[-3000:]}"
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines()]
    assert any(line.startswith("features: ") and " ready in " in line for line in lines)
    for name in MODELS:
        for phase, what in (("fit", "up to 2 epochs on"), ("refit", "train + val"), ("test", "refit.ckpt")):
            starts = [line for line in lines if line.startswith(f"{phase} {name}") and "done in" not in line]
            assert len(starts) == 1 and what in starts[0], (phase, name, starts)
            assert sum(line.startswith(f"{phase} {name}: done in ") for line in lines) == 1, (phase, name)
    assert "| tested checkpoint |" + " refit.ckpt |" * len(MODELS) in text


def test_report_says_which_checkpoint_was_tested_and_how_it_was_trained(console):
    report = (console["run"] / "report.md").read_text()
    assert "| validated fit: epochs |" + " 2 |" * len(MODELS) in report
    assert "| refit: epochs on train+val |" + " 2 |" * len(MODELS) in report
    assert "| validated fit: best val accuracy |" in report and "| epochs |" not in report
    assert "cnn: " in report and "refit.ckpt, a fresh model trained on train + val for 2 epochs" in report


def test_tensorboard_has_the_hyperparameters_with_the_test_metrics(console):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import plugin_data_pb2

    for name in MODELS:
        found = {}
        for events in (console["run"] / name).rglob("events.out.tfevents.*"):
            acc = EventAccumulator(str(events))
            acc.Reload()
            try:
                found.update(acc.PluginTagToContent("hparams"))
            except KeyError:  # an event file without hyperparameters (a validated fit's, before its refit)
                pass
        assert found, f"{name}: no hparams plugin data"
        data = plugin_data_pb2.HParamsPluginData.FromString(found["_hparams_/session_start_info"])
        hparams = dict(data.session_start_info.hparams)
        assert hparams["model"].string_value == name and hparams["data.batch_size"].number_value == 32
        assert hparams["data.source.class_path"].string_value.endswith(".Demo") and "frontend.n_fft" in hparams
        experiment = plugin_data_pb2.HParamsPluginData.FromString(found["_hparams_/experiment"]).experiment
        assert {m.name.tag for m in experiment.metric_infos} == {"hparams/clip_acc", "hparams/window_acc",
                                                                "hparams/macro_f1"}


def test_help_keeps_the_examples_one_per_line():
    from genre_cnn.training.train import build_parser

    text = build_parser().format_help()
    assert "\n    python train.py --models [cnn]" in text
    assert "--data.source Folder --data.source.data_dir ~/music" in text


def test_a_pipe_in_a_genre_name_keeps_the_table(tmp_path):
    import numpy as np

    from genre_cnn.training.report import metrics_from_confusion, side_by_side

    genres = ["r|b", "rock"]
    result = {**metrics_from_confusion(np.array([[2, 0], [1, 1]]), genres), "window_acc": 0.5, "epochs": 3,
              "val_acc": 0.5, "checkpoint": "x/best.ckpt", "train_seconds": 1.0}
    rows = [line for line in side_by_side({"cnn": result}).splitlines() if line.startswith("|")]
    assert "| r\\|b |" in side_by_side({"cnn": result})
    assert {line.replace("\\|", "").count("|") for line in rows} == {3}  # every row has its two cells


def _no_network(request, timeout=None):
    raise urllib.error.URLError(socket.gaierror(-3, "Temporary failure in name resolution"))


def test_offline_first_run_says_what_works_and_leaves_no_run_folder(tmp_path, monkeypatch, project_home):
    from genre_cnn.data.download import DownloadError
    from genre_cnn.training.train import main

    monkeypatch.setattr(urllib.request, "urlopen", _no_network)
    monkeypatch.setenv("GENRE_CNN_HOME", str(tmp_path / "home"))  # no GTZAN there
    with pytest.raises(DownloadError) as err:
        main(["--output_root", str(tmp_path)])
    message = str(err.value)
    assert "resume" not in message and "no network" in message and "name resolution" in message
    assert ".venv/bin/python train.py --config configs/mini.yaml" in message and "gtzan_mini" in message
    assert ".venv/bin/python train.py --config configs/demo.yaml" in message
    assert not (tmp_path / "runs").exists() and not (tmp_path / "checkpoints").exists()


def test_interrupted_download_says_run_again_to_resume(tmp_path, monkeypatch):
    from genre_cnn.data.download import DownloadError, download_file

    class Broken:  # a server that answers, sends one block, then the connection drops
        status, length = 200, 100
        sent = False

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def read(self, n):
            if self.sent:
                raise ConnectionResetError("Connection reset by peer")
            self.sent = True
            return b"x" * 10

    monkeypatch.setattr(urllib.request, "urlopen", lambda request, timeout=None: Broken())
    with pytest.raises(DownloadError, match="interrupted after .* run again to resume"):
        download_file("https://example.org/genres.tar.gz", tmp_path / "genres.tar.gz", None, progress=False)
    assert (tmp_path / "genres.tar.gz.part").stat().st_size == 10
