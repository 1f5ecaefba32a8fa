"""`genre-cnn sort SRC DEST`: every readable track appears once under DEST/<genre>/ (or _unsure/), the
manifest lists it, a rerun adds nothing, odd names survive, bad files are one line each, and no original is
ever changed."""

from __future__ import annotations

import csv
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from genre_cnn.cli import main
from genre_cnn.demo import DEMO_GENRES
from genre_cnn.sort import MANIFEST, place


def ckpt(demo_run) -> Path:
    return demo_run["root"] / "checkpoints" / demo_run["run"] / "cnn" / "best.ckpt"


def snapshot(root: Path) -> dict[str, str]:
    """relative path -> sha256 of every file under root (links followed)."""
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def messy_library(demo_dir, tmp_path) -> Path:
    """Two genres' demo clips under odd names (spaces, unicode, the same name in two folders), plus bad files."""
    src = tmp_path / "My Music"
    (src / "disc 1").mkdir(parents=True)
    (src / "disc 2 – été").mkdir()
    for i, genre in enumerate(DEMO_GENRES[:2]):
        shutil.copy(demo_dir / genre / f"{genre}.00001.wav", src / "disc 1" / f"track {i} ♫.wav")
        shutil.copy(demo_dir / genre / f"{genre}.00002.wav", src / "disc 2 – été" / f"track {i} ♫.wav")  # clash
    (src / "disc 1" / "broken.mp3").write_bytes(b"ID3 not really an mp3")
    (src / "disc 1" / "empty.wav").write_bytes(b"")
    (src / "notes.txt").write_text("not audio")
    return src


def sort_cli(demo_run, *args) -> int:
    return main(["sort", *map(str, args), "--ckpt", str(ckpt(demo_run)), "--no-progress"])


def manifest_rows(dest: Path) -> list[dict]:
    with open(dest / MANIFEST, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def test_sort_twice_links_every_track_once_and_changes_no_original(demo_run, messy_library, tmp_path, capsys):
    dest = tmp_path / "sorted"
    before = snapshot(messy_library)
    assert sort_cli(demo_run, messy_library, dest, "--min-confidence", "0") == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 4, err  # the model, one line per bad file, the summary
    assert "broken.mp3" in " ".join(err) and "empty.wav" in " ".join(err)
    assert err[-1].startswith("sorted 4 track(s)") and "2 could not be read" in err[-1]
    rows = manifest_rows(dest)
    assert sorted(Path(r["file"]).name for r in rows) == ["track 0 ♫.wav", "track 0 ♫.wav", "track 1 ♫.wav",
                                                          "track 1 ♫.wav"]
    assert all(r["genre"] in DEMO_GENRES and r["folder"] == r["genre"] and r["model"] for r in rows)
    for r in rows:
        placed = Path(r["dest"])
        assert placed.parent == dest / r["folder"] and os.path.samefile(placed, r["file"])
    assert len({r["dest"] for r in rows}) == 4 and len(list(dest.rglob("*.wav"))) == 4  # clashes got a suffix

    after_first = snapshot(dest)
    assert sort_cli(demo_run, messy_library, dest, "--min-confidence", "0") == 0  # the rerun adds nothing
    err = capsys.readouterr().err
    assert "sorted 0 track(s)" in err and "4 already in the manifest" in err
    assert snapshot(dest) == after_first and len(manifest_rows(dest)) == 4
    assert snapshot(messy_library) == before  # no original moved, modified or overwritten
    assert not any(p.is_symlink() for p in dest.rglob("*"))  # same filesystem: hard links


def test_sort_unsure_copy_and_dry_run(demo_run, messy_library, tmp_path, capsys):
    dry = tmp_path / "dry"
    assert sort_cli(demo_run, messy_library, dry, "--dry-run") == 0
    assert not dry.exists() and "would sort 4" in capsys.readouterr().err
    dest = tmp_path / "copies"
    assert sort_cli(demo_run, messy_library, dest, "--copy", "--min-confidence", "1.0") == 0
    rows = manifest_rows(dest)
    assert len(rows) == 4 and {r["folder"] for r in rows} == {"_unsure"}  # nobody is 100% sure
    for r in rows:
        assert not os.path.samefile(r["dest"], r["file"])  # independent copies ...
        assert Path(r["dest"]).read_bytes() == Path(r["file"]).read_bytes()  # ... of the same bytes
    assert not list(dest.rglob("*.partial"))


def test_place_never_replaces_an_existing_file(tmp_path):
    src = tmp_path / "song.wav"
    src.write_bytes(b"original")
    folder = tmp_path / "rock"
    folder.mkdir()
    (folder / "song.wav").write_bytes(b"someone else's song")
    first = place(src, folder, copy=False)
    assert first.name == "song (2).wav" and (folder / "song.wav").read_bytes() == b"someone else's song"
    assert place(src, folder, copy=False) == first  # already there: not linked twice
    assert place(src, folder, copy=True).name == "song (3).wav"
    assert src.read_bytes() == b"original"
