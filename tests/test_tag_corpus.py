"""`genre-cnn tag` then `--undo` over a corpus of the files real libraries hold (tests/tag_corpus.py): every file
is written with nothing lost and put back exactly, or refused with its bytes untouched. Checked with readers
that share nothing with genre_cnn's tag code (a raw ID3 frame parser, the chunks as bytes, ffmpeg's decode)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from audio_formats import needs_ffmpeg
from tag_corpus import fingerprint, id3_frames, make_corpus, ready_model

from genre_cnn.app.tag import tag_files
from genre_cnn.app.tagfile import read_genre, read_genres
from genre_cnn.app.tagundo import undo
from genre_cnn.genres import SPELLINGS

pytestmark = [needs_ffmpeg, pytest.mark.usefixtures("without_verdict")]  # tones get a genre here


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> dict[str, tuple[Path, str]]:
    return make_corpus(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def model():
    return ready_model()


@pytest.fixture
def library(corpus, tmp_path) -> dict[str, tuple[Path, str]]:
    (tmp_path / "lib").mkdir()
    return {name: (Path(shutil.copy(path, tmp_path / "lib" / name)), expect) for name, (path, expect) in corpus.items()}


def test_tag_then_undo_loses_nothing_or_refuses_untouched(model, library, tmp_path):
    before = {name: (expect == "write" and fingerprint(path), path.read_bytes(), expect == "write" and read_genre(path))
              for name, (path, expect) in library.items()}
    summary = tag_files(model, [path for path, _ in library.values()], count=2, min_confidence=0.0,
                        overwrite=True, log_stem=tmp_path / "run", workers=1, progress=False)
    rows = {Path(r["file"]).name: r for r in json.loads((tmp_path / "run.report.json").read_text())["files"]}
    written = [name for name, (_, expect) in library.items() if expect == "write"]
    assert summary["tagged"] == len(written) and summary["failed"] == len(library) - len(written), summary
    for name, (path, expect) in library.items():
        print_, raw, _ = before[name]
        row = rows[name]
        if expect != "write":
            why = ("truncated" if name.startswith("broken-truncated")  # cut short: skipped before any write
                   else "not changed" if expect == "refuse" else "not readable as tagged audio (IndexError")
            assert row["status"] == "failed" and why in row["reason"], (name, row)
            assert "\n" not in row["reason"] and path.read_bytes() == raw, name  # one line; not a byte changed
            continue
        assert row["status"] == "tagged", (name, row)
        genres = read_genres(path)
        assert genres == row["genres"] and len(genres) == 2 and set(genres) <= set(SPELLINGS), (name, genres)
        after = fingerprint(path)
        if name == "v22.mp3":  # mutagen writes no v2.2: the frames carried over into a v2.3 tag
            assert after["id3"][0] == 3 and [f for f, _ in after["id3"][1]] == ["APIC", "COMM", "TIT2", "TPE1",
                                                                               "TYER"], after["id3"]
            assert ("TYER", ("1959?",)) in after["id3"][1] and after["audio"] == print_["audio"]
        else:
            assert after == print_, (name, {k: (print_[k], after.get(k)) for k in print_ if print_[k] != after.get(k)})
    result = undo([tmp_path / "run.undo.jsonl"])
    assert result == {"restored": len(written), "unchanged": 0, "failed": 0}
    for name in written:
        path = library[name][0]
        assert read_genre(path) == before[name][2], name  # the genre field exactly as stored before
        if name != "v22.mp3":
            assert fingerprint(path) == before[name][0], name
    for name in ("v1-only.mp3", "no-tags.mp3", "v23-1959q.mp3", "wav-info-ignr.wav", "plain.aiff"):
        assert library[name][0].read_bytes() == before[name][1], name  # back to the very bytes


def test_an_id3v23_tag_keeps_its_version_frames_and_odd_years(library, tmp_path):
    from genre_cnn.app.tagfile import write_genres

    path = library["v23-1999-2000.mp3"][0]
    write_genres(path, ["Jazz"])
    data = path.read_bytes()
    version, frames = id3_frames(data)
    ids = {fid for fid, _ in frames}
    assert version == 3 and {"TYER", "TDAT", "TIME", "TORY", "IPLS", "RVAD", "TSIZ", "TRDA"} <= ids
    assert not ids & {"TDRC", "TDOR", "TIPL"} and ("TYER", ("1999-2000",)) in frames
    assert read_genres(path) == ["Jazz"]


def test_a_genre_beside_the_main_tag_counts_and_is_kept(model, library, tmp_path):
    paths = [library[name][0] for name in ("wav-info-ignr.wav", "v1-only.mp3", "v23-v1-ape.mp3")]
    raw = [p.read_bytes() for p in paths]
    assert [read_genres(p) for p in paths] == [["Jazz"], ["Jazz"], ["House"]]  # RIFF INFO IGNR, ID3v1, APE
    summary = tag_files(model, paths, log_stem=tmp_path / "run", workers=1, progress=False)
    assert summary["skipped"] == 3 and summary["tagged"] == 0
    assert [p.read_bytes() for p in paths] == raw
