"""`genre-cnn predict --ray`: the answers of the one-machine path on real clips, bad files listed with their reason,
a killed run resumed without redoing a file or listing one twice, URIs, and the results folder's rules.

One local Ray (2 CPUs) serves the module; the tests that need no Ray run without it."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import GTZAN_MINI, needs_gtzan_mini

from genre_cnn.app import cluster
from genre_cnn.app.cli import main
from genre_cnn.app.cli_parser import is_ray_address
from genre_cnn.app.cluster_results import Results, read_results, table, text
from genre_cnn.errors import GenreCnnError
from genre_cnn.inference.predict import READY_MODEL
from genre_cnn.inference.session import Predictor

pytest.importorskip("pyarrow", reason="the cluster extra is not installed (pip install -e .[cluster])")
REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def ray_address():
    """One local Ray of 2 CPUs for the module; its address."""
    ray = pytest.importorskip("ray", reason="the cluster extra is not installed (pip install -e .[cluster])")
    context = ray.init(num_cpus=2, include_dashboard=False, logging_level="warning", log_to_driver=False)
    yield context.address_info["address"]
    ray.shutdown()


@pytest.fixture(scope="module")
def model():
    """The ready model on its shipped ONNX graph, as `genre-cnn predict --ckpt READY` opens it."""
    return Predictor.open(READY_MODEL)


def tones(folder: Path, count: int, seconds: float = 3.5) -> list[Path]:
    """`count` generated clips (a chord and noise, a different one each) of `seconds` at 16 kHz."""
    folder.mkdir(parents=True, exist_ok=True)
    rng, t = np.random.default_rng(0), np.arange(int(16000 * seconds)) / 16000
    paths = []
    for i in range(count):
        y = sum(np.sin(2 * np.pi * f * t) for f in 110 * 2 ** (rng.integers(0, 24, 3) / 12)) / 6
        paths.append(folder / f"tone{i:02d}.wav")
        sf.write(paths[-1], (y + 0.05 * rng.standard_normal(t.size)).astype(np.float32), 16000)
    return paths


def bad_files(folder: Path) -> dict[str, str]:
    """A corrupt, a non-audio, an empty and a truncated file, and a silent one with a name that is not UTF-8:
    name -> words its reason holds."""
    folder.mkdir(parents=True, exist_ok=True)
    wav = io.BytesIO()
    sf.write(wav, np.full(16000, 0.1, dtype=np.float32), 16000, format="WAV")
    wav = wav.getvalue()
    (folder / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    (folder / "notes.mp3").write_text("this is a text file, not music\n" * 20)
    (folder / "empty.flac").write_bytes(b"")
    (folder / "cut.wav").write_bytes(wav[:3000])
    with open(os.fsencode(folder) + b"/caf\xe9.wav", "wb") as f:
        f.write(wav[:44] + b"\x00" * 64000)
    return {"corrupt.wav": "", "notes.mp3": "not an audio file", "empty.flac": "empty", "cut.wav": "truncated",
            os.fsdecode(b"caf\xe9.wav"): ""}


def json_rows(capsys, *args) -> list[dict]:
    """`genre-cnn predict ARGS --json` on one machine, the ready model, one worker."""
    code = main(["predict", *map(str, args), "--json", "--ckpt", str(READY_MODEL), "--workers", "1", "--no-progress"])
    assert code == 0
    return json.loads(capsys.readouterr().out)


def same_rows(ours: list[dict], theirs: list[dict]) -> None:
    """The same rows (in any order): every field equal, probabilities within float32 rounding (ONNX Runtime may
    sum in another order with another thread count)."""
    ours, theirs = {r["file"]: r for r in ours}, {text(r["file"]): r for r in theirs}
    assert sorted(ours) == sorted(theirs) and len(ours) > 0
    for name, row in theirs.items():
        mine = ours[name]
        assert set(mine) == set(row) and mine.get("error") == row.get("error") and mine.get("model") == row.get("model")
        assert [t["genre"] for t in mine.get("top", [])] == [t["genre"] for t in row.get("top", [])]
        for genre, p in row.get("probabilities", {}).items():
            assert mine["probabilities"][genre] == pytest.approx(p, abs=1e-6)


@needs_gtzan_mini
def test_real_clips_get_the_answers_of_one_machine_and_bad_files_their_reasons(ray_address, model, tmp_path,
                                                                               capsys):
    music = tmp_path / "music"
    music.mkdir()
    for genre in ("blues", "classical", "jazz", "metal", "reggae"):
        (music / f"{genre}.wav").symlink_to(sorted((GTZAN_MINI / "genres" / genre).iterdir())[-1])
    reasons = bad_files(music / "bad")
    missing = tmp_path / "gone.mp3"
    summary = cluster.predict_on_ray(model, [str(music), str(missing)], str(tmp_path / "out.parquet"),
                                     progress=False, part_rows=2)
    rows = read_results(tmp_path / "out.parquet")
    assert summary == {"predicted": 5, "skipped": 6, "already": 0, "results": 5}
    same_rows(rows, json_rows(capsys, music, missing))
    errors = {Path(r["file"]).name: r["error"] for r in rows if "error" in r}
    assert set(errors) == {text(n) for n in reasons} | {"gone.mp3"}
    assert all(word in errors[text(name)] for name, word in reasons.items())
    assert [r["top"][0]["genre"] for r in rows if Path(r["file"]).stem == "classical"] == ["classical"]
    assert len(list((tmp_path / "out.parquet").glob("part-*.parquet"))) >= 2  # written a part at a time


DRIVER = """
import sys, time
from genre_cnn.app import cluster, cluster_results
from genre_cnn.inference.predict import READY_MODEL
from genre_cnn.inference.session import Predictor
import ray
ray.init(address=sys.argv[1], log_to_driver=False, logging_level="warning")
write = cluster_results.Results.write
def slow_write(self, part):  # slow the writer down, so that the kill comes mid-run
    name = write(self, part)
    time.sleep(0.4)
    return name
cluster_results.Results.write = slow_write
cluster.predict_on_ray(Predictor.open(READY_MODEL), [sys.argv[2]], sys.argv[3], progress=False, workers=1,
                       part_rows=1)
"""


def test_a_killed_run_resumes_without_redoing_a_file_or_listing_one_twice(ray_address, model, tmp_path):
    files = tones(tmp_path / "music", 16)
    out = tmp_path / "out.parquet"
    child = subprocess.Popen([sys.executable, "-c", DRIVER, ray_address, str(tmp_path / "music"), str(out)],
                             cwd=REPO, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob("part-*.parquet"))) < 3 and child.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL, child.stderr.read()[-2000:]
    parts = sorted(out.glob("part-*.parquet"))
    before = {p.name: p.read_bytes() for p in parts}
    done = [r["file"] for r in read_results(out)]
    assert 0 < len(done) < len(files)  # killed mid-run
    # a part a writer left half-written, and a temporary file of the killed run's
    half = parts[-1]
    half.write_bytes(before[half.name][: len(before[half.name]) // 2])
    (out / f".{parts[0].name}.abc123.tmp").write_bytes(b"PAR1")
    lost = {r["file"] for r in read_results(out)} ^ set(done)  # the half-written part's files
    summary = cluster.predict_on_ray(model, [str(tmp_path / "music")], str(out), progress=False)
    assert summary["already"] == len(done) - len(lost) and summary["predicted"] == len(files) - summary["already"]
    rows = read_results(out)
    assert sorted(r["file"] for r in rows) == sorted(map(str, files))  # every file once
    assert all("top" in r for r in rows)
    assert all(p.read_bytes() == before[p.name] for p in parts if p != half)  # the finished parts untouched
    assert (out / f".unreadable-{half.name}").is_file() and not list(out.glob(".*.tmp"))


def test_uris_are_listed_and_read_through_pyarrow(model, tmp_path):
    clip, short = tones(tmp_path / "music", 1)[0], tones(tmp_path / "short", 1, seconds=2.0)[0]
    uri = f"file://{tmp_path}/music"
    files, skipped = cluster.list_inputs([uri, f"file://{tmp_path}/nothing", f"nosuch://{tmp_path}"])
    assert files == [f"{uri}/tone00.wav"]
    assert [s["error"] for s in skipped][0] == "no such file or folder" and "cannot list" in skipped[1]["error"]
    row = cluster.predict_row(model, files[0], 3, None, "m")
    plain = cluster.predict_row(model, str(clip), 3, None, "m")
    assert row == {**plain, "file": files[0]}
    warned = cluster.predict_row(model, f"file://{short}", 3, None, "m")
    assert f"file://{short}" in warned["warning"] and "genre_cnn-" not in warned["warning"]
    assert cluster.predict_row(model, f"file://{tmp_path}/gone.wav", 3, None, "m")["error"].startswith("cannot read")


def test_the_results_folder_is_locked_kept_to_one_model_and_cleaned(tmp_path):
    out = str(tmp_path / "out.parquet")
    rows = [{"file": "a.wav", "error": "empty file (0 bytes)"}, {"file": os.fsdecode(b"b\xff.wav"), "error": "x"}]
    with Results(out) as store:
        assert store.open("model one") == set()
        name = store.write(table(rows, ["rock", "jazz"], "model one"))
        with pytest.raises(GenreCnnError, match="another run is writing"):
            Results(out).open("model one")
    assert read_results(out) == [rows[0], {"file": "b\\xff.wav", "error": "x"}]
    with pytest.raises(GenreCnnError, match="holds answers of another model"):
        Results(out).open("model two")
    (tmp_path / "out.parquet" / f".{name}.x1.tmp").write_bytes(b"half")
    with Results(out) as store:
        assert store.open("model one") == {"a.wav", "b\\xff.wav"}
        assert store.write(table(rows[:1], ["rock", "jazz"], "model one")).startswith("part-00001-")
    assert not list((tmp_path / "out.parquet").glob(".*.tmp"))


def test_a_part_that_fails_while_written_leaves_nothing_behind(tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    def full_disk(table, where, **kwargs):
        where.write(b"PAR1" + b"\x00" * 100)
        raise OSError(28, "No space left on device")

    out = tmp_path / "out.parquet"
    with Results(str(out)) as store:
        store.open("m")
        monkeypatch.setattr(pq, "write_table", full_disk)
        with pytest.raises(OSError, match="No space left"):
            store.write(table([{"file": "a.wav", "error": "x"}], ["rock"], "m"))
    assert sorted(p.name for p in out.iterdir()) == [".lock"]


@pytest.mark.parametrize("args, message", [
    (["--ray"], "--ray writes its results into --out"),
    (["--out", "x.parquet"], "--ray writes its results into --out"),
    (["--ray", "--out", "x.parquet", "--json"], "not --json or --csv"),
])
def test_ray_needs_out_and_no_other_output(args, message, tmp_path, capsys):
    assert main(["predict", str(tmp_path), *args]) == 2
    assert message in capsys.readouterr().err


def test_a_path_right_after_ray_is_told_apart_from_an_address(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["predict", "--ray", str(tmp_path), "--out", str(tmp_path / "o")])
    assert exit_.value.code == 2 and "is not a Ray address" in capsys.readouterr().err
    assert all(map(is_ray_address, ("auto", "10.0.0.5:6379", "ray://head:10001")))
    assert not any(map(is_ray_address, ("music", "/srv/music", "s3://bucket/music")))


def test_an_unreachable_cluster_is_one_line(model, tmp_path, monkeypatch):
    ray = pytest.importorskip("ray", reason="the cluster extra is not installed (pip install -e .[cluster])")
    tones(tmp_path / "music", 1)

    def unreachable(**kwargs):
        raise ConnectionError(f"Failed to connect to Ray cluster at {kwargs['address']}")

    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", unreachable)
    with pytest.raises(GenreCnnError, match=r"^Failed to connect to Ray cluster at 10\.0\.0\.9:6379 .*RAY_AUTH_MODE"):
        cluster.predict_on_ray(model, [str(tmp_path / "music")], str(tmp_path / "out"), address="10.0.0.9:6379")
    assert read_results(tmp_path / "out") == []


def test_without_the_cluster_extra_it_says_what_to_install(model, tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ray" else find_spec(name, *a))
    with pytest.raises(GenreCnnError, match=r"pip install -e '\.\[cluster\]'"):
        cluster.predict_on_ray(model, [str(tmp_path)], str(tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()
