"""`genre-cnn sort SRC DEST`: every readable track appears once under DEST/<genre>/ (or _unsure/), the
manifest lists it, a rerun adds nothing, odd names survive, bad files are one line each, and no original is
ever changed (tests/test_sort_manifest.py: manifests a spreadsheet re-saved, names not UTF-8 or near 255 bytes)."""

from __future__ import annotations

import csv
import errno
import hashlib
import os
import shutil
from pathlib import Path

import pytest

from genre_cnn.app.cli import main
from genre_cnn.app.placing import append_row
from genre_cnn.app.sort import COLUMNS, LOCK, MANIFEST, place
from genre_cnn.data.demo import DEMO_GENRES


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
    import genre_cnn.app.sort

    def place(src, folder, how):
        if src.parent.name.endswith("(1985)"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_place(src, folder, how)

    real_place = genre_cnn.app.sort.place
    monkeypatch.setattr(genre_cnn.app.sort, "place", place)
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
    import genre_cnn.app.placing

    path = tmp_path / MANIFEST
    append_row(path, {"file": "a.wav", "genre": "jazz", "probability": "0.9", "dest": "x/a.wav"}, COLUMNS)
    before = path.read_bytes()

    def half_then_full(fd, data):
        os.write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(genre_cnn.app.placing, "_write_all", half_then_full)
    with pytest.raises(OSError):
        append_row(path, {"file": "b.wav", "genre": "rock", "probability": "0.8", "dest": "x/b.wav"}, COLUMNS)
    assert path.read_bytes() == before


def test_a_row_goes_into_the_manifests_own_columns(tmp_path):
    path = tmp_path / MANIFEST
    path.write_text("FILE;genre;probability;model;folder;dest;notes\n")  # six columns of an earlier version, and one
    append_row(path, {"file": "a.wav", "genre": "jazz", "dest": "x/a.wav", "verdict": "music"}, COLUMNS)
    assert path.read_text().splitlines()[1] == "a.wav;jazz;;;;x/a.wav;"
    append_row(tmp_path / "new.csv", {"file": "b.wav", "verdict": "not music"}, COLUMNS)
    assert (tmp_path / "new.csv").read_text().splitlines() == [",".join(COLUMNS), "b.wav,,,,,,not music"]


def test_a_track_placed_but_not_recorded_is_recorded_by_the_rerun_not_placed_again(demo_run, two_albums, tmp_path,
                                                                                   capsys, monkeypatch):
    import genre_cnn.app.sort

    def append_row(path, row, columns):
        if path.name == MANIFEST:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_append(path, row, columns)

    real_append, dest = genre_cnn.app.sort.append_row, tmp_path / "dest"
    with monkeypatch.context() as m:
        m.setattr(genre_cnn.app.sort, "append_row", append_row)
        assert sort_cli(demo_run, two_albums, dest, "--copy") == 1
    assert "could not be written (No space left on device); stopped" in capsys.readouterr().err
    assert len(list(dest.rglob("*.wav"))) == 1 and not (dest / MANIFEST).exists()
    assert sort_cli(demo_run, two_albums, dest, "--copy") == 0
    err = capsys.readouterr().err
    assert "recorded 1 track(s) placed by an interrupted sort" in err and "sorted 1 track(s)" in err
    assert len(manifest_rows(dest)) == 2 and len(list(dest.rglob("*.wav"))) == 2  # no " (2)" copy


def test_a_second_sort_into_the_same_dest_is_refused_in_one_line(demo_run, two_albums, tmp_path, capsys):
    import fcntl

    dest = tmp_path / "dest"
    dest.mkdir()
    with open(dest / LOCK, "w") as held:  # another sort holds DEST
        fcntl.flock(held, fcntl.LOCK_EX)
        held.write("4242\n")
        held.flush()
        assert sort_cli(demo_run, two_albums, dest) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1] == f"error: {dest}: another genre-cnn sort (process 4242) is sorting into it; run this one " \
                      "when it has finished"
    assert not (dest / MANIFEST).exists()
    assert sort_cli(demo_run, two_albums, dest) == 0  # released: this one may run


def test_src_inside_dest_is_sorted_and_dest_s_own_folders_never_are(demo_run, two_albums, tmp_path, capsys):
    lib = tmp_path / "lib"
    lib.mkdir()
    unsorted = Path(shutil.move(two_albums, lib / "unsorted"))
    assert sort_cli(demo_run, unsorted, lib) == 0  # sort lib/unsorted lib
    assert "sorted 2 track(s)" in capsys.readouterr().err and len(manifest_rows(lib)) == 2
    assert sort_cli(demo_run, lib, lib) == 0  # lib's genre folders hold links, not new tracks
    err = capsys.readouterr().err
    assert "sorted 0 track(s)" in err and "2 already in the manifest" in err
    assert len(manifest_rows(lib)) == 2 and len(list(lib.rglob("*.wav"))) == 4


def test_dest_given_as_a_symlink_into_src_is_recognised(demo_run, two_albums, tmp_path, capsys):
    (two_albums / "sorted").mkdir()
    dest = tmp_path / "by-genre"
    dest.symlink_to(two_albums / "sorted")
    for _ in range(2):
        assert sort_cli(demo_run, two_albums, dest, "--symlink") == 0
    err = capsys.readouterr().err.splitlines()
    assert "sorted 0 track(s)" in err[-1] and "2 already in the manifest" in err[-1]
    assert len(manifest_rows(dest)) == 2 and len(list(dest.rglob("*.wav"))) == 2


def test_an_unreadable_sub_folder_is_one_line(demo_run, two_albums, tmp_path, capsys, monkeypatch):
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path).name == "Légende (1985)":
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert sort_cli(demo_run, two_albums, tmp_path / "dest") == 0
    err = capsys.readouterr().err
    assert f"{two_albums / 'Bob Marley' / 'Légende (1985)'}: cannot read this folder (Permission denied); its " \
           "tracks are not sorted" in err.splitlines()
    assert "sorted 1 track(s)" in err


@pytest.mark.parametrize("kind", ["under a file", pytest.param("read-only", marks=pytest.mark.skipif(
    os.geteuid() == 0, reason="root writes into read-only folders"))])
def test_an_unwritable_dest_is_found_before_predicting(demo_run, two_albums, tmp_path, capsys, monkeypatch, kind):
    from genre_cnn.inference.session import Predictor

    predicted = []
    monkeypatch.setattr(Predictor, "predict_many", lambda *a, **k: predicted.append(a) or iter(()))
    dest = tmp_path / "dest"
    if kind == "read-only":
        dest.mkdir(mode=0o555)
    else:
        (tmp_path / "a file").write_text("")
        dest = tmp_path / "a file" / "dest"
    assert sort_cli(demo_run, two_albums, dest) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[-1].startswith(f"error: {dest}: cannot write here (") and not predicted


DIE = """
import os, shutil, signal, sys
import genre_cnn.app.sort
from genre_cnn.app.cli import main
real_append = genre_cnn.app.sort.append_row
def copyfileobj(fin, fout, length=0):  # kill -9 half-way through a copy
    fout.write(fin.read(5000))
    fout.flush()
    os.kill(os.getpid(), signal.SIGKILL)
def append_row(path, row, columns):  # kill -9 between placing a track and recording it
    if path.name == genre_cnn.app.sort.MANIFEST:
        os.kill(os.getpid(), signal.SIGKILL)
    real_append(path, row, columns)
if sys.argv[1] == "copying":
    shutil.copyfileobj = copyfileobj
else:
    genre_cnn.app.sort.append_row = append_row
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.slow  # a second process loads the model
@pytest.mark.parametrize("when", ["copying", "recording"])
def test_a_sort_killed_with_sigkill_is_finished_by_the_rerun(demo_run, two_albums, tmp_path, capsys, when):
    import subprocess
    import sys

    dest = tmp_path / "dest"
    args = ["sort", str(two_albums), str(dest), "--copy", "--ckpt", str(ckpt(demo_run)), "--no-progress",
            "--workers", "1"]  # no worker pool outliving the killed process
    killed = subprocess.run([sys.executable, "-c", DIE, when, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, timeout=300)
    assert killed.returncode == -9, killed.stderr
    partials = list(dest.rglob("*.partial"))
    assert len(partials) == (when == "copying") and all(p.stat().st_size == 5000 for p in partials)
    assert len(list(dest.rglob("*.wav"))) == (when == "recording")
    assert main(args) == 0
    err = capsys.readouterr().err
    if when == "copying":
        assert "removed 1 unfinished copy left by an interrupted sort" in err and "sorted 2 track(s)" in err
    else:
        assert "recorded 1 track(s) placed by an interrupted sort" in err and "sorted 1 track(s)" in err
    assert not list(dest.rglob("*.partial")) and len(list(dest.rglob("*.wav"))) == 2  # none twice
    assert sorted(Path(r["dest"]).name for r in manifest_rows(dest)) == ["01 Is This Love.wav"] * 2

