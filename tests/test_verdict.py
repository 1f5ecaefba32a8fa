"""Every command honours the model's open-set verdict: a file it judges "not music" or "unfamiliar" gets no genre.

    .venv/bin/python -m pytest -q tests/test_verdict.py

A result carries the verdict as {"music": {"verdict", "familiarity", "music_probability"}} when the model has a
detector (genre_cnn.inference.session). These tests give chosen files a chosen verdict at the one place results are
made (genre_cnn.inference.predict.result), so the real code paths of `predict`, `sort`, `tag`, the Python API, the
Ray results, the page and the beets plugin run on them; a file given no verdict behaves as with a model without a
detector. The ready model's shipped ONNX graph answers, in this process (--workers 1).
"""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.app.cli import main
from genre_cnn.inference import predict
from genre_cnn.inference.session import choose_genres
from genre_cnn.models.checkpoint import READY_MODEL

READY = ["--ckpt", str(READY_MODEL), "--workers", "1", "--no-progress"]
SAID = {"music": 0.41, "unfamiliar": 0.02, "not music": 0.01}  # each verdict's familiarity in these tests


@pytest.fixture
def judged(monkeypatch):
    """Gives the files whose stem starts with a verdict ("music", "unfamiliar", "not music", "none": no verdict)
    that verdict in their results."""

    real = predict.result

    def result(path, *args, **kwargs):
        out = real(path, *args, **kwargs)
        out.pop("music", None)  # whatever the model says: the test decides
        kind = next((k for k in SAID if Path(path).stem.startswith(k.replace(" ", "_"))), None)
        if kind:
            out["music"] = {"verdict": kind, "familiarity": SAID[kind], "music_probability": 0.9 - SAID[kind]}
        return out

    monkeypatch.setattr(predict, "result", result)


def songs(folder: Path, stems: list[str], suffix: str = ".wav") -> list[Path]:
    """4-s chords (a different one each) at 16 kHz under `stems`."""
    folder.mkdir(parents=True, exist_ok=True)
    t, out = np.arange(4 * 16000) / 16000, []
    for i, stem in enumerate(stems):
        y = sum(np.sin(2 * np.pi * f * t) for f in (220 * (1 + i / 7), 330, 440 + 50 * i)) / 5
        out.append(folder / f"{stem}{suffix}")
        sf.write(out[-1], y.astype(np.float32), 16000)
    return out


def test_only_music_may_get_a_genre():
    top = [{"genre": "jazz", "probability": 0.9}, {"genre": "blues", "probability": 0.05}]
    old = {"top": top}  # a model without a detector: as before
    assert choose_genres(old, 2, 0.5).genres == top[:1] and choose_genres(old, 2, 0.95).reason == "below"
    music = {"top": top, "music": {"verdict": "music", "familiarity": 0.4, "music_probability": 0.9}}
    assert choose_genres(music, 1, 0.5).genres == top[:1]
    for kind in ("unfamiliar", "not music"):
        decision = choose_genres({"top": top, "music": {**music["music"], "verdict": kind}}, 1, 0.0)
        assert decision.genres == [] and decision.reason == kind and decision.top == top[0]


def test_predict_shows_the_verdict_in_the_table_json_and_csv(judged, tmp_path, capsys):
    files = songs(tmp_path, ["music a", "not_music b", "unfamiliar c"])
    assert main(["predict", *map(str, files), *READY]) == 0
    table = [" ".join(line.split()) for line in capsys.readouterr().out.splitlines()]  # columns' padding aside
    assert table[1].split()[:2] == ["file", "verdict"]
    assert "music (familiarity 0.41)" in table[3] and "%" in table[3]
    assert table[4].endswith("not music (familiarity 0.01) -- no genre") and "%" not in table[4]
    assert table[5].endswith("unfamiliar (familiarity 0.02) -- no genre")

    assert main(["predict", *map(str, files), *READY, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["music"]["verdict"] for r in rows] == ["music", "not music", "unfamiliar"]

    assert main(["predict", *map(str, files), str(tmp_path / "gone.wav"), *READY, "--csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert list(rows[0])[:5] == ["file", "prediction", "verdict", "familiarity", "music_probability"]
    assert [(r["verdict"], r["familiarity"]) for r in rows] == [("", ""), ("music", "0.410000"),
                                                                ("not music", "0.010000"), ("unfamiliar", "0.020000")]
    assert rows[1]["prediction"] and not rows[2]["prediction"] and not rows[3]["prediction"]
    assert rows[0]["error"] and 0 <= float(rows[2]["jazz"]) <= 1  # its probabilities are kept


def test_without_a_verdict_the_table_and_csv_are_as_before(judged, tmp_path, capsys):
    files = songs(tmp_path, ["none a"])
    assert main(["predict", *map(str, files), *READY]) == 0
    assert capsys.readouterr().out.splitlines()[1].split() == ["file", "top-1", "top-2", "top-3"]
    assert main(["predict", *map(str, files), *READY, "--csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0].split(",")[:3] == ["file", "prediction", "blues"]


def test_sort_sends_not_music_and_unfamiliar_to_their_folders(judged, tmp_path, capsys):
    src, dest = tmp_path / "src", tmp_path / "dest"
    songs(src, ["music a", "not_music b", "unfamiliar c", "none d"])
    assert main(["sort", str(src), str(dest), *READY, "--min-confidence", "0", "--dry-run"]) == 0
    plan = capsys.readouterr().out  # the plan on stdout, as for every track
    assert "_not_music/ (" in plan and "not music (familiarity 0.01))" in plan and "_unsure/ (" in plan
    assert not dest.exists()
    assert main(["sort", str(src), str(dest), *READY, "--min-confidence", "0"]) == 0
    err = capsys.readouterr().err.splitlines()
    rows = {Path(r["file"]).stem: r for r in csv.DictReader(open(dest / "manifest.csv", encoding="utf-8"))}
    assert rows["not_music b"]["folder"] == "_not_music" and rows["unfamiliar c"]["folder"] == "_unsure"
    assert rows["music a"]["folder"] == rows["music a"]["genre"] and rows["none d"]["folder"] == rows["none d"]["genre"]
    assert [rows[k]["verdict"] for k in sorted(rows)] == ["music", "", "not music", "unfamiliar"]
    assert (dest / "_not_music" / "not_music b.wav").is_file() and (dest / "_unsure" / "unfamiliar c.wav").is_file()
    assert "1 unfamiliar in _unsure/; 1 not music in _not_music/;" in err[-1]
    assert main(["sort", str(src), str(dest), *READY]) == 0  # a rerun: _not_music/ is DEST's own, never a source
    assert "sorted 0 track(s)" in capsys.readouterr().err


def test_tag_leaves_not_music_alone_and_counts_it(judged, tmp_path, capsys):
    from genre_cnn.app.tagfile import read_genres

    music, speech, odd = songs(tmp_path / "lib", ["music a", "not_music b", "unfamiliar c"], ".flac")
    before = speech.read_bytes(), odd.read_bytes()
    assert main(["tag", str(tmp_path / "lib"), *READY, "--min-confidence", "0", "--log", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert f"{speech}: not music (familiarity 0.01); not tagged" in err
    assert "2 not music or unfamiliar: left alone" in err.splitlines()[-1]
    assert len(read_genres(music)) == 1 and (speech.read_bytes(), odd.read_bytes()) == before
    report = {Path(r["file"]).stem: r for r in json.loads((tmp_path / "run.report.json").read_text())["files"]}
    assert report["not_music b"]["status"] == "not music" and report["unfamiliar c"]["status"] == "unfamiliar"
    assert report["music a"]["status"] == "tagged" and report["music a"]["music"]["verdict"] == "music"


def test_the_python_api_the_ray_table_and_the_page_carry_it(judged, tmp_path):
    pytest.importorskip("pyarrow", reason="the cluster extra is not installed (pip install -e .[cluster])")
    from genre_cnn import load_model, predict_file, predict_waveform
    from genre_cnn.app.cluster_results import Results, read_results, table
    from genre_cnn.app.serve_analysis import analyse

    speech, plain = songs(tmp_path, ["not_music a", "none b"])
    model = load_model(READY_MODEL)
    assert predict_file(model, speech)["music"]["verdict"] == "not music" and "music" not in predict_file(model, plain)
    assert "music" not in predict_waveform(model, sf.read(plain)[0], 16000)  # heard as a file "waveform.wav" is
    rows = [{**predict_file(model, f), "model": "m"} for f in (speech, plain)]
    with Results(str(tmp_path / "out")) as store:
        store.open("m")
        store.write(table(rows, model.genres, "m"))
    assert read_results(tmp_path / "out") == rows  # the verdict's columns, and none for a result without one
    page = analyse(model, speech)
    assert page["music"] == rows[0]["music"] and analyse(model, plain)["music"] is None
    html = (Path(__file__).resolve().parents[1] / "genre_cnn" / "app" / "static" / "serve.html").read_text()
    assert "This does not sound like music," in html and "music the model does not know" in html
    assert 'r.music.verdict !== "music"' in html


def test_beets_leaves_not_music_alone_and_records_the_verdict(judged, tmp_path, capsys):
    pytest.importorskip("beets", reason="beets not installed (pip install -e .[beets])")
    from types import SimpleNamespace

    from beets import config
    from beets.library import Item, Library

    from beetsplug.genrecnn import GenreCnnPlugin

    config.clear()
    config.read(user=False, defaults=True)
    config["genrecnn"].set({"ckpt": str(READY_MODEL), "min_confidence": 0.0, "auto": False})
    lib = Library(str(tmp_path / "lib.db"), str(tmp_path / "lib"))
    for path in songs(tmp_path / "src", ["music a", "not_music b", "none c"]):
        lib.add(Item.from_path(os.fsencode(path)))
    plugin = GenreCnnPlugin()
    plugin.command(lib, SimpleNamespace(force=None, workers=1, write=False, pretend=False, learn=False), [])
    assert "1 not music or unfamiliar: left alone" in capsys.readouterr().out
    items = {Path(os.fsdecode(i.path)).stem: i for i in lib.items()}
    speech, music, plain = items["not_music b"], items["music a"], items["none c"]
    assert not plugin.existing(speech) and speech["genre_cnn_verdict"] == "not music"
    assert float(speech["genre_cnn_familiarity"]) == pytest.approx(0.01) and "genre_cnn_model" not in speech
    assert plugin.existing(music) and music["genre_cnn_verdict"] == "music"
    assert plugin.existing(plain) and "genre_cnn_verdict" not in plain
    assert [i.path for i in lib.items('genre_cnn_verdict:"not music"')] == [speech.path]  # a query finds them
