"""The beets plugin `genrecnn`, run by a real `beet` against a library in a temporary folder, on real clips."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from audio_formats import needs_ffmpeg
from conftest import GTZAN_MINI, needs_gtzan_mini

from genre_cnn.app.tagfile import read_genres
from genre_cnn.models.checkpoint import READY_MODEL

beets = pytest.importorskip("beets", reason="beets not installed (pip install -e .[beets])")
pytestmark = [needs_ffmpeg, needs_gtzan_mini, pytest.mark.slow]
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


def _beets(tmp_path: Path, write: bool, **plugin) -> tuple[callable, Path]:
    """A beets configuration in tmp_path (BEETSDIR) and a function running `beet ARGS...` with it."""
    home = tmp_path / "beetsdir"
    home.mkdir()
    options = {"ckpt": str(READY_MODEL), "engine": "torch", **plugin}
    (home / "config.yaml").write_text(
        f"directory: {tmp_path / 'lib'}\nlibrary: {tmp_path / 'lib.db'}\nplugins: [genrecnn]\n"
        f"import: {{write: {'yes' if write else 'no'}, copy: yes, quiet: yes, autotag: no}}\n"
        "genrecnn: {" + ", ".join(f"{k}: {v}" for k, v in options.items()) + "}\n")

    def beet(*args: str) -> str:
        env = {**os.environ, "BEETSDIR": str(home)}
        run = subprocess.run([str(BEET), *args], capture_output=True, text=True, env=env)
        assert run.returncode == 0 and "Traceback" not in run.stderr, run.stderr
        return run.stdout

    return beet, tmp_path / "lib.db"


def _items(db: Path) -> dict[str, object]:
    """The library's items by title, read through beets."""
    from beets.library import Library

    return {item.title: item for item in Library(str(db), str(db.with_name("lib"))).items()}


def test_import_sets_genres_and_fields_and_writes_the_library_copies(tmp_path):
    src = _clips(tmp_path / "src")
    beet, db = _beets(tmp_path, write=True, count=2, min_confidence=0.0)
    beet("import", "-s", str(tmp_path / "src"))
    items = _items(db)
    assert len(items) == 3
    for genre, path in src.items():
        item = items[f"{genre} one"]
        assert item.genres[0] == genre and len(item.genres) == 2  # two values of the list field
        assert 0.5 < float(item["genre_cnn_probability"]) <= 1.0 and item["genre_cnn_model"] == MODEL
        assert read_genres(Path(os.fsdecode(item.path))) == item.genres  # written as separate values
        assert read_genres(path) == []  # the imported original is not touched
    assert beet("ls", "-f", "$title", "genre_cnn_probability:0.5..").count(" one") == 3  # queryable


def test_command_respects_force_and_import_write(tmp_path):
    _clips(tmp_path / "src")
    beet, db = _beets(tmp_path, write=False, auto="no")
    beet("import", "-s", str(tmp_path / "src"))
    assert all(not item.genres for item in _items(db).values())  # auto: no
    beet("modify", "-y", "genres=Bossa Nova", "title:rock one")
    beet("genrecnn")
    items = _items(db)
    assert items["rock one"].genres == ["Bossa Nova"] and "genre_cnn_model" not in items["rock one"]
    assert items["jazz one"].genres == ["jazz"] and items["classical one"].genres == ["classical"]
    assert all(read_genres(Path(os.fsdecode(i.path))) == [] for i in items.values())  # import.write: no
    beet("genrecnn", "-f", "-w", "title:rock one")
    rock = _items(db)["rock one"]
    assert rock.genres == ["rock"] and read_genres(Path(os.fsdecode(rock.path))) == ["rock"]
