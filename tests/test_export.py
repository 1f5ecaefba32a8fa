"""`genre-cnn export`: one ONNX file, front end included, that gives the PyTorch model's probabilities
(within 1e-4 absolute) for any length of waveform, with the genre list in its metadata."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from genre_cnn.app.cli import main
from genre_cnn.audio.decode import load_audio
from genre_cnn.data.demo import DEMO_GENRES
from genre_cnn.inference.predict import load_model
from genre_cnn.models import families

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

TOLERANCE = 1e-4  # absolute, on probabilities; measured about 1e-5 on the demo clips


def test_onnx_model_matches_pytorch_on_any_length(demo_run, demo_dir, tmp_path, capsys):
    ckpt = demo_run["root"] / "checkpoints" / demo_run["run"] / "cnn" / "best.ckpt"
    out = tmp_path / "genre_cnn.onnx"
    assert main(["export", "--ckpt", str(ckpt), "--out", str(out)]) == 0
    assert list(tmp_path.iterdir()) == [out]  # weights inside, no external data file

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert json.loads(meta["genres"]) == list(DEMO_GENRES) and meta["sample_rate"] == "22050"
    model = load_model(ckpt)
    from tests.test_predict import demo_files

    clips = [load_audio(f, 22050) for f in demo_files(demo_dir, per_genre=1)]  # 8 s each, never trained on
    inputs = [*clips, clips[0][:22050],  # 1 s: shorter than one 3-s window, looped
              np.concatenate(clips[1:])]  # 24 s: longer than the export's example input
    for y in inputs:
        onnx_probs = session.run(None, {"waveform": y[None]})[0]  # (1, n)
        torch_probs = model.predict_waveform(torch.from_numpy(y)).numpy()  # (n,)
        assert onnx_probs.shape == (1, len(DEMO_GENRES))
        np.testing.assert_allclose(onnx_probs[0], torch_probs, rtol=0, atol=TOLERANCE)
    winners = [DEMO_GENRES[int(np.argmax(session.run(None, {"waveform": y[None]})[0]))] for y in clips]
    assert sum(w == g for w, g in zip(winners, DEMO_GENRES, strict=True)) >= 3


def test_export_refuses_the_dense_model(demo_run, tmp_path, capsys):
    ckpt = demo_run["root"] / "checkpoints" / demo_run["run"] / "dense" / "best.ckpt"
    assert main(["export", "--ckpt", str(ckpt), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists() and "HandcraftedClassifier" in err
    assert all(f.name in err for f in families.all().values() if f.exportable), err  # the registry's, not a fixed list


def test_predict_caches_the_export_and_then_answers_without_torch(demo_run, demo_dir, tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    from genre_cnn.inference.onnx_predict import OnnxRunner, cached_onnx, make_onnx, onnx_cache_path

    src = demo_run["root"] / "checkpoints" / demo_run["run"] / "cnn" / "best.ckpt"
    ckpt = tmp_path / "copy.ckpt"
    ckpt.write_bytes(src.read_bytes())
    graph = cached_onnx(ckpt) or make_onnx(ckpt, load_model(ckpt))
    assert graph == onnx_cache_path(ckpt) == onnx_cache_path(src)  # keyed by content, not by path
    assert graph.parent == demo_run["root"] / "data" / "onnx"
    runner, model = OnnxRunner(graph), load_model(ckpt)
    y = load_audio(demo_dir / "techno" / "techno.00003.wav", 22050)
    np.testing.assert_allclose(runner.window_probs(y), model.window_probs(torch.from_numpy(y)).numpy(),
                               rtol=0, atol=TOLERANCE)  # every window, not only the mean

    file = demo_dir / "noise" / "noise.00003.wav"
    code = ("import json, sys\nfrom genre_cnn.app.cli import main\n"
            f"code = main(['predict', {str(file)!r}, '--ckpt', {str(ckpt)!r}, '--json'])\n"
            "print(json.dumps({'code': code, 'torch': 'torch' in sys.modules, 'librosa': 'librosa' in sys.modules}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ}, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = proc.stdout.strip().splitlines()
    assert json.loads(lines[-1]) == {"code": 0, "torch": False, "librosa": False}
    answer = json.loads("\n".join(lines[:-1]))[0]
    assert "ONNX Runtime" in answer["model"]
    np.testing.assert_allclose(list(answer["probabilities"].values()),
                               model.predict_waveform(torch.from_numpy(load_audio(file, 22050))).numpy(),
                               rtol=0, atol=TOLERANCE)

    ckpt.write_bytes(src.read_bytes() + b"\0")  # a changed checkpoint never reuses the old graph
    assert cached_onnx(ckpt) is None


def test_export_without_ckpt_takes_the_latest_exportable_model(demo_run, tmp_path, monkeypatch, capsys):
    import os
    import shutil

    root = tmp_path / "home"
    src = demo_run["root"] / "checkpoints" / demo_run["run"]
    shutil.copytree(src / "cnn", root / "checkpoints" / "a" / "cnn")
    shutil.copytree(src / "dense", root / "checkpoints" / "b" / "dense")  # a later dense-only run
    os.utime(root / "checkpoints" / "a" / "cnn" / "best.ckpt", (1, 1))
    for run in ("a", "b"):  # runs on a folder of real music (a demo run is never the default)
        (root / "runs" / run).mkdir(parents=True)
        (root / "runs" / run / "config.yaml").write_text("data:\n  dataset: folder\n")
    monkeypatch.setenv("GENRE_CNN_HOME", str(root))
    assert main(["export", "--out", str(tmp_path / "m.onnx")]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == str(tmp_path / "m.onnx") and "checkpoints/a/cnn/best.ckpt" in err


@pytest.mark.parametrize("kind", ["folder", "fifo", "symlink"])
def test_out_that_is_not_a_regular_file_is_refused_in_one_line(kind, tmp_path, capsys):
    import os
    from pathlib import Path

    ckpt = Path(__file__).resolve().parents[1] / "genre_cnn" / "ready" / "musicnn_gtzan_mini.ckpt"
    out = tmp_path / "target"
    if kind == "folder":
        out.mkdir()
    elif kind == "fifo":
        os.mkfifo(out)  # as a device node: replacing it would destroy it
    else:
        (tmp_path / "elsewhere.onnx").write_bytes(b"keep")
        out.symlink_to(tmp_path / "elsewhere.onnx")
    before = out.lstat()
    assert main(["export", "--ckpt", str(ckpt), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: --out {out}: ")
    assert {"folder": "a folder", "fifo": "not a regular file", "symlink": "a symbolic link"}[kind] in err
    assert out.lstat().st_ino == before.st_ino and out.lstat().st_mode == before.st_mode


@pytest.mark.slow
def test_graph_fed_as_the_readme_says_gives_the_models_answer(tmp_path, capsys):
    """The musicnn model exported, then fed a stereo 44.1 kHz file decoded as the README's example does."""
    from pathlib import Path

    import librosa
    import soundfile as sf

    from tests.conftest import GTZAN_MINI

    if not (GTZAN_MINI / "genres").is_dir():
        pytest.skip(f"real GTZAN clips not found at {GTZAN_MINI}")
    ready = Path(__file__).resolve().parents[1] / "genre_cnn" / "ready" / "musicnn_gtzan_mini.ckpt"
    out = tmp_path / "musicnn.onnx"
    assert main(["export", "--ckpt", str(ready), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "input: waveform float32 (1, samples), mono, values in [-1, 1], 16000 Hz" in err

    y, sr = sf.read(GTZAN_MINI / "genres" / "rock" / "rock.00004.wav", dtype="float32")
    stereo = np.stack([y, 0.5 * y], axis=1)  # (samples, 2)
    song = tmp_path / "song.wav"
    sf.write(song, librosa.resample(stereo.T, orig_sr=sr, target_sr=44100).T, 44100)

    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    meta = session.get_modelmeta().custom_metadata_map
    assert meta["sample_rate"] == "16000" and "mono" in meta["input"] and "16000 Hz" in meta["input"]
    wave, _ = librosa.load(song, sr=int(meta["sample_rate"]), mono=True)  # as the README's example
    probs = session.run(None, {"waveform": wave[None]})[0][0]
    model = load_model(ready)  # the model's own answer for the file, decoded by genre_cnn's loader
    expected = model.predict_waveform(torch.from_numpy(load_audio(song, model.sample_rate))).numpy()
    assert json.loads(meta["genres"]) == model.genres
    np.testing.assert_allclose(probs, expected, rtol=0, atol=TOLERANCE)


def test_help_states_the_input_contract_and_names_no_single_family(capsys):
    with pytest.raises(SystemExit):
        main(["export", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for part in ("float32, shape (1, samples), mono", "22050 Hz for the CNN, 16000 Hz for musicnn",
                 "metadata `sample_rate`", "`genres`"):
        assert part in text
    with pytest.raises(SystemExit):
        main(["--help"])
    assert "the CNN with its front end" not in capsys.readouterr().out


UNSEEN = Path(__file__).resolve().parents[2] / "shared" / "gtzan_unseen" / "genres"
REAL_CLIPS = [UNSEEN / "rock" / "rock.00080.flac", UNSEEN / "jazz" / "jazz.00091.flac",
              UNSEEN / "classical" / "classical.00075.flac"]


@pytest.mark.skipif(not UNSEEN.is_dir(), reason=f"real GTZAN clips not found at {UNSEEN} (../shared)")
def test_both_engines_give_the_ready_models_answer_on_real_clips():
    """ONNX Runtime and PyTorch, through the same predict_track that `predict`, `sort` and the Python API use:
    same top genre and probabilities within TOLERANCE, on whole clips, on 2 evenly spaced windows and on a
    2-s file (looped). The answer is the one training and evaluation measure: the head on the clip's mean
    embedding (`clip_probs`), not an average of per-patch answers."""
    from genre_cnn.inference.onnx_predict import OnnxRunner, cached_onnx, make_onnx
    from genre_cnn.inference.predict import READY_MODEL, TorchRunner, predict_track

    model = load_model(READY_MODEL)
    graph = cached_onnx(READY_MODEL) or make_onnx(READY_MODEL, model)
    assert graph is not None
    engines = [OnnxRunner(graph), TorchRunner(model)]
    for file in REAL_CLIPS:
        for max_windows in (None, 2):
            onnx_probs, torch_probs = (predict_track(r, file, max_windows)[0] for r in engines)
            assert np.argmax(onnx_probs) == np.argmax(torch_probs), file
            np.testing.assert_allclose(onnx_probs, torch_probs, rtol=0, atol=TOLERANCE, err_msg=str(file))
        y = load_audio(file, model.sample_rate)
        np.testing.assert_allclose(predict_track(engines[1], file)[0],
                                   model.predict_waveform(torch.from_numpy(y)).numpy(), rtol=0, atol=1e-6)


def test_the_ready_models_graph_ships_beside_it_and_only_fits_that_checkpoint(tmp_path):
    """The first `predict` after set-up exports nothing: the graph for the ready model's exact bytes is in the
    package; a copy with other bytes does not use it."""
    from genre_cnn.inference.onnx_predict import cached_onnx, onnx_cache_path, shipped_onnx_path
    from genre_cnn.inference.predict import READY_MODEL

    shipped = shipped_onnx_path(READY_MODEL)
    assert shipped.is_file() and shipped.parent == READY_MODEL.parent
    assert not onnx_cache_path(READY_MODEL).exists() or cached_onnx(READY_MODEL) == shipped
    assert cached_onnx(READY_MODEL) == shipped
    meta = ort.InferenceSession(str(shipped), providers=["CPUExecutionProvider"]).get_modelmeta()
    assert json.loads(meta.custom_metadata_map["genres"]) == load_model(READY_MODEL).genres
    changed = tmp_path / READY_MODEL.name
    changed.write_bytes(READY_MODEL.read_bytes() + b"\0")
    (tmp_path / shipped.name).write_bytes(b"not this one")  # the old bytes' name: never used for new bytes
    assert cached_onnx(changed) is None


def test_a_model_the_exporter_cannot_convert_falls_back_but_a_full_disk_is_not_hidden(tmp_path, monkeypatch):
    import errno

    from genre_cnn.inference import export, onnx_predict
    from genre_cnn.models import families

    model = families.get("cnn").build({"genres": ["a", "b"], "widths": [4], "stem": 0})
    ckpt = tmp_path / "m.ckpt"
    ckpt.write_bytes(b"a checkpoint's bytes")

    def cannot(model, out, seconds=30.0):
        raise torch.onnx.errors.UnsupportedOperatorError("aten::nope", 20, "")

    monkeypatch.setattr(export, "export_onnx", cannot)
    assert onnx_predict.make_onnx(ckpt, model) is None  # the torch path answers instead

    def full(model, out, seconds=30.0):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(export, "export_onnx", full)
    with pytest.raises(OSError, match="No space left"):
        onnx_predict.make_onnx(ckpt, model)
