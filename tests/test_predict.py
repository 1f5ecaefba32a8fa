"""`genre-cnn predict` on the demo set: the console script's JSON, CSV and table output, folders, unreadable
files and exit codes; safe checkpoint loading that refuses corrupt files and pickled code."""

from __future__ import annotations

import csv
import io
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from genre_cnn.app.cli import main
from genre_cnn.data.demo import DEMO_GENRES
from genre_cnn.inference.api import predict_files
from genre_cnn.inference.predict import CheckpointError, latest_checkpoint, load_model

REPO = Path(__file__).resolve().parents[1]


def checkpoint(demo_run, model: str = "cnn") -> Path:
    return demo_run["root"] / "checkpoints" / demo_run["run"] / model / "best.ckpt"


def demo_files(demo_dir: Path, per_genre: int = 2) -> list[Path]:
    """`per_genre` clips of every demo genre that no model was trained on: the demo set's generator with
    another seed than the training set's (seed 0), written beside it."""
    from genre_cnn.data.demo import make_demo_dataset

    root = make_demo_dataset(demo_dir.parent / "demo-unseen", clips_per_genre=2, seconds=8.0, seed=1)
    return [f for g in DEMO_GENRES for f in sorted((root / g).glob("*.wav"))[:per_genre]]


def run_cli(demo_run, *args) -> subprocess.CompletedProcess:
    env = {**os.environ, "GENRE_CNN_HOME": str(demo_run["root"])}
    return subprocess.run([sys.executable, "-m", "genre_cnn.app.cli", *map(str, args)], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def check_results(results: list[dict], files: list[Path]) -> float:
    """Every file's probabilities are a distribution over the demo genres; returns the top-1 accuracy."""
    assert [r["file"] for r in results] == [str(f) for f in files]
    for r in results:
        probs = r["probabilities"]
        assert list(probs) == list(DEMO_GENRES)
        assert abs(sum(probs.values()) - 1.0) < 1e-4, r
        assert r["top"][0]["genre"] == max(probs, key=probs.get)
        top = [t["probability"] for t in r["top"]]
        assert top == sorted(top, reverse=True)
    return sum(r["top"][0]["genre"] == Path(r["file"]).parent.name for r in results) / len(results)


def test_console_script_predicts_the_true_genre_of_most_demo_files(demo_run, demo_dir):
    files = demo_files(demo_dir)
    proc = run_cli(demo_run, "predict", *files, "--json", "--no-progress", "--ckpt", checkpoint(demo_run, "cnn"))
    assert proc.returncode == 0, proc.stderr
    # a library's new warning is no failure; our own error lines, a traceback or a file reported are
    ours_wrong = [line for line in proc.stderr.splitlines()
                  if "Traceback" in line or "Error" in line or line.startswith("error") or any(
                      str(f) in line for f in files)]
    assert not ours_wrong, proc.stderr
    results = json.loads(proc.stdout)
    assert all(len(r["top"]) == 3 for r in results)
    assert check_results(results, files) >= 0.75


def test_dense_checkpoint_predicts_too(demo_run, demo_dir, capsys):
    files = demo_files(demo_dir)
    code = main(["predict", *map(str, files), "--ckpt", str(checkpoint(demo_run, "dense")), "--json",
                 "--no-progress", "--top-k", "2"])
    results = json.loads(capsys.readouterr().out)
    assert code == 0
    assert all(len(r["top"]) == 2 for r in results)
    assert check_results(results, files) >= 0.75


def test_csv_has_a_header_and_one_row_per_file(demo_run, demo_dir, capsys):
    files = demo_files(demo_dir, per_genre=1)
    code = main(["predict", *map(str, files), "--ckpt", str(checkpoint(demo_run)), "--csv", "--no-progress"])
    assert code == 0
    rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert rows[0] == ["file", "prediction", *DEMO_GENRES, "error"]
    assert [r[0] for r in rows[1:]] == [str(f) for f in files]
    for row in rows[1:]:
        assert row[-1] == ""
        probs = [float(p) for p in row[2:-1]]
        assert abs(sum(probs) - 1) < 1e-4
        assert row[1] == DEMO_GENRES[probs.index(max(probs))]


def test_table_shows_each_file_with_its_top_genres(demo_run, demo_dir, capsys):
    file = demo_files(demo_dir, per_genre=1)[0]
    assert main(["predict", str(file), "--ckpt", str(checkpoint(demo_run)), "--no-progress"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1].split() == ["file", "top-1", "top-2", "top-3"]
    row = out[-1].split()
    assert row[0] == str(file) and len(row) == 7 and all(p.endswith("%") for p in row[2::2])


def test_a_folder_expands_recursively_to_its_audio_files(demo_run, demo_dir, tmp_path, capsys):
    nested = tmp_path / "music" / "deeper"
    nested.mkdir(parents=True)
    copies = [shutil.copy(demo_dir / "chiptune" / "chiptune.00000.wav", tmp_path / "music" / "a.wav"),
              shutil.copy(demo_dir / "ambient" / "ambient.00000.wav", nested / "b.WAV")]
    (nested / "notes.txt").write_text("not audio")
    assert main(["predict", str(tmp_path / "music"), "--ckpt", str(checkpoint(demo_run)), "--json",
                 "--no-progress"]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in results] == [str(p) for p in copies]


def test_an_unreadable_file_is_one_stderr_line_and_fails_only_alone(demo_run, demo_dir, tmp_path, capsys):
    bad = tmp_path / "song.wav"
    bad.write_text("this is a text file, not audio\n")
    good = demo_files(demo_dir, per_genre=1)[0]
    code = main(["predict", str(bad), str(good), "--ckpt", str(checkpoint(demo_run)), "--json",
                 "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 0
    assert err.splitlines() == [f"{bad}: not an audio file (it holds text)", "1 of 2 file(s) skipped; 1 predicted"]
    skipped, answered = json.loads(out)  # in the order given: a script tells "skipped" from "not asked"
    assert skipped == {"file": str(bad), "error": "not an audio file (it holds text)"}
    assert answered["file"] == str(good) and "probabilities" in answered

    assert main(["predict", str(bad), "--ckpt", str(checkpoint(demo_run)), "--json", "--no-progress"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == [skipped]
    assert err.splitlines() == [f"{bad}: not an audio file (it holds text)", "1 of 1 file(s) skipped; 0 predicted"]


def test_csv_gives_a_skipped_file_a_row_with_its_reason(demo_run, demo_dir, tmp_path, capsys):
    missing, good = tmp_path / "gone.wav", demo_files(demo_dir, per_genre=1)[0]
    assert main(["predict", str(good), str(missing), "--ckpt", str(checkpoint(demo_run)), "--csv",
                 "--no-progress"]) == 0
    head, *rows = list(csv.reader(io.StringIO(capsys.readouterr().out)))
    assert head == ["file", "prediction", *DEMO_GENRES, "error"]
    by_file = {row[0]: row for row in rows}
    assert by_file[str(missing)] == [str(missing), "", *[""] * len(DEMO_GENRES), "no such file or folder"]
    assert by_file[str(good)][1] in DEMO_GENRES and by_file[str(good)][-1] == ""


def test_a_name_that_is_not_utf8_is_predicted_and_printed(demo_run, demo_dir, tmp_path, capsys):
    raw = os.path.join(os.fsencode(tmp_path), b"bad\xff\xfename.wav")
    shutil.copy(demo_files(demo_dir, per_genre=1)[0], raw)
    name = os.fsdecode(raw)  # as a shell hands it over
    for fmt in ("--json", "--csv", "--table"):
        args = ["predict", name, "--ckpt", str(checkpoint(demo_run)), "--no-progress"]
        assert main(args + ([fmt] if fmt != "--table" else [])) == 0, fmt
        out, err = capsys.readouterr()
        out.encode("utf-8")  # printable: no lone surrogates reach the terminal
        if fmt == "--json":
            assert os.fsencode(json.loads(out)[0]["file"]) == raw  # the exact bytes, for a script
        else:
            assert f"{tmp_path}/bad\\xff\\xfename.wav" in out, out


def test_a_bad_checkpoint_exits_2_with_one_line(demo_run, demo_dir, tmp_path, capsys):
    fake = tmp_path / "fake.ckpt"
    fake.write_bytes(b"not a checkpoint")
    assert main(["predict", str(demo_files(demo_dir, 1)[0]), "--ckpt", str(fake), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and str(fake) in err and len(err.splitlines()) == 1


# --- safe loading -------------------------------------------------------------------------------------------


class _MkdirWhenUnpickled:
    """Pickles as a call to os.mkdir: if loading ever ran pickled code, `marker` would appear."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.mkdir, (str(self.marker),)


def test_load_model_rebuilds_the_trained_model(demo_run):
    model = load_model(checkpoint(demo_run))
    assert type(model).__name__ == "WindowClassifier" and not model.training
    assert model.genres == list(DEMO_GENRES)
    probs = model.predict_waveform(torch.zeros(22050).uniform_(-0.5, 0.5))
    assert probs.shape == (len(DEMO_GENRES),) and abs(float(probs.sum()) - 1) < 1e-5


@pytest.mark.parametrize("kind", ["missing", "truncated", "random bytes", "other dict", "unknown class"])
def test_load_model_rejects_unusable_files(demo_run, tmp_path, kind):
    path = tmp_path / "model.ckpt"
    good = checkpoint(demo_run).read_bytes()
    if kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "random bytes":
        path.write_bytes(random.Random(0).randbytes(4096))
    elif kind == "other dict":
        torch.save({"weights": torch.zeros(3)}, path)
    elif kind == "unknown class":
        ckpt = torch.load(checkpoint(demo_run), weights_only=True)
        torch.save({**ckpt, "genre_cnn_class": "MulticlassAccuracy"}, path)  # in lit, not a classifier
    with pytest.raises(CheckpointError) as err:
        load_model(path)
    message = str(err.value)
    assert str(path) in message and "\n" not in message


def test_load_model_refuses_pickled_code_without_running_it(tmp_path):
    marker = tmp_path / "code-was-run"
    for i, payload in enumerate([{"x": os.system}, {"state_dict": {}, "x": _MkdirWhenUnpickled(marker)}]):
        path = tmp_path / f"evil{i}.ckpt"
        torch.save(payload, path)
        with pytest.raises(CheckpointError, match="refused"):
            load_model(path)
    assert not marker.exists()


def test_latest_checkpoint_prefers_the_cnn_of_the_newest_run(tmp_path):
    with pytest.raises(CheckpointError, match="python train.py"):
        latest_checkpoint(tmp_path)
    now = time.time()
    for age, rel in ((100, "old/cnn"), (10, "new/cnn"), (5, "new/dense")):
        path = tmp_path / "checkpoints" / rel / "best.ckpt"
        path.parent.mkdir(parents=True)
        path.touch()
        os.utime(path, (now - age, now - age))
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "new" / "cnn" / "best.ckpt"
    (tmp_path / "checkpoints" / "new" / "cnn" / "best.ckpt").unlink()
    assert latest_checkpoint(tmp_path) == tmp_path / "checkpoints" / "new" / "dense" / "best.ckpt"


# --- the default model, usage errors, short files, a library -------------------------------------------------


def _touch(path: Path, age: float) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()
    os.utime(path, (time.time() - age, time.time() - age))


def test_the_default_is_the_latest_runs_best_model_in_a_fixed_preference(tmp_path, monkeypatch):
    import genre_cnn.models.checkpoint as predict

    cps = tmp_path / "checkpoints"
    _touch(cps / "old" / "cnn" / "best.ckpt", 100)
    _touch(cps / "new" / "dense" / "best.ckpt", 5)  # `--models [dense]` ran last
    assert predict.latest_checkpoint(tmp_path) == cps / "new" / "dense" / "best.ckpt"
    assert predict.latest_checkpoint(tmp_path, exportable=True) == cps / "old" / "cnn" / "best.ckpt"  # export
    _touch(cps / "new" / "cnn" / "best.ckpt", 10)
    _touch(cps / "new" / "cnn" / "refit.ckpt", 8)
    assert predict.latest_checkpoint(tmp_path) == cps / "new" / "cnn" / "refit.ckpt"  # cnn > dense, refit > best
    _touch(cps / "new" / "musicnn" / "best.ckpt", 9)
    assert predict.latest_checkpoint(tmp_path) == cps / "new" / "musicnn" / "best.ckpt"
    assert predict.resolve_checkpoint(cps / "new") == cps / "new" / "musicnn" / "best.ckpt"  # a run folder
    assert predict.resolve_checkpoint(cps / "new" / "cnn") == cps / "new" / "cnn" / "refit.ckpt"

    empty = tmp_path / "nothing"
    monkeypatch.setattr(predict, "READY_MODEL", tmp_path / "ready" / "missing.ckpt")
    with pytest.raises(CheckpointError, match="python train.py"):
        predict.default_checkpoint(empty)
    _touch(tmp_path / "ready" / "missing.ckpt", 0)
    assert predict.default_checkpoint(empty) == tmp_path / "ready" / "missing.ckpt"  # the shipped model


def test_a_folder_as_ckpt_picks_its_checkpoint_or_says_it_is_a_folder(demo_run, demo_dir, tmp_path, capsys):
    file = demo_files(demo_dir, per_genre=1)[0]
    assert main(["predict", str(file), "--ckpt", str(checkpoint(demo_run).parent), "--no-progress"]) == 0
    assert f"model: {checkpoint(demo_run)} (WindowClassifier, trained on demo" in capsys.readouterr().out
    (tmp_path / "a.ckpt").touch()
    (tmp_path / "b.ckpt").touch()
    assert main(["predict", str(file), "--ckpt", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and len(err.splitlines()) == 1


@pytest.mark.parametrize("value,code", [("-1", 2), ("0", 2), ("two", 2)])
def test_top_k_below_one_is_a_usage_error(demo_run, demo_dir, capsys, value, code):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", str(demo_files(demo_dir, 1)[0]), "--top-k", value])
    assert exit_.value.code == code and "--top-k" in capsys.readouterr().err


def test_a_file_under_3_s_predicts_with_a_one_line_warning(demo_run, demo_dir, tmp_path, capsys):
    import soundfile as sf

    y, sr = sf.read(demo_files(demo_dir, 1)[0])
    short = tmp_path / "short.wav"
    sf.write(short, y[: int(1.5 * sr)], sr)
    assert main(["predict", str(short), "--ckpt", str(checkpoint(demo_run)), "--json", "--no-progress"]) == 0
    out, err = capsys.readouterr()
    assert len(json.loads(out)) == 1 and "probabilities" in json.loads(out)[0]
    assert err.startswith("warning: ") and "trained on clips of 3 s" in err and len(err.splitlines()) == 1


def test_workers_and_engines_give_the_same_answers(demo_run, demo_dir, capsys):
    files = demo_files(demo_dir)
    answers = {}
    for name, extra in {"torch, 1 process": ["--engine", "torch", "--workers", "1"],
                        "onnx, 2 workers": ["--workers", "2"], "onnx, 1 process": ["--workers", "1"]}.items():
        assert main(["predict", *map(str, files), "--ckpt", str(checkpoint(demo_run)), "--json", "--no-progress",
                     *extra]) == 0
        answers[name] = {r["file"]: list(r["probabilities"].values()) for r in json.loads(capsys.readouterr().out)}
    import numpy as np

    for name, got in answers.items():
        assert list(got) == [str(f) for f in files], name
        np.testing.assert_allclose(np.array(list(got.values())), np.array(list(answers["torch, 1 process"].values())),
                                   rtol=0, atol=1e-4, err_msg=name)


def test_max_windows_reads_only_that_many_windows_spread_over_the_track(demo_run, demo_dir, tmp_path, monkeypatch):
    import numpy as np
    import soundfile as sf

    from genre_cnn.audio.reader import AudioReader
    from genre_cnn.inference.torch_runner import model_spans

    y = np.concatenate([sf.read(f)[0] for f in demo_files(demo_dir, 1)])  # 4 clips of 8 s: 32 s
    long = tmp_path / "long.flac"
    sf.write(long, y, 22050)
    spans = []
    real = AudioReader.span
    monkeypatch.setattr(AudioReader, "span", lambda self, *a: spans.append(a) or real(self, *a))
    model = load_model(checkpoint(demo_run))
    results, errors = predict_files(model, [long], max_windows=4, progress=False)
    assert not errors and len(results) == 1
    segment = model_spans(model)[0]
    assert [length for _, length in spans] == [segment] * 4
    starts = [start for start, _ in spans]
    assert starts == sorted(starts) and [int(4 * s / len(y)) for s in starts] == [0, 1, 2, 3]  # one per quarter
    assert abs(sum(results[0]["probabilities"].values()) - 1) < 1e-4
