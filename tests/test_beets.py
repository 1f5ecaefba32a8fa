"""The beets plugin `genrecnn`, run by a real `beet` against a library in a temporary folder, on real clips; bad
options are one line through beets' own error."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from audio_formats import needs_ffmpeg
from conftest import GTZAN_MINI, needs_gtzan_mini

from genre_cnn.app.tagfile import read_genres
from genre_cnn.genres import display
from genre_cnn.models.checkpoint import READY_MODEL

beets = pytest.importorskip("beets", reason="beets not installed (pip install -e .[beets])")


def real_clips(test):
    """The marks of a test on real clips: ffmpeg makes them from gtzan_mini; a second process loads the model."""
    return pytest.mark.slow(needs_ffmpeg(needs_gtzan_mini(test)))
BEET = Path(sys.executable).with_name("beet")
CLIPS = {"rock": "flac", "jazz": "mp3", "classical": "flac"}  # genre of the gtzan_mini clip: format
MODEL = "genre_cnn/ready/musicnn_gtzan_mini"


def _clips(folder: Path) -> dict[str, Path]:
    """4 s of clip 00001 of each genre in CLIPS, with title and artist tags."""
    folder.mkdir()
    out = {}
    for genre, fmt in CLIPS.items():
        out[genre] = folder / f"{genre}.{fmt}"
        subprocess.run(["ffmpeg", "-v", "error", "-t", "4", "-i", str(GTZAN_MINI / "genres" / genre /
                        f"{genre}.00001.wav"), "-metadata", f"title={genre} one", "-metadata", "artist=Someone",
                        str(out[genre])], check=True)
    return out


def _beets(tmp_path: Path, write: bool, ok: bool = True, **plugin) -> tuple[callable, Path]:
    """A beets configuration in tmp_path (BEETSDIR) and a function running `beet ARGS...` with it (that must
    succeed, or with ok=False return its stderr)."""
    home = tmp_path / "beetsdir"
    home.mkdir()
    options = {"ckpt": str(READY_MODEL), **plugin}
    (home / "config.yaml").write_text(
        f"directory: {tmp_path / 'lib'}\nlibrary: {tmp_path / 'lib.db'}\nplugins: [genrecnn]\n"
        f"import: {{write: {'yes' if write else 'no'}, copy: yes, quiet: yes, autotag: no}}\n"
        "genrecnn: {" + ", ".join(f"{k}: {v}" for k, v in options.items()) + "}\n")

    def beet(*args: str) -> str:
        env = {**os.environ, "BEETSDIR": str(home)}
        run = subprocess.run([str(BEET), *args], capture_output=True, text=True, env=env)
        assert "Traceback" not in run.stderr, run.stderr
        assert (run.returncode == 0) == ok, run.stderr
        return run.stdout if ok else run.stderr

    return beet, tmp_path / "lib.db"


def _items(db: Path) -> dict[str, object]:
    """The library's items by title, read through beets."""
    from beets.library import Library

    return {item.title: item for item in Library(str(db), str(db.with_name("lib"))).items()}


@pytest.mark.parametrize(("option", "says"), [
    ("count: -1", "count: -1 is not allowed: give a number at least 1"),
    ("count: 0", "count: 0 is not allowed: give a number at least 1"),
    ("max_windows: -3", "max_windows: -3 is not allowed: give a number at least 1"),
    ("min_confidence: 2", "min_confidence: 2 is not allowed: give a number between 0 and 1"),
    ("count: many", "count"),
    ("engine: gpu", "engine: 'gpu' is not one of auto, onnx, torch"),
    ("ckpt: /nonexistent/model.ckpt", "/nonexistent/model.ckpt: no such checkpoint file"),
    ("genre_map: /nonexistent/genres.txt", "/nonexistent/genres.txt: the genre mapping cannot be read")])
def test_a_bad_option_is_one_line_through_beets_error(tmp_path, option, says):
    key, value = option.split(": ")
    beet, _ = _beets(tmp_path, write=False, ok=False, **{key: value})
    err = beet("genrecnn").strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: genrecnn: ") and says in err[0], err


def test_help_shows_the_query(tmp_path):
    beet, _ = _beets(tmp_path, write=False)
    assert "Usage: beet genrecnn [options] [QUERY]" in beet("genrecnn", "-h")


@real_clips
def test_import_sets_genres_and_fields_and_writes_the_library_copies(tmp_path):
    src = _clips(tmp_path / "src")
    beet, db = _beets(tmp_path, write=True, count=2, min_confidence=0.0)
    beet("import", "-s", str(tmp_path / "src"))
    items = _items(db)
    assert len(items) == 3
    for genre, path in src.items():
        item = items[f"{genre} one"]
        assert item.genres[0] == display(genre) and len(item.genres) == 2  # two values, the usual spelling
        assert 0.5 < float(item["genre_cnn_probability"]) <= 1.0 and item["genre_cnn_model"] == MODEL
        assert read_genres(Path(os.fsdecode(item.path))) == item.genres  # written as separate values
        assert read_genres(path) == []  # the imported original is not touched
    assert beet("ls", "-f", "$title", "genre_cnn_probability:0.5..").count(" one") == 3  # queryable


@real_clips
def test_command_respects_force_and_import_write_and_sums_up(tmp_path):
    _clips(tmp_path / "src")
    beet, db = _beets(tmp_path, write=False, auto="no")
    beet("import", "-s", str(tmp_path / "src"))
    assert all(not item.genres for item in _items(db).values())  # auto: no
    beet("modify", "-y", "genres=Bossa Nova", "title:rock one")
    assert "genrecnn: 2 set, 1 kept, 0 below the threshold" in beet("genrecnn")
    items = _items(db)
    assert items["rock one"].genres == ["Bossa Nova"] and "genre_cnn_model" not in items["rock one"]
    assert items["jazz one"].genres == ["Jazz"] and items["classical one"].genres == ["Classical"]
    assert all(read_genres(Path(os.fsdecode(i.path))) == [] for i in items.values())  # import.write: no
    assert "genrecnn: 0 set, 3 kept, 0 below the threshold" in beet("genrecnn")  # a rerun says so too
    beet("modify", "-y", "genres=jazz", "title:jazz one")
    assert "genrecnn: 1 set, 1 kept" in beet("genrecnn", "-f", "-w", "title:rock one", ",", "title:jazz one")
    rock, jazz = _items(db)["rock one"], _items(db)["jazz one"]
    assert rock.genres == ["Rock"] and read_genres(Path(os.fsdecode(rock.path))) == ["Rock"]
    assert jazz.genres == ["jazz"]  # the same genre, spelled otherwise: kept as it is
