"""Hostile inputs and interrupted work: what a user pointing genre_cnn at a messy folder needs to hold.

Bad-file loading itself is unit-tested in test_audio.py, the cache kill in test_cache.py, checkpoint
loading in test_predict.py; this module puts them together as a user meets them.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from tests.conftest import DEMO_ARGS

REPO = Path(__file__).resolve().parents[1]
SR = 22050
GOOD_PER_GENRE = 12


def hostile_folder(root: Path, demo_dir: Path) -> dict[str, Path]:
    """The demo clips plus one of every kind of bad file; returns the bad files by kind."""
    shutil.copytree(demo_dir, root, ignore=shutil.ignore_patterns(".*"))
    t = np.arange(int(4 * SR)) / SR
    bad = {
        "corrupt_header": root / "noise" / "corrupt.wav",
        "truncated": root / "noise" / "truncated.wav",
        "zero_length": root / "techno" / "empty.wav",
        "text_as_wav": root / "techno" / "readme.wav",
        "one_second": root / "ambient" / "short.wav",
        "silent": root / "ambient" / "silent.wav",
        "unreadable": root / "chiptune" / "locked.wav",
    }
    sf.write(bad["corrupt_header"], 0.3 * np.sin(2 * np.pi * 440 * t), SR)
    data = bytearray(bad["corrupt_header"].read_bytes())
    data[:4] = b"XXXX"
    bad["corrupt_header"].write_bytes(bytes(data))
    sf.write(bad["truncated"], 0.3 * np.sin(2 * np.pi * 440 * t), SR)
    bad["truncated"].write_bytes(bad["truncated"].read_bytes()[:30])
    bad["zero_length"].write_bytes(b"")
    bad["text_as_wav"].write_text("definitely not audio\n")
    sf.write(bad["one_second"], 0.3 * np.sin(2 * np.pi * 440 * t[:SR]), SR)
    sf.write(bad["silent"], np.zeros(4 * SR), SR)
    sf.write(bad["unreadable"], 0.3 * np.sin(2 * np.pi * 440 * t), SR)
    bad["unreadable"].chmod(0)
    # usable but unusual: 48 kHz stereo, a 10-minute file, NaN samples, unknown extensions, an empty genre
    t48 = np.arange(int(8 * 48000)) / 48000
    square = 0.2 * np.sign(np.sin(2 * np.pi * 880 * t48))
    bass = 0.4 * np.sin(2 * np.pi * 110 * t48)  # a different right channel: only their mean is the mono file
    sf.write(root / "chiptune" / "stereo48k.wav", np.stack([square, bass], axis=1), 48000)
    long = np.tile(sf.read(demo_dir / "techno" / "techno.00000.wav")[0], 75)  # 10 minutes
    sf.write(root / "techno" / "ten_minutes.flac", long, SR)
    nan = sf.read(demo_dir / "noise" / "noise.00000.wav")[0]
    nan[1000:3000] = np.nan
    nan[5000] = np.inf
    nan[6000:6100] = -np.inf
    sf.write(root / "noise" / "with_nan.wav", nan, SR, subtype="FLOAT")
    (root / "noise" / "cover.jpg").write_bytes(b"\xff\xd8\xff")
    (root / "empty_genre").mkdir()
    return bad


@pytest.fixture
def unreadable_as_root(monkeypatch):
    """As root, chmod 0 does not stop reading: make `locked.wav` fail as it would for a user."""
    import soundfile

    for name in ("info", "read", "SoundFile"):  # every way genre_cnn.audio.decode opens a file with soundfile
        real = getattr(soundfile, name)

        def refuse(path, *args, real=real, **kw):
            writing = "w" in str(kw.get("mode", args[0] if args and isinstance(args[0], str) else "r"))
            if os.fsdecode(path).endswith("locked.wav") and not writing:
                raise PermissionError(13, "Permission denied", str(path))
            return real(path, *args, **kw)

        monkeypatch.setattr(soundfile, name, refuse)


@pytest.mark.slow
def test_training_skips_every_bad_file_with_one_line_each(project_home, demo_dir, tmp_path, caplog,
                                                          unreadable_as_root):
    from genre_cnn.training.train import main

    root = tmp_path / "messy"
    bad = hostile_folder(root, demo_dir)
    with caplog.at_level(logging.WARNING):
        results = main([*DEMO_ARGS, "--data.source", "Folder", "--data.source.data_dir", str(root),
                        "--data.features.workers", "1", "--output_root", str(tmp_path), "--run_name", "messy",
                        "--trainer.max_epochs", "3"])
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped ")]
    for kind, path in bad.items():
        lines = [m for m in skipped if str(path) in m]
        assert len(lines) == 1, f"{kind}: {lines}"
        assert "\n" not in lines[0]
    assert len(skipped) == len(bad)
    assert f"{len(bad)} of {4 * GOOD_PER_GENRE + len(bad) + 3} file(s) skipped" in caplog.text
    assert caplog.text.count("unknown extensions (cover.jpg)") == 1
    assert caplog.text.count("empty genre folder") == 1
    for r in results.values():  # trained on the rest, NaN file included, without NaN
        assert np.isfinite(r["val_acc"]) and r["clip_acc"] > 0.5


def test_the_usable_odd_files_of_the_messy_folder_load_as_documented(demo_dir, tmp_path):
    """Stereo is the mean of both channels (resampled to 22050 Hz); NaN and +-inf samples become 0."""
    import librosa

    from genre_cnn.audio.decode import load_audio

    root = tmp_path / "messy"
    hostile_folder(root, demo_dir)
    stereo, sr = sf.read(root / "chiptune" / "stereo48k.wav")  # (samples, 2) as written (16-bit)
    assert np.abs(stereo[:, 0] - stereo[:, 1]).max() > 0.1
    mean = librosa.resample(stereo.mean(axis=1), orig_sr=sr, target_sr=SR, res_type="soxr_hq")
    y = load_audio(root / "chiptune" / "stereo48k.wav", 22050)
    assert len(y) == len(mean)
    assert np.abs(y - mean).max() < 1e-4  # float32 arithmetic; keeping one channel is off by > 0.1
    raw = sf.read(root / "noise" / "with_nan.wav", dtype="float32")[0]
    y = load_audio(root / "noise" / "with_nan.wav", 22050)
    bad = ~np.isfinite(raw)
    assert np.isnan(raw).any() and np.isposinf(raw).any() and np.isneginf(raw).any()
    assert (y[bad] == 0).all()
    np.testing.assert_array_equal(y[~bad], np.clip(raw[~bad], -1, 1))


@pytest.mark.slow
def test_all_bad_folder_is_a_one_line_error_naming_it(tmp_path):
    for g in ("rock", "jazz"):
        (tmp_path / "bad" / g).mkdir(parents=True)
        (tmp_path / "bad" / g / "x.wav").write_text("nope")
    env = {**os.environ, "GENRE_CNN_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--data.source", "Folder", "--data.source.data_dir",
                           str(tmp_path / "bad")], capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: no usable audio file in") and str(tmp_path / "bad") in last
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_missing_dataset_offline_says_what_to_do(tmp_path):
    env = {**os.environ, "GENRE_CNN_HOME": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(REPO / "train.py"), "--data.source.download", "false"],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "configs/demo.yaml" in proc.stderr and "data_dir" in proc.stderr


@pytest.mark.slow
def test_training_killed_after_an_epoch_resumes_from_last(project_home, demo_dir, tmp_path):
    ckpt = tmp_path / "checkpoints" / "kill" / "cnn" / "last.ckpt"
    cmd = [sys.executable, str(REPO / "train.py"), *DEMO_ARGS, "--models", "[cnn]", "--output_root", str(tmp_path),
           "--run_name", "kill", "--trainer.max_epochs", "30", "--patience", "100"]
    env = {**os.environ, "GENRE_CNN_HOME": str(project_home)}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not ckpt.exists():
        time.sleep(0.1)
    time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert ckpt.exists(), "no checkpoint was written before the kill"
    killed_at = torch.load(ckpt, weights_only=True)["epoch"]
    assert killed_at < 29, "the kill should land part-way"
    resume = [*cmd[:-4], "--trainer.max_epochs", str(killed_at + 3), "--patience", "100", "--resume", "true"]
    done = subprocess.run(resume, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"Restoring states from the checkpoint path at {ckpt}" in done.stderr
    final = torch.load(ckpt, weights_only=True)
    assert final["epoch"] == killed_at + 2  # the last of max_epochs = killed_at + 3 epochs
    # continued from where it stopped, not from zero: each epoch's train/loss logged once (the epoch in
    # flight at the kill may be logged twice)
    from tests.test_train import scalars

    steps = [step for step, _ in scalars(tmp_path / "runs" / "kill" / "cnn")["train/loss"]]
    assert len(set(steps)) == killed_at + 3 and len(steps) <= killed_at + 4
    assert (tmp_path / "runs" / "kill" / "report.md").is_file()


def test_split_changes_only_with_the_data_seed(tmp_path):
    from genre_cnn.data.splits import random_split

    keys = [f"g{g}/{i}.wav" for g in range(4) for i in range(20)]
    labels = [g for g in range(4) for _ in range(20)]
    assert random_split(keys, labels, seed=0) == random_split(keys, labels, seed=0)
    assert random_split(keys, labels, seed=0) != random_split(keys, labels, seed=1)
    from genre_cnn.training.train import build_parser

    cfg = build_parser().parse_args(["--seed", "5"])
    assert cfg.data.split.seed == 0  # the training seed leaves the split alone


def test_a_failed_checkpoint_save_keeps_the_previous_file(tmp_path, monkeypatch):
    from genre_cnn.training.runs import atomic_checkpoint_io

    io = atomic_checkpoint_io()
    path = tmp_path / "last.ckpt"
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)

    def dying_save(obj, f):
        f.write(b"half a checkpoint")
        raise KeyboardInterrupt  # as if killed mid-write

    monkeypatch.setattr(torch, "save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3)}, path)
    assert torch.load(path, weights_only=True)["epoch"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left behind


@pytest.mark.slow
def test_predict_on_the_messy_folder(demo_run, demo_dir, tmp_path, capsys, unreadable_as_root):
    import json

    from genre_cnn.app.cli import main

    root = tmp_path / "messy"
    bad = hostile_folder(root, demo_dir)
    del bad["one_second"]  # long enough for prediction (0.5 s and up), looped to one window
    ckpt = demo_run["root"] / "checkpoints" / "demo" / "cnn" / "best.ckpt"
    # one process: the unreadable_as_root patch does not reach worker processes
    code = main(["predict", str(root), "--json", "--no-progress", "--ckpt", str(ckpt), "--workers", "1"])
    out, err = capsys.readouterr()
    assert code == 0
    rows = json.loads(out)
    results = [r for r in rows if "error" not in r]
    assert {r["file"] for r in rows if "error" in r} == {str(p) for p in bad.values()}
    assert len(results) == 4 * GOOD_PER_GENRE + 4  # the demo clips, stereo 48 kHz, 10 minutes, NaN, 1 s
    for r in results:
        probs = list(r["probabilities"].values())
        assert np.isfinite(probs).all() and abs(sum(probs) - 1) < 1e-4
    lines = err.strip().splitlines()
    for kind, path in bad.items():
        assert sum(str(path) in line for line in lines) == 1, f"{kind}: {lines}"
    assert "Traceback" not in err
    only_bad = tmp_path / "only_bad"
    only_bad.mkdir()
    shutil.copy(bad["text_as_wav"], only_bad / "a.wav")
    shutil.copy(bad["silent"], only_bad / "b.wav")
    assert main(["predict", str(only_bad), "--json", "--no-progress", "--ckpt", str(ckpt)]) == 1
