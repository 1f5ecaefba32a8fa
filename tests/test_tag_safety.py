"""`genre-cnn tag` in a world that does not hold still: a link planted at the temporary name, a genre set while
the run predicts, names that are not UTF-8 or close to 255 bytes, several undo logs in any order, and the
README's own order of `sort` and `tag`."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import pytest
from audio_formats import needs_ffmpeg
from tag_corpus import ready_model, sine

from genre_cnn.app.cli import main
from genre_cnn.app.tag import tag_files
from genre_cnn.app.tagfile import TMP_SUFFIX, GenreChanged, read_genre, read_genres, write_genres
from genre_cnn.app.tagundo import undo
from genre_cnn.inference.session import Predictor
from genre_cnn.models.checkpoint import READY_MODEL

pytestmark = [needs_ffmpeg, pytest.mark.usefixtures("without_verdict")]  # tones get a genre here
CLI = ["--ckpt", str(READY_MODEL), "--workers", "1", "--no-progress", "--min-confidence", "0"]


@pytest.fixture(scope="module")
def model():
    return ready_model()


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("made") / "song.mp3"
    sine("-metadata", "title=a tone", str(path))
    return path


@pytest.fixture
def song(made, tmp_path) -> Path:
    (tmp_path / "lib").mkdir()
    return Path(shutil.copy(made, tmp_path / "lib" / "song.mp3"))


def _tag(model, paths, stem: Path, **kw) -> dict:
    return tag_files(model, paths, min_confidence=0.0, log_stem=stem, workers=1, progress=False, **kw)


def test_a_link_planted_at_the_temporary_name_is_never_followed(song, tmp_path, monkeypatch):
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious")
    victim.chmod(0o600)
    planted = [song.parent / f".{song.name}.{os.getpid()}{TMP_SUFFIX}",  # a fixed name, as an older genre-cnn used
               song.parent / f".{song.name}.{os.getpid()}.planted{TMP_SUFFIX}"]  # the first name mkstemp will try
    for link in planted:
        link.symlink_to(victim)
    monkeypatch.setattr(tempfile, "_get_candidate_names", lambda: iter(["planted", "free"]))  # mkstemp's names
    song.chmod(0o640)
    write_genres(song, ["Jazz"])
    assert victim.read_bytes() == b"precious" and stat.S_IMODE(victim.stat().st_mode) == 0o600
    assert all(link.is_symlink() for link in planted)
    assert read_genres(song) == ["Jazz"] and stat.S_IMODE(song.stat().st_mode) == 0o640


def test_a_genre_set_while_tag_predicts_is_kept_and_undo_never_deletes_it(model, song, tmp_path, monkeypatch):
    real = Predictor.predict_many

    def someone_tags_meanwhile(self, files, *args, **kw):
        for path, res, error in real(self, files, *args, **kw):
            write_genres(path, ["Bossa Nova"])
            yield path, res, error

    monkeypatch.setattr(Predictor, "predict_many", someone_tags_meanwhile)
    summary = _tag(model, [song], tmp_path / "run")
    assert summary["skipped"] == 1 and summary["tagged"] == 0 and read_genres(song) == ["Bossa Nova"]
    assert undo([tmp_path / "run"])["restored"] == 0 and read_genres(song) == ["Bossa Nova"]


def test_a_write_is_refused_when_the_genre_changed_after_it_was_read(song):
    seen = read_genre(song)
    write_genres(song, ["Bossa Nova"])  # another program, between tag's read and its write
    raw = song.read_bytes()
    with pytest.raises(GenreChanged, match="its genre changed meanwhile"):
        write_genres(song, ["Jazz"], expect=seen)
    assert song.read_bytes() == raw and not list(song.parent.glob(f"*{TMP_SUFFIX}"))


def test_names_not_utf8_or_near_255_bytes_are_tagged_logged_and_undone(song, tmp_path, capsys):
    latin = song.with_name(os.fsdecode(b"caf\xe9 cr\xe8me.mp3"))  # Latin-1, from an old archive
    long = song.with_name("é" * 120 + ".mp3")  # 244 bytes: no room for a temporary name of whole characters
    for path in (latin, long):
        shutil.copy(song, path)
    song.unlink()
    assert main(["tag", str(song.parent), *CLI, "--log", str(tmp_path / "run")]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "tagged 2 file(s)" in err, err
    assert read_genres(latin) and read_genres(long)
    report = json.loads((tmp_path / "run.report.json").read_text(encoding="utf-8"))["files"]
    assert sorted(r["file"] for r in report) == sorted([str(latin), str(long)])  # the same bytes read back
    assert main(["tag", "--undo", str(tmp_path / "run")]) == 0
    out = capsys.readouterr().out
    assert read_genres(latin) == [] and read_genres(long) == [] and "caf\\xe9 cr\\xe8me.mp3" in out
    assert not [p for p in song.parent.iterdir() if p.name.endswith(TMP_SUFFIX)]


def test_undo_of_several_runs_goes_newest_first_whatever_the_order_named(model, song, tmp_path):
    files = {order: Path(shutil.copy(song, song.with_name(f"{order}.mp3"))) for order in ("named-oldest-first",
                                                                                          "named-newest-first")}
    logs = {}
    for order, path in files.items():
        _tag(model, [path], tmp_path / f"{order}-1")
        write_genres(path, ["Mine"])  # the user's own genre, between the runs
        _tag(model, [path], tmp_path / f"{order}-2", overwrite=True)
        assert read_genres(path) != ["Mine"]
        logs[order] = [tmp_path / f"{order}-1.undo.jsonl", tmp_path / f"{order}-2.undo.jsonl"]
    assert undo(logs["named-oldest-first"])["restored"] == 1
    assert undo(logs["named-newest-first"][::-1])["restored"] == 1
    assert [read_genres(p) for p in files.values()] == [["Mine"], ["Mine"]]  # the second run undone, not the first
    assert undo(logs["named-oldest-first"]) == {"restored": 0, "unchanged": 0, "failed": 1}  # Mine is left alone


def test_sort_then_tag_in_the_readmes_order_explains_once_and_its_advice_works(song, tmp_path, capsys):
    src, dest = song.parent, tmp_path / "by-genre"
    shutil.copy(song, src / "other.mp3")
    assert main(["sort", str(src), str(dest), *CLI]) == 0  # hard links
    assert main(["tag", str(dest), *CLI, "--log", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert err.count("have other hard links") == 1 and "2 left alone (hard links)" in err
    assert "tag the originals before sorting them" in err.lower() and read_genres(song) == []
    shutil.rmtree(dest)  # the advice: tag the originals, then sort them
    assert main(["tag", str(src), *CLI, "--log", str(tmp_path / "run")]) == 0
    assert main(["sort", str(src), str(dest), *CLI]) == 0
    placed = sorted(p for p in dest.rglob("*.mp3"))
    assert len(placed) == 2 and all(read_genres(p) == read_genres(song) != [] for p in placed)
    shutil.rmtree(dest)  # or sort with symbolic links, and tag through them
    assert main(["tag", "--undo", str(tmp_path / "run")]) == 0 and read_genres(song) == []
    assert main(["sort", str(src), str(dest), "--symlink", *CLI]) == 0
    assert main(["tag", str(dest), *CLI, "--log", str(tmp_path / "run2")]) == 0
    assert read_genres(song) != [] and all(p.is_symlink() for p in dest.rglob("*.mp3"))
