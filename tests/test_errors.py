"""One error path: a problem the user can fix is one line and an exit code; a bug keeps its traceback.

    .venv/bin/python -m pytest -q tests/test_errors.py            # -m "not slow" skips the subprocess runs

Covers genre_cnn.errors.run_command as `genre-cnn` and `python train.py` use it, a closed output pipe, Ctrl-C
(with worker processes), and the catch site of prediction that must not swallow bugs as unreadable files.
"""

from __future__ import annotations

import importlib
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.app import cli
from genre_cnn.errors import GenreCnnError
from genre_cnn.inference.predict import READY_MODEL, predict_one
from genre_cnn.models.musicnn import WeightsNotFound
from genre_cnn.training import train as train_module

PACKAGE = Path(__file__).resolve().parents[1] / "genre_cnn"


def write_clip(path: Path, seconds: float = 5.0, sr: int = 22050) -> Path:
    t = np.arange(int(seconds * sr)) / sr
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32), sr)
    return path


class OddError(GenreCnnError):
    exit_code = 7


def test_any_user_error_of_a_subcommand_is_one_line_and_its_exit_code(monkeypatch, capsys):
    def fails(args):
        raise OddError("something the user can fix")

    monkeypatch.setattr(cli, "predict", fails)
    assert cli.main(["predict", "x.wav"]) == 7
    assert capsys.readouterr().err == "error: something the user can fix\n"
    # an error class no subcommand names (the musicnn wheel missing) takes the same path
    monkeypatch.setattr(cli, "sort", lambda args: (_ for _ in ()).throw(WeightsNotFound("musicnn weights not found")))
    assert cli.main(["sort", "a", "b"]) == 1
    assert capsys.readouterr().err == "error: musicnn weights not found\n"


def test_a_bad_checkpoint_is_exit_code_2_without_traceback(tmp_path, capsys):
    bad = tmp_path / "model.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert cli.main(["predict", str(write_clip(tmp_path / "a.wav")), "--ckpt", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(bad) in err and err.count("\n") == 1


def test_a_bug_keeps_its_traceback(monkeypatch):
    def bug(args):
        raise ValueError("a programming error")

    monkeypatch.setattr(cli, "predict", bug)
    with pytest.raises(ValueError, match="a programming error"):
        cli.main(["predict", "x.wav"])


def test_both_training_entries_take_the_same_path(monkeypatch, capsys):
    def fails(args):
        raise WeightsNotFound("musicnn weights not found")

    monkeypatch.setattr(train_module, "main", fails)
    assert cli.main(["train", "--models", "[musicnn]"]) == 1  # `genre-cnn train`
    assert capsys.readouterr().err == "error: musicnn weights not found\n"
    with pytest.raises(SystemExit) as exit_:  # `python train.py`
        train_module.cli(["--models", "[musicnn]"])
    assert exit_.value.code == 1
    assert capsys.readouterr().err == "error: musicnn weights not found\n"


def test_no_error_class_has_a_second_builtin_base():
    """`except ValueError` must not catch a user's error, nor `except AudioError` a bug."""
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] != "__main__":
            importlib.import_module(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    found, todo = [], [GenreCnnError]
    while todo:
        found += todo[-1].__subclasses__()
        todo += todo.pop().__subclasses__()
    ours = [c for c in found if c.__module__.startswith("genre_cnn.")]
    assert len(ours) >= 8, ours
    for cls in ours:
        builtin = [b.__name__ for b in cls.__mro__ if b.__module__ == "builtins" and b not in (Exception,
                                                                                               BaseException, object)]
        assert builtin == [], f"{cls.__name__} also derives from {builtin}"


class Runner:
    """The interface predict_track uses, with a model that fails in a chosen way."""

    sample_rate, genres, clip_samples, segment_samples = 22050, ["a", "b"], None, None

    def __init__(self, output):
        self.output = output

    def window_probs(self, y: np.ndarray) -> np.ndarray:
        if isinstance(self.output, Exception):
            raise self.output
        return np.full((2, 2), self.output, dtype=np.float32)  # (K, n)


def test_prediction_reports_a_bug_as_a_bug_and_a_damaged_model_as_such(tmp_path):
    clip = write_clip(tmp_path / "song.wav", seconds=4.0)
    with pytest.raises(ValueError, match="index out of range"):  # a bug keeps its traceback, not "unreadable"
        predict_one(Runner(ValueError("index out of range")), clip)
    result, line = predict_one(Runner(np.nan), clip)
    assert result is None and line.startswith(f"{clip}: the model gave non-finite probabilities")


def run_cli(args: list[str], home: Path, **kw) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONUNBUFFERED"}  # stdout buffered, as for a user
    env.update(GENRE_CNN_HOME=str(home), OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "genre_cnn.app.cli", *args], env=env, cwd=home,
                            stderr=subprocess.PIPE, **kw)


@pytest.mark.slow
def test_a_closed_output_pipe_ends_quietly(tmp_path):
    """`genre-cnn predict ... | head -1`: the reader is gone before the answer is written."""
    read, write = os.pipe()
    os.close(read)
    proc = run_cli(["predict", str(write_clip(tmp_path / "a.wav")), "--ckpt", str(READY_MODEL)], tmp_path,
                   stdout=write)
    os.close(write)
    err = proc.communicate(timeout=300)[1].decode()
    assert proc.returncode == 141, err[-2000:]
    assert "Traceback" not in err and "Error" not in err, err[-2000:]


def test_a_worker_leaves_ctrl_c_to_its_parent():
    """A worker (set up by die_with_parent) survives the SIGINT the terminal sends to the whole group, with no
    traceback of its own (one starting up would print "Exception in initializer" and break the pool)."""
    code = ("import os, sys, time\nfrom genre_cnn.paths import die_with_parent\ndie_with_parent(os.getppid())\n"
            "print('ready', flush=True)\ntime.sleep(2)\nprint('done', flush=True)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert (proc.returncode, out, err) == (0, "done\n", "")


@pytest.mark.slow
def test_ctrl_c_is_one_line_and_exit_code_130_with_workers(tmp_path):
    """Ctrl-C goes to the whole process group (the command and its workers), as a terminal sends it."""
    for i in range(8):
        write_clip(tmp_path / "music" / f"{i}.wav", seconds=30.0)
    proc = run_cli(["predict", str(tmp_path / "music"), "--workers", "2", "--engine", "torch"], tmp_path,
                   stdout=subprocess.DEVNULL, start_new_session=True)
    seen = b""
    while b"1/8" not in seen:  # the workers are up and answering: the middle of the job
        chunk = os.read(proc.stderr.fileno(), 256)
        assert chunk, seen.decode()[-2000:]
        seen += chunk
    os.killpg(proc.pid, signal.SIGINT)
    err = (seen + proc.communicate(timeout=300)[1]).decode()
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in err and err.rstrip().endswith("interrupted"), err[-2000:]
