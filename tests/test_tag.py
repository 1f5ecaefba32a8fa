"""`genre-cnn tag`: the genre written into each real file's own tags, nothing else changed, undoable, safe."""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from audio_formats import FORMATS, decoded_md5, make_formats, needs_clip, needs_ffmpeg, other_tags

from genre_cnn.app import tag as tag_module
from genre_cnn.app.cli import main
from genre_cnn.app.tag import tag_files
from genre_cnn.app.tagfile import TMP_SUFFIX, read_genres, write_genres
from genre_cnn.app.tagundo import read_log, undo
from genre_cnn.inference.session import Predictor
from genre_cnn.models.checkpoint import READY_MODEL

try:
    from mediafile import MediaFile  # beets' tag reader
except ImportError:
    MediaFile = None
pytestmark = [needs_ffmpeg, needs_clip]
MODEL = "genre_cnn/ready/musicnn_gtzan_mini"
CLI = ["--ckpt", str(READY_MODEL), "--workers", "1", "--no-progress"]


@pytest.fixture(scope="module")
def originals(tmp_path_factory) -> dict[str, Path]:
    return make_formats(tmp_path_factory.mktemp("formats"))


@pytest.fixture(scope="module")
def model():
    """The ready model through PyTorch."""
    from genre_cnn.inference.session import Predictor

    return Predictor.open(READY_MODEL, "torch")


@pytest.fixture
def library(originals, tmp_path) -> dict[str, Path]:
    """A fresh copy of every format in tmp_path/lib."""
    (tmp_path / "lib").mkdir()
    return {fmt: Path(shutil.copy(path, tmp_path / "lib" / path.name)) for fmt, path in originals.items()}


def _tag(model, paths, tmp_path, **kw) -> dict:
    assert model.label == MODEL
    return tag_files(model, paths, log_stem=tmp_path / "run", workers=1, progress=False, **kw)


def test_every_format_gets_separate_genre_values_and_nothing_else_changes(model, library, tmp_path):
    before = {fmt: (other_tags(p), decoded_md5(p)) for fmt, p in library.items()}
    summary = _tag(model, [tmp_path / "lib"], tmp_path, count=2, min_confidence=0.0)
    assert summary["tagged"] == len(FORMATS) and summary["failed"] == 0
    report = {Path(r["file"]).suffix[1:]: r for r in json.loads((tmp_path / "run.report.json").read_text())["files"]}
    for fmt, path in library.items():
        genres = read_genres(path)
        assert genres == report[fmt]["genres"] and len(genres) == 2, fmt  # two values, not "jazz; blues"
        assert genres[0] == "Jazz", fmt  # the usual spelling, not the class id
        if MediaFile is not None:  # what beets reads
            assert MediaFile(str(path)).genres == genres, fmt
        assert (other_tags(path), decoded_md5(path)) == before[fmt], fmt
    assert undo([tmp_path / "run.undo.jsonl"])["restored"] == len(FORMATS)
    for fmt, path in library.items():
        assert read_genres(path) == [] and (other_tags(path), decoded_md5(path)) == before[fmt], fmt


def test_existing_genre_kept_unless_overwrite_and_undo_restores_it_exactly(model, library, tmp_path):
    mp3, flac = library["mp3"], library["flac"]
    write_genres(mp3, ["Bossa Nova", "Samba"])
    write_genres(flac, ["Jazz"])
    summary = _tag(model, [mp3, flac], tmp_path)
    assert summary["skipped"] == 2 and read_genres(mp3) == ["Bossa Nova", "Samba"]
    summary = _tag(model, [mp3, flac], tmp_path, overwrite=True)
    assert summary["tagged"] == 1 and read_genres(mp3) == ["Jazz"]
    assert summary["skipped"] == 1 and read_genres(flac) == ["Jazz"]  # already Jazz: nothing to write
    assert main(["tag", "--undo", str(tmp_path / "run")]) == 0  # the --log STEM names the undo log
    assert read_genres(mp3) == ["Bossa Nova", "Samba"] and read_genres(flac) == ["Jazz"]


def test_an_id3v23_tag_stays_v23_with_separate_values(originals, tmp_path):
    from mutagen.id3 import ID3

    path = tmp_path / "v23.mp3"
    subprocess.run(["ffmpeg", "-v", "error", "-i", str(originals["mp3"]), "-c", "copy", "-id3v2_version", "3",
                    "-metadata", "genre=Jazz", str(path)], check=True)
    assert ID3(path).version == (2, 3, 0) and read_genres(path) == ["Jazz"]
    write_genres(path, ["Jazz", "Blues"])
    assert ID3(path).version == (2, 3, 0) and read_genres(path) == ["Jazz", "Blues"]
    assert ID3(path).getall("TIT2")[0].text == ["Só Danço Samba"]


def test_dry_run_prints_the_plan_and_changes_nothing(library, capsys):
    bytes_before = {p: p.read_bytes() for p in library.values()}
    write_genres(library["ogg"], ["Cool Jazz"])
    assert main(["tag", str(library["mp3"]), str(library["ogg"]), "--overwrite", "--dry-run", *CLI]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"{library['mp3']}: (none) -> Jazz (") and out[0].endswith(f", {MODEL})")
    assert out[1].startswith(f"{library['ogg']}: Cool Jazz -> Jazz (")
    assert library["mp3"].read_bytes() == bytes_before[library["mp3"]]
    assert read_genres(library["ogg"]) == ["Cool Jazz"]


def test_min_confidence_leaves_a_doubtful_file_alone(model, library, tmp_path):
    summary = _tag(model, [library["wav"]], tmp_path, count=3, min_confidence=1.0)
    assert summary["unsure"] == 1 and summary["tagged"] == 0 and read_genres(library["wav"]) == []


def test_hard_link_is_not_written_through_without_force(library, tmp_path, capsys):
    other = tmp_path / "linked.mp3"
    os.link(library["mp3"], other)
    assert main(["tag", str(library["mp3"]), *CLI, "--log", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "1 file(s) have other hard links" in err and "--symlink" in err and read_genres(library["mp3"]) == []
    assert main(["tag", str(library["mp3"]), *CLI, "--log", str(tmp_path / "run"), "--force"]) == 0
    assert read_genres(library["mp3"]) == ["Jazz"] and read_genres(other) == []  # the other name keeps its file


def test_a_symbolic_link_stays_a_link_and_its_target_is_tagged(library, tmp_path):
    link = tmp_path / "link.ogg"
    link.symlink_to(library["ogg"])
    assert main(["tag", str(link), *CLI, "--log", str(tmp_path / "run")]) == 0
    assert link.is_symlink() and read_genres(library["ogg"]) == ["Jazz"]


def test_bad_files_are_one_line_each_never_a_traceback(library, tmp_path, capsys, monkeypatch):
    fake = tmp_path / "lib" / "not_audio.mp3"
    fake.write_bytes(b"this is not an mp3 at all\n" * 100)
    (tmp_path / "lib" / "notes.txt").write_text("hello")
    readonly = library["flac"]
    readonly.chmod(0o444)
    vanishing = library["opus"]
    real = Predictor.predict_many

    def predict_then_delete(self, files, *args, **kw):  # the file disappears after it was predicted
        for path, res, error in real(self, files, *args, **kw):
            if path == vanishing:
                path.unlink()
            yield path, res, error

    monkeypatch.setattr(Predictor, "predict_many", predict_then_delete)
    args = ["tag", str(tmp_path / "lib"), str(tmp_path / "lib" / "notes.txt"), str(tmp_path / "gone.mp3"), *CLI,
            "--log", str(tmp_path / "run")]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert f"{readonly}: read-only file" in err and read_genres(readonly) == []
    assert f"{vanishing}: no such file" in err and f"{tmp_path / 'gone.mp3'}: no such file" in err
    assert f"{fake}: not readable as tagged audio" in err
    assert f"{tmp_path / 'lib' / 'notes.txt'}: format not supported" in err
    assert read_genres(library["mp3"]) == ["Jazz"]  # the others were tagged
    report = json.loads((tmp_path / "run.report.json").read_text())["files"]
    assert {r["status"] for r in report} == {"tagged", "failed"} and len(report) == len(FORMATS) + 3


def test_full_disk_leaves_the_file_as_it_was(library, tmp_path, capsys, monkeypatch):
    before = library["m4a"].read_bytes()

    def full(*args, **kw):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(shutil, "copyfileobj", full)
    assert main(["tag", str(library["m4a"]), *CLI, "--log", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "no room left on the disk" in err and "Traceback" not in err
    assert library["m4a"].read_bytes() == before and not list(library["m4a"].parent.glob(f"*{TMP_SUFFIX}"))


def test_no_file_is_changed_when_its_undo_entry_cannot_be_written(library, tmp_path, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(tag_module.os, "fsync", full)
    assert main(["tag", str(library["mp3"]), *CLI, "--log", str(tmp_path / "run")]) == 1
    assert "undo log cannot be written" in capsys.readouterr().err and read_genres(library["mp3"]) == []


def test_undo_leaves_a_genre_changed_since_alone_unless_force(model, library, tmp_path):
    _tag(model, [library["flac"]], tmp_path)
    write_genres(library["flac"], ["Mine"])
    log = tmp_path / "run.undo.jsonl"
    assert undo([log])["failed"] == 1 and read_genres(library["flac"]) == ["Mine"]
    assert undo([log], force=True)["restored"] == 1 and read_genres(library["flac"]) == []


def test_usage_and_bad_undo_logs_are_one_line(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a log\n")
    assert main(["tag", "--undo", str(tmp_path / "notes.txt")]) == 1
    assert main(["tag", "--undo", str(tmp_path / "missing.jsonl")]) == 1
    assert main(["tag"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"error: {tmp_path / 'notes.txt'}: not an undo log of genre-cnn tag"
    assert err[1].startswith(f"error: {tmp_path / 'missing.jsonl'}: cannot be read") and len(err) == 3


KILL_ON_THIRD_WRITE = textwrap.dedent("""
    import os, signal, sys
    import mutagen.id3._file as id3file
    from genre_cnn.app.cli import main
    real, calls = id3file.insert_bytes, []
    def insert_then_die(*args, **kw):  # kill -9 half-way through the third file's tag write
        calls.append(1)
        real(*args, **kw)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
    id3file.insert_bytes = insert_then_die
    sys.exit(main(sys.argv[1:]))
""")


@pytest.mark.slow
def test_kill_9_mid_write_leaves_no_half_written_file_and_undo_restores_all(originals, tmp_path):
    lib = tmp_path / "lib"
    lib.mkdir()
    files = [Path(shutil.copy(originals["mp3"], lib / f"{i}.mp3")) for i in range(5)]
    audio = decoded_md5(files[0])
    cmd = [sys.executable, "-c", KILL_ON_THIRD_WRITE, "tag", str(lib), *CLI]
    first = subprocess.run([*cmd, "--log", str(tmp_path / "first")], capture_output=True, text=True)
    assert first.returncode == -signal.SIGKILL
    assert [read_genres(f) for f in files] == [["Jazz"], ["Jazz"], [], [], []]  # the third: untouched, whole
    assert decoded_md5(files[2]) == audio
    assert list(lib.glob(f"*{TMP_SUFFIX}"))  # the killed write's temporary copy, removed by the rerun
    named = [e["file"] for e in read_log(tmp_path / "first.undo.jsonl")[1]]
    assert named == [str(f) for f in files[:3]]  # written before each change
    rerun = subprocess.run([sys.executable, "-m", "genre_cnn.app.cli", "tag", str(lib), *CLI,
                            "--log", str(tmp_path / "second")], capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert all(read_genres(f) == ["Jazz"] for f in files) and not list(lib.glob(f"*{TMP_SUFFIX}"))
    assert main(["tag", "--undo", str(tmp_path / "first.undo.jsonl"), str(tmp_path / "second.undo.jsonl")]) == 0
    assert all(read_genres(f) == [] and decoded_md5(f) == audio for f in files)
