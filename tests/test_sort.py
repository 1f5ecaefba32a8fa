"""`genre-cnn sort SRC DEST`: every readable track appears once under DEST/<genre>/ (or _unsure/), the
manifest lists it, a rerun adds nothing, odd names survive, bad files are one line each, and no original is
ever changed."""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from genre_cnn.cli import main
from genre_cnn.demo import DEMO_GENRES
from genre_cnn.placing import append_row
from genre_cnn.sort import COLUMNS, LOCK, MANIFEST, place


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
    first = place(src, folder, how="link")
    assert first.name == "song (2).wav" and (folder / "song.wav").read_bytes() == b"someone else's song"
    assert place(src, folder, how="link") == first  # already there: not linked twice
    assert place(src, folder, how="copy").name == "song (3).wav"
    assert src.read_bytes() == b"original"


@pytest.fixture
def two_albums(demo_dir, tmp_path) -> Path:
    """Artist/Album folders holding two tracks of the same name (the demo's first two genres)."""
    src = tmp_path / "unsorted"
    for i, genre in enumerate(DEMO_GENRES[:2]):
        album = src / "Bob Marley" / f"Légende ({1984 + i})"
        album.mkdir(parents=True)
        shutil.copy(demo_dir / genre / f"{genre}.00003.wav", album / "01 Is This Love.wav")
    return src


def test_keep_path_mirrors_the_source_tree_under_each_genre(demo_run, two_albums, tmp_path, capsys):
    dest = tmp_path / "by-genre"
    assert sort_cli(demo_run, two_albums, dest, "--keep-path", "--min-confidence", "0") == 0
    rows = manifest_rows(dest)
    assert len(rows) == 2
    for r in rows:
        rel = Path(r["file"]).relative_to(two_albums.resolve())  # Bob Marley/Légende (198x)/01 Is This Love.wav
        assert Path(r["dest"]) == dest / r["folder"] / rel and os.path.samefile(r["dest"], r["file"])
    assert not list(dest.rglob("* (2).wav"))  # same names in two albums: no clash once the path is kept


def test_symlink_links_every_track_to_its_original(demo_run, two_albums, tmp_path, capsys):
    dest = tmp_path / "links"
    assert sort_cli(demo_run, two_albums, dest, "--symlink") == 0
    rows = manifest_rows(dest)
    assert len(rows) == 2
    for r in rows:
        assert Path(r["dest"]).is_symlink() and os.readlink(r["dest"]) == os.path.realpath(r["file"])


def test_an_empty_source_says_so_and_writes_nothing(demo_run, tmp_path, capsys):
    src, dest = tmp_path / "empty", tmp_path / "dest"
    (src / "sub").mkdir(parents=True)
    (src / "cover.jpg").write_bytes(b"\xff\xd8")
    assert sort_cli(demo_run, src, dest) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith("nothing to sort: no audio files in") and len(err) == 3, err  # model, folder, this
    assert "could not be read" not in "\n".join(err) and "manifest" not in "\n".join(err)
    assert not dest.exists()


def test_a_short_track_gets_the_warning_predict_gives(demo_run, demo_dir, tmp_path, capsys):
    import soundfile as sf

    y, sr = sf.read(demo_dir / DEMO_GENRES[0] / f"{DEMO_GENRES[0]}.00001.wav")
    (tmp_path / "src").mkdir()
    sf.write(tmp_path / "src" / "jingle.wav", y[: 2 * sr], sr)  # 2 s
    assert sort_cli(demo_run, tmp_path / "src", tmp_path / "dest") == 0
    err = capsys.readouterr().err
    assert "warning:" in err and "jingle.wav: only 2.0 s" in err and "sorted 1 track(s)" in err


def test_a_track_that_cannot_be_placed_is_not_counted_and_fails_the_run(demo_run, two_albums, tmp_path, capsys,
                                                                        monkeypatch):
    import genre_cnn.sort

    def place(src, folder, how):
        if src.parent.name.endswith("(1985)"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_place(src, folder, how)

    real_place = genre_cnn.sort.place
    monkeypatch.setattr(genre_cnn.sort, "place", place)
    assert sort_cli(demo_run, two_albums, tmp_path / "dest", "--min-confidence", "0") == 1
    err = capsys.readouterr().err
    assert "(1985)/01 Is This Love.wav: could not be placed in" in err and "Permission denied" in err
    assert "sorted 1 track(s)" in err and "1 could not be placed" in err
    assert len(manifest_rows(tmp_path / "dest")) == 1


def fill_disk_after(n_bytes: int):
    """A shutil.copyfileobj that writes n_bytes, then fails as a full disk does."""

    def copyfileobj(fin, fout, length=0):
        fout.write(fin.read(n_bytes))
        fout.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    return copyfileobj


def test_copy_onto_a_full_disk_leaves_no_partial_and_a_rerun_finishes(demo_run, two_albums, tmp_path, capsys,
                                                                       monkeypatch):
    dest = tmp_path / "full"
    with monkeypatch.context() as m:
        m.setattr(shutil, "copyfileobj", fill_disk_after(1000))
        assert sort_cli(demo_run, two_albums, dest, "--copy") == 1
    err = capsys.readouterr().err
    assert "No space left on device; stopped, 1 track(s) not tried" in err and "sorted 0 track(s)" in err
    assert not [p for p in dest.rglob("*") if p.is_file() and p.name not in (MANIFEST, LOCK)]
    assert sort_cli(demo_run, two_albums, dest, "--copy") == 0  # room again: the rerun places both, once
    assert "sorted 2 track(s)" in capsys.readouterr().err
    assert len(manifest_rows(dest)) == 2 and len(list(dest.rglob("*.wav"))) == 2


def test_a_failed_row_write_leaves_the_manifest_as_it_was(tmp_path, monkeypatch):
    import genre_cnn.placing

    path = tmp_path / MANIFEST
    append_row(path, ["a.wav", "jazz", "0.9", "m", "jazz", "x/a.wav"], COLUMNS)
    before = path.read_bytes()

    def half_then_full(fd, data):
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(genre_cnn.placing, "_write_all", half_then_full)
    with pytest.raises(OSError):
        append_row(path, ["b.wav", "rock", "0.8", "m", "rock", "x/b.wav"], COLUMNS)
    assert path.read_bytes() == before


def test_a_track_placed_but_not_recorded_is_recorded_by_the_rerun_not_placed_again(demo_run, two_albums, tmp_path,
                                                                                   capsys, monkeypatch):
    import genre_cnn.sort

    def append_row(path, row, columns):
        if path.name == MANIFEST:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(path, row, columns)

    real_append, dest = genre_cnn.sort.append_row, tmp_path / "dest"
    with monkeypatch.context() as m:
        m.setattr(genre_cnn.sort, "append_row", append_row)
        assert sort_cli(demo_run, two_albums, dest, "--copy") == 1
    assert "could not be written (No space left on device); stopped" in capsys.readouterr().err
    assert len(list(dest.rglob("*.wav"))) == 1 and not (dest / MANIFEST).exists()
    assert sort_cli(demo_run, two_albums, dest, "--copy") == 0
    err = capsys.readouterr().err
    assert "recorded 1 track(s) placed by an interrupted sort" in err and "sorted 1 track(s)" in err
    assert len(manifest_rows(dest)) == 2 and len(list(dest.rglob("*.wav"))) == 2  # no " (2)" copy
