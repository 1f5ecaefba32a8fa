"""Genre names: one normal form for comparing, the usual spellings for writing, a user's own mapping file, and
`genre-cnn tag` writing them."""

from __future__ import annotations

import shutil

import pytest
from audio_formats import needs_ffmpeg
from tag_corpus import sine

from genre_cnn.app.cli import main
from genre_cnn.app.tagfile import read_genres, write_genres
from genre_cnn.data.layout import GTZAN_GENRES
from genre_cnn.genres import SPELLINGS, GenreMapError, display, load_mapping, normalise, same
from genre_cnn.models.checkpoint import READY_MODEL


def test_spellings_that_differ_only_in_case_or_punctuation_are_one_genre():
    assert normalise("Hip Hop") == normalise("hip-hop") == normalise("HipHop") == normalise("hiphop") == "hiphop"
    assert normalise("R&B") == normalise("r & b") == "rb" and normalise("Música") == "musica"
    assert normalise("Rock") != normalise("Pop") and normalise("Hip-Hop") != normalise("Trip-Hop")
    assert same(["Jazz", "Blues"], ["jazz", "BLUES"]) and not same(["Jazz"], ["Blues"])
    assert not same(["Jazz", "Blues"], ["Blues", "Jazz"])  # the order says which genre comes first


def test_every_class_is_written_in_the_usual_spelling_and_others_as_given():
    assert [display(g) for g in GTZAN_GENRES] == list(SPELLINGS)
    assert display("hiphop") == display("HIP HOP") == "Hip-Hop" and display("Bossa Nova") == "Bossa Nova"


def test_a_mapping_file_gives_the_users_spellings(tmp_path):
    path = tmp_path / "genres.txt"
    path.write_text("\ufeff# my library\nhip hop: Rap   # any spelling of the name\nCLASSICAL: Classical Music\n\n",
                    encoding="utf-8")
    mapping = load_mapping(path)
    assert display("hiphop", mapping) == "Rap" and display("classical", mapping) == "Classical Music"
    assert display("jazz", mapping) == "Jazz"  # not mapped: the usual spelling


@pytest.mark.parametrize(("text", "says"), [("hiphop Rap\n", "line 1: expected `name: spelling`"),
                                            ("jazz:\n", "line 1: expected"), ("# ok\n: Rap\n", "line 2: expected"),
                                            (b"\xff\xfe\x00", "cannot be read")])
def test_a_bad_mapping_file_is_one_line(tmp_path, text, says):
    path = tmp_path / "genres.txt"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(GenreMapError, match=says) as err:
        load_mapping(path)
    assert "\n" not in str(err.value) and str(path) in str(err.value)
    with pytest.raises(GenreMapError, match="cannot be read"):
        load_mapping(tmp_path / "missing.txt")


@needs_ffmpeg
def test_tag_writes_the_mapped_spelling_and_keeps_a_genre_spelled_otherwise(tmp_path, capsys, without_verdict):
    song = tmp_path / "song.mp3"
    sine(str(song))
    (tmp_path / "map.txt").write_text("classical: Klassik\n", encoding="utf-8")
    cli = ["--ckpt", str(READY_MODEL), "--workers", "1", "--no-progress", "--min-confidence", "0"]
    assert main(["tag", str(song), *cli, "--log", str(tmp_path / "run")]) == 0
    predicted = read_genres(song)
    assert predicted and predicted[0] in SPELLINGS  # the usual spelling, not the class id
    write_genres(song, [predicted[0].upper()])  # the same genre, spelled otherwise
    raw = song.read_bytes()
    assert main(["tag", str(song), *cli, "--overwrite", "--log", str(tmp_path / "run")]) == 0
    assert song.read_bytes() == raw and "kept as it is spelled" in capsys.readouterr().err
    shutil.copy(song, tmp_path / "other.mp3")
    write_genres(tmp_path / "other.mp3", [])
    assert main(["tag", str(tmp_path / "other.mp3"), *cli, "--genre-map", str(tmp_path / "map.txt"),
                 "--log", str(tmp_path / "run")]) == 0
    assert read_genres(tmp_path / "other.mp3") == [display(predicted[0], {"classical": "Klassik"})]
    assert main(["tag", str(song), "--genre-map", str(tmp_path / "nothing.txt"), *cli]) == 2
    assert "the genre mapping cannot be read" in capsys.readouterr().err
