"""Hostile and odd inputs to `genre-cnn predict`: absurd sample rates, signal-free files, FIFOs and symlink
loops, checkpoint bombs and tampered checkpoints, a one-hour file. Each answer is one line, never a traceback
or an internal exception name, and a bad file never costs the good ones."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from genre_cnn.app.cli import main
from genre_cnn.audio.decode import AudioError, load_audio
from genre_cnn.inference.predict import CheckpointError, load_model

REPO = Path(__file__).resolve().parents[1]
SR = 22050
INTERNAL_NAMES = ("Error:", "EOFError", "NoBackendError", "IndexError", "Traceback", "UnpicklingError")


def ckpt(demo_run, model: str = "cnn") -> Path:
    return demo_run["root"] / "checkpoints" / demo_run["run"] / model / "best.ckpt"


def tone(seconds: float, sr: int = SR) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))).astype(np.float32)


def predict_json(demo_run, capsys, *args) -> tuple[int, list, list[str]]:
    """(exit code, the answers, stderr lines); every skipped file is listed in the JSON with the reason that
    stderr gives."""
    default = [] if "--ckpt" in args else ["--ckpt", str(ckpt(demo_run))]  # a demo run is never the default
    code = main(["predict", *map(str, args), "--json", "--no-progress", "--workers", "1", *default])
    out, err = capsys.readouterr()
    rows, lines = json.loads(out) if out.strip() else [], err.splitlines()
    skipped = [f"{r['file']}: {r['error']}" for r in rows if "error" in r]
    if skipped:  # the count closes the list
        assert lines[-1] == f"{len(skipped)} of {len(rows)} file(s) skipped; {len(rows) - len(skipped)} predicted"
        lines = lines[:-1]
    assert skipped == [line for line in lines if not line.startswith("warning: ")], (skipped, lines)
    return code, [r for r in rows if "error" not in r], lines


def one_clean_line(lines: list[str], path: Path | str) -> str:
    assert len(lines) == 1, lines
    assert str(path) in lines[0] and not any(name in lines[0] for name in INTERNAL_NAMES), lines[0]
    return lines[0]


@pytest.mark.parametrize("rate", [20, 200])
def test_an_absurd_header_rate_is_refused_before_resampling_and_costs_no_other_file(
        demo_run, demo_dir, tmp_path, capsys, rate):
    bad = tmp_path / f"rate{rate}.wav"
    sf.write(bad, np.random.default_rng(0).uniform(-0.5, 0.5, 200_000).astype(np.float32), rate)  # hours at 20 Hz
    with pytest.raises(AudioError, match="sample rate"):
        load_audio(bad, SR)
    good = demo_dir / "ambient" / "ambient.00000.wav"
    code, results, err = predict_json(demo_run, capsys, bad, good, "--ckpt", ckpt(demo_run))
    assert code == 0 and [r["file"] for r in results] == [str(good)]
    assert f"{rate} Hz" in one_clean_line(err, bad)


def test_any_exception_a_decoder_throws_on_one_file_is_one_line_and_the_others_still_answer(
        demo_run, demo_dir, capsys, monkeypatch):
    import audioread
    import soundfile

    files = [demo_dir / "ambient" / "ambient.00000.wav", demo_dir / "techno" / "techno.00000.wav"]
    real_open, real_info = soundfile.SoundFile, soundfile.info

    def flaky(real):
        def call(file, *args, **kwargs):
            if os.fsdecode(file) == str(files[0]):
                raise IndexError("pop from empty list")  # what a decoder library might throw
            return real(file, *args, **kwargs)
        return call

    monkeypatch.setattr(soundfile, "SoundFile", flaky(real_open))
    monkeypatch.setattr(soundfile, "info", flaky(real_info))
    monkeypatch.setattr(audioread, "audio_open", flaky(audioread.audio_open))
    code, results, err = predict_json(demo_run, capsys, *files, "--ckpt", ckpt(demo_run), "--engine", "torch")
    assert code == 0 and [r["file"] for r in results] == [str(files[1])]
    assert "unreadable audio (pop from empty list)" in one_clean_line(err, files[0])


def test_a_bug_in_the_model_keeps_its_traceback(demo_run, demo_dir, monkeypatch):
    from genre_cnn.inference.predict import TorchRunner, predict_one

    runner = TorchRunner(load_model(ckpt(demo_run)))
    monkeypatch.setattr(runner, "window_values", lambda y: y.no_such_attribute)  # a programming error
    with pytest.raises(AttributeError):
        predict_one(runner, demo_dir / "ambient" / "ambient.00000.wav")


@pytest.mark.parametrize("kind", ["dc", "impulse", "dc plus impulse"])
def test_a_constant_level_or_a_lone_click_is_no_signal(tmp_path, kind):
    y = np.zeros(10 * SR, np.float32)
    if "dc" in kind:
        y += 0.5
    if "impulse" in kind:
        y[SR] = 0.9
    path = tmp_path / "x.wav"
    sf.write(path, y, SR)
    with pytest.raises(AudioError, match="silent or no signal"):
        load_audio(path, SR)
    assert load_audio(_write(tmp_path / "quiet.wav", 0.01 * tone(10)), SR).size == 10 * SR  # music at -53 dBFS RMS


def _write(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    sf.write(path, y, sr)
    return path


def test_a_fifo_and_a_symlink_loop_say_what_they_are(demo_run, tmp_path, capsys):
    fifo, loop = tmp_path / "pipe.wav", tmp_path / "loop.wav"
    os.mkfifo(fifo)
    loop.symlink_to(loop)
    code, _, err = predict_json(demo_run, capsys, fifo, loop, "--ckpt", ckpt(demo_run))
    assert code == 1
    assert any("not a regular file" in line and str(fifo) in line for line in err)
    assert any("symlink loop" in line and str(loop) in line for line in err)
    folder = tmp_path  # the same two inside a searched folder, plus one good file: no hang, one line each
    _write(folder / "good.wav", tone(4))
    code, results, err = predict_json(demo_run, capsys, folder, "--ckpt", ckpt(demo_run))
    assert code == 0 and len(results) == 1 and len(err) == 2


# --- checkpoints -------------------------------------------------------------------------------------------


def _tampered(demo_run, tmp_path, kind: str) -> Path:
    model = "dense" if kind == "dense clip_seconds 0" else "cnn"
    c = torch.load(ckpt(demo_run, model), weights_only=True)
    hp = c["hyper_parameters"]
    if kind == "class as a list":
        c["genre_cnn_class"] = ["WindowClassifier"]
    elif kind == "window_seconds 0":
        hp["window_seconds"] = 0
    elif kind == "sample_rate 1":
        hp["frontend"] = {**hp["frontend"], "sample_rate": 1}
    elif kind == "dense clip_seconds 0":
        hp["clip_seconds"] = 0.0
    elif kind == "n_mels 100000":
        hp["frontend"] = {**hp["frontend"], "n_mels": 100000}
    elif kind == "stem 100000":
        hp["stem"] = 100000
    elif kind == "hop longer than n_fft":
        hp["frontend"] = {**hp["frontend"], "hop_length": 4096}
    elif kind == "nan weights":
        key = next(k for k, v in c["state_dict"].items() if v.is_floating_point() and v.numel() > 1)
        c["state_dict"][key] = torch.full_like(c["state_dict"][key], math.nan)
    elif kind == "2000 genres":
        hp["genres"] = [f"g{i}" for i in range(2000)]
    elif kind == "genre of 10k characters":
        hp["genres"] = ["x" * 10_000, *hp["genres"][1:]]
    elif kind == "5000 tensors":
        c["state_dict"] = {**c["state_dict"], **{f"junk.{i}": torch.zeros(1) for i in range(5000)}}
    path = tmp_path / f"{kind.replace(' ', '_')}.ckpt"
    torch.save(c, path)
    return path


TAMPERED = ["class as a list", "window_seconds 0", "sample_rate 1", "dense clip_seconds 0", "n_mels 100000",
            "stem 100000", "hop longer than n_fft", "nan weights", "2000 genres", "genre of 10k characters",
            "5000 tensors"]


@pytest.mark.parametrize("kind", TAMPERED)
def test_a_tampered_checkpoint_is_one_line_and_exit_2(demo_run, demo_dir, tmp_path, capsys, kind):
    path = _tampered(demo_run, tmp_path, kind)
    code = main(["predict", str(demo_dir / "ambient" / "ambient.00000.wav"), "--ckpt", str(path), "--no-progress"])
    out, err = capsys.readouterr()
    assert code == 2 and out == "" and "nan%" not in out
    assert err.startswith("error: ") and any(w in err for w in ("damaged", "tampered", "refused", "at most"))
    one_clean_line(err.splitlines(), path)


def _limited(code: str, limit_gb: float = 3.0) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh Python whose address space is capped, so a memory blow-up fails fast."""
    prelude = f"import resource; resource.setrlimit(resource.RLIMIT_AS, ({int(limit_gb * 2**30)},) * 2)\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=600,
                          cwd=REPO, env={**os.environ, "OMP_NUM_THREADS": "1"})


def test_checkpoint_bombs_are_refused_before_anything_is_unpacked(demo_run, tmp_path):
    huge = tmp_path / "huge.ckpt"
    with open(huge, "wb") as f:
        f.truncate(600 * 2**20)  # sparse: 600 MB on paper
    bomb = tmp_path / "bomb.ckpt"  # a real checkpoint plus a member that inflates to 640 MB
    with zipfile.ZipFile(ckpt(demo_run)) as src, \
            zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as dst:
        for item in src.infolist():
            dst.writestr(item, src.read(item))
        with dst.open(f"{src.namelist()[0].split('/')[0]}/data/999", "w", force_zip64=True) as member:
            zeros = bytes(64 * 2**20)
            for _ in range(10):  # 640 MB of zeros, about 1 MB deflated
                member.write(zeros)
    assert bomb.stat().st_size < 64 * 2**20
    code = (f"from genre_cnn.inference.predict import load_model, CheckpointError\n"
            f"for p in ({str(huge)!r}, {str(bomb)!r}):\n"
            f"    try: load_model(p)\n"
            f"    except CheckpointError as e: print(e)\n")
    proc = _limited(code, limit_gb=4.0)
    assert proc.returncode == 0, proc.stderr[-1000:]
    lines = proc.stdout.splitlines()
    assert len(lines) == 2 and "larger than" in lines[0] and "unpack to" in lines[1], lines


def test_a_weight_count_cap(demo_run, monkeypatch):
    import genre_cnn.models.checkpoint as checkpoint

    monkeypatch.setattr(checkpoint, "MAX_ELEMENTS", 1000)
    with pytest.raises(CheckpointError, match="more than 1,000 weights"):
        load_model(ckpt(demo_run))


# --- long files --------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hour_flac(tmp_path_factory) -> dict[str, Path]:
    """A 1-minute and a 1-hour FLAC (8 kHz, written in blocks: the test itself stays small)."""
    folder = tmp_path_factory.mktemp("long")
    files = {}
    for name, minutes in (("minute", 1), ("hour", 60)):
        files[name] = folder / f"{name}.flac"
        with sf.SoundFile(files[name], "w", 8000, 1, format="FLAC", subtype="PCM_16") as f:
            for i in range(minutes * 6):
                f.write(0.5 * tone(10, 8000) * (1 + i % 3) / 3)
    return files


@pytest.mark.slow
def test_a_one_hour_file_predicts_in_memory_that_does_not_grow_with_its_length(demo_run, hour_flac):
    from genre_cnn.inference.onnx_predict import cached_onnx, make_onnx

    model = ckpt(demo_run)
    assert cached_onnx(model) or make_onnx(model, load_model(model))  # made here, not in the measured runs
    peaks = {}
    for name, path in hour_flac.items():
        proc = _limited("import json, resource, sys\nfrom genre_cnn.app.cli import main\n"
                        f"code = main(['predict', {str(path)!r}, '--ckpt', {str(model)!r}, '--json', "
                        "'--no-progress'])\n"
                        "print(json.dumps({'code': code, 'rss_mb': resource.getrusage(resource.RUSAGE_SELF)"
                        ".ru_maxrss / 1024}))")
        assert proc.returncode == 0, proc.stderr[-1000:]
        lines = proc.stdout.strip().splitlines()
        assert json.loads(lines[-1])["code"] == 0
        assert len(json.loads("\n".join(lines[:-1]))) == 1
        peaks[name] = json.loads(lines[-1])["rss_mb"]
    # whole-file decoding would hold 1 h x 22050 Hz x 4 bytes = 318 MB for the waveform alone
    assert peaks["hour"] - peaks["minute"] < 100, peaks


def test_the_dense_model_reads_only_the_centred_clip_of_a_long_file(demo_run, hour_flac, monkeypatch, capsys):
    from genre_cnn.audio.reader import AudioReader

    calls = []
    real = AudioReader.span
    monkeypatch.setattr(AudioReader, "span", lambda self, *a: calls.append(a) or real(self, *a))
    monkeypatch.setattr(AudioReader, "stream", lambda *a, **k: pytest.fail("the whole file was decoded"))
    code, results, _ = predict_json(demo_run, capsys, hour_flac["hour"], "--ckpt", ckpt(demo_run, "dense"))
    assert code == 0 and len(results) == 1
    clip = 8 * SR  # the demo's clip_seconds
    assert calls == [((3600 * SR - clip) // 2, clip)]
