"""Your own music as a dataset (genre_cnn.data.sources.library): tags read in every format `tag` writes, genre names
normalised and mapped, small genres dropped, untagged files counted, the multi-genre rule, artist-disjoint splits,
and features cached by the audio's digest (a moved or retagged file is not computed again).

    .venv/bin/python -m pytest -q tests/test_library.py
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.data.sources.library import Library
from genre_cnn.data.splits import Split, deal_groups
from genre_cnn.data.store import FeatureStore
from genre_cnn.data.tagged import TagIndex, read_track

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (apt-get install "
                                  "ffmpeg): it makes the MP3, Ogg, Opus, M4A, WMA and WavPack files of this test")


def noise(path: Path, seed: int, seconds: float = 1.0, rate: int = 8000) -> Path:
    """A short file of seeded noise (its own audio: no two seeds alike), in the format of its suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, 0.1 * np.random.default_rng(seed).standard_normal(int(seconds * rate)), rate)
    return path


def flac(folder: Path, name: str, seed: int, genres: list[str] | None, artist: str | None = None,
         album: str | None = None) -> Path:
    """A FLAC file with these Vorbis comments (none for None)."""
    from mutagen.flac import FLAC

    path = noise(folder / f"{name}.flac", seed)
    audio = FLAC(path)
    for key, value in (("genre", genres), ("artist", [artist] if artist else None),
                       ("album", [album] if album else None)):
        if value:
            audio[key] = value
    audio.save()
    return path


def _ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-v", "error", "-y", *args], check=True)


def _id3v22(path: Path) -> None:
    """An MP3 whose ID3v2.2 tag (written by hand: mutagen writes none) names genre (7), Hip-Hop, by reference."""
    frames = [(b"TCO", b"\0(7)"), (b"TP1", b"\0Old Artist"), (b"TAL", b"\0Old Album")]
    body = b"".join(fid + len(d).to_bytes(3, "big") + d for fid, d in frames) + b"\0" * 32
    size = bytes((len(body) >> s) & 0x7F for s in (21, 14, 7, 0))
    path.write_bytes(b"ID3\x02\0\0" + size + body + path.read_bytes())


@needs_ffmpeg
def test_every_format_tag_writes_is_read_for_genres_artist_and_album(tmp_path):
    """Each container's own tag, as players write it; several genres as several values or as one joined value."""
    from mutagen import File
    from mutagen.apev2 import APEv2
    from mutagen.id3 import ID3, TALB, TCON, TPE1

    source = noise(tmp_path / "source.wav", 1, seconds=1.0, rate=16000)
    names = {"id3v24": "a.mp3", "id3v23": "b.mp3", "id3v22": "c.mp3", "flac": "d.flac", "ogg": "e.ogg",
             "opus": "f.opus", "m4a": "g.m4a", "wma": "h.wma", "ape": "i.wv", "aiff": "j.aiff", "wav": "k.wav",
             "riff-info": "l.wav"}
    made = {kind: tmp_path / name for kind, name in names.items()}
    for kind, path in made.items():
        meta = ["-metadata", "genre=Hip Hop", "-metadata", "artist=Art Ist", "-metadata", "album=Alb"]
        _ffmpeg("-i", str(source), *(meta if kind == "riff-info" else []), str(path))
    frames = [TPE1(encoding=3, text="Art Ist"), TALB(encoding=3, text="Alb")]
    for kind, genre in (("id3v24", ["Hip-Hop", "Jazz"]), ("id3v23", ["hip hop; Jazz"])):
        tags = ID3()
        for frame in [TCON(encoding=3, text=genre), *frames]:
            tags.add(frame)
        tags.save(made[kind], v2_version=4 if kind == "id3v24" else 3)
    for kind in ("aiff", "wav"):  # the ID3 chunk of AIFF and WAV
        audio = File(made[kind])
        audio.add_tags()
        for frame in [TCON(encoding=3, text=["Hip Hop, Jazz"]), *frames]:
            audio.tags.add(frame)
        audio.save()
    _id3v22(made["id3v22"])
    for kind, keys in (("flac", ("genre", "artist", "album")), ("ogg", ("genre", "artist", "album")),
                       ("opus", ("genre", "artist", "album")), ("m4a", ("\xa9gen", "\xa9ART", "\xa9alb")),
                       ("wma", ("WM/Genre", "Author", "WM/AlbumTitle"))):
        audio = File(made[kind])
        audio[keys[0]], audio[keys[1]], audio[keys[2]] = ["HipHop", "Jazz"], ["Art Ist"], ["Alb"]
        audio.save()
    ape = APEv2()
    ape["Genre"], ape["Artist"], ape["Album"] = "Hip-hop", "Art Ist", "Alb"
    ape.save(made["ape"])
    lib = Library(str(tmp_path), min_tracks=1)
    for kind, path in made.items():
        track = read_track(path)
        one = kind in ("id3v22", "ape", "riff-info")  # these name one genre
        people = ("Old Artist", "Old Album") if kind == "id3v22" else ("Art Ist", "Alb")
        assert lib.genre_of(track.genres[0]) == "hiphop" and track.genres[1:] == (() if one else ("Jazz",)), kind
        assert (track.artist, track.album) == people, kind
    assert read_track(source).genres == ()  # a WAV without tags: no genre


def test_names_are_normalised_mapped_merged_and_small_genres_dropped_one_line_each(tmp_path, caplog):
    lib = tmp_path / "lib"
    seeds = iter(range(1000))
    for i, spelt in enumerate(["Hip Hop", "hip-hop", "HipHop", "Hip-Hop"]):
        flac(lib / "a", f"h{i}", next(seeds), [spelt], "A")
    for i in range(3):
        flac(lib / "b", f"e{i}", next(seeds), ["Electronic" if i else "electronic"], "B")
    flac(lib / "b", "e3", next(seeds), ["ELECTRONIC"], "B")
    for i in range(2):
        flac(lib / "c", f"j{i}", next(seeds), ["Jazz"], "C")
        flac(lib / "c", f"b{i}", next(seeds), ["Blues"], "C")
    flac(lib / "d", "other", next(seeds), ["Other"], "D")  # "-" in the mapping: no genre
    flac(lib / "d", "polka0", next(seeds), ["Polka"], "D")
    flac(lib / "d", "polka1", next(seeds), ["Polka"], "D")
    for i in range(2):
        flac(lib / "d", f"none{i}", next(seeds), None, "D")
    (lib / "d" / "notes.txt").write_text("not audio")
    mapping = tmp_path / "mapping.txt"
    mapping.write_text("Jazz: Jazz & Blues\nblues: Jazz & Blues\nOther: -\nelectronic: Electronica\nHIP-HOP: Rap\n")
    with caplog.at_level(logging.WARNING):
        library = Library(str(lib), mapping=str(mapping), min_tracks=3)
        assert library.genres() == ["Electronica", "Jazz & Blues", "Rap"]
    counts = {g: sum(c.genre == g for c in library.clips()) for g in library.genres()}
    assert counts == {"Electronica": 4, "Jazz & Blues": 4, "Rap": 4}
    assert library.listing.dropped == {"Polka": 2}
    dropped = [r.getMessage() for r in caplog.records if "left out: 2 track(s)" in r.getMessage()]
    assert len(dropped) == 1 and "'Polka'" in dropped[0] and "min_tracks 3" in dropped[0]
    assert "3 file(s) without a genre (after the mapping): left out" in library.listing.notes  # 2 untagged, "Other"
    assert {c.key for c in library.clips()} >= {"Rap/a/h0.flac", "Jazz & Blues/c/b1.flac"}
    assert Library(str(lib), min_tracks=4).genres() == ["Electronic", "Hip-Hop"]  # no mapping: as most files spell it


def test_a_multi_genre_file_takes_its_first_genre_or_is_dropped_and_duplicates_are_one_track(tmp_path):
    lib = tmp_path / "lib"
    for i in range(3):
        flac(lib, f"rock{i}", i, ["Rock"], f"R{i}")
        flac(lib, f"pop{i}", 10 + i, ["Pop"], f"P{i}")
    flac(lib, "both", 20, ["Pop", "Rock"], "X")  # two values
    flac(lib, "joined", 21, ["Rock; Pop"], "Y")  # one value, two genres
    flac(lib, "same", 22, ["rock, ROCK"], "Z")  # one genre twice: not several
    first = Library(str(lib), min_tracks=1)
    genre = {c.path.stem: c.genre for c in first.clips()}
    assert (genre["both"], genre["joined"], genre["same"]) == ("Pop", "Rock", "Rock")
    assert "2 file(s) naming several genres: the first taken" in first.listing.notes
    dropped = Library(str(lib), min_tracks=1, multi="drop")
    assert {"both", "joined"}.isdisjoint(c.path.stem for c in dropped.clips()) and len(dropped.clips()) == 7
    shutil.copy(lib / "rock0.flac", lib / "copy of rock0.flac")  # the same audio: one track, the first by path
    assert len(Library(str(lib), min_tracks=1).clips()) == 9


def test_artists_and_albums_are_groups_a_split_never_cuts(tmp_path, caplog):
    lib = tmp_path / "lib"
    seed = iter(range(1000))
    for artist in range(6):
        for i in range(4):
            flac(lib / f"artist{artist}", f"t{i}", next(seed), ["Rock" if artist % 2 else "Jazz"], f"Artist {artist}",
                 f"Album {artist}")
    for i in range(3):  # a compilation: its album links artists 0 and 2 (both jazz)
        flac(lib / "comp", f"c{i}", next(seed), ["Jazz"], f"Artist {2 * (i % 2)}", "Best Of")
    for i in range(3):  # no artist tag: grouped by folder
        flac(lib / "unknown", f"u{i}", next(seed), ["Rock"])
    with caplog.at_level(logging.WARNING):
        library = Library(str(lib), min_tracks=1)
        groups = library.groups()
    assert "3 track(s) without an artist tag: grouped with the other files of their folder" in library.listing.notes
    assert len(set(groups.values())) == 6  # artists 0 + 2 + the compilation, 1, 3, 4, 5, and the folder
    assert len({groups[k] for k in groups if "/unknown/" in k}) == 1
    keys = [c.key for c in library.clips()]
    labels = [library.genres().index(c.genre) for c in library.clips()]
    folds = deal_groups(keys, labels, groups, 3)
    assert sorted(sum(folds, [])) == sorted(keys)
    for fold in range(3):
        split, _ = Split(kind="groups", num_folds=3, fold=fold).make(keys, labels, library.genres(), own_groups=groups)
        held = {groups[k] for k in split["test"]}
        assert held and held.isdisjoint(groups[k] for k in split["train"]) and split["val"] == []
    own = library.official_split()
    parts = [{groups[k] for k in own[p]} for p in ("train", "val", "test")]
    assert all(parts) and not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])


class Counting:
    """A feature extractor that counts the clips it computes (this process only: workers=1)."""

    sample_rate = 8000
    calls = 0

    def settings(self) -> dict:
        return {"kind": "counting"}

    def build(self) -> None:
        return None

    def __call__(self, y: np.ndarray, built: object) -> dict[str, np.ndarray]:
        Counting.calls += 1
        return {"embedding": np.array([[y.mean(), y.std()]], dtype=np.float32)}


def test_features_are_cached_by_audio_so_a_moved_or_retagged_file_is_not_computed_again(tmp_path):
    from mutagen.flac import FLAC, Picture

    lib = tmp_path / "lib"
    for i in range(4):
        flac(lib / "jazz", f"j{i}", i, ["Jazz"], f"J{i}")
        flac(lib / "rock", f"r{i}", 10 + i, ["Rock"], f"R{i}")
    store = FeatureStore(clip_seconds=1.0, min_seconds=0.5, workers=1)
    Counting.calls = 0
    assert len(store.prepare(Library(str(lib), min_tracks=1), Counting())) == 8 and Counting.calls == 8
    (lib / "moved").mkdir()
    os.rename(lib / "jazz" / "j0.flac", lib / "moved" / "renamed.flac")
    audio = FLAC(lib / "rock" / "r1.flac")
    audio["genre"], audio["title"] = ["Jazz"], ["a new title"]  # its genre and title change; its audio does not
    audio.add_picture(Picture())
    audio.save()
    flac(lib / "jazz", "j1", 99, ["Jazz"], "J1")  # new audio under an old name: computed again
    library = Library(str(lib), min_tracks=1)
    clips = store.prepare(library, Counting())
    assert Counting.calls == 9 and len(clips) == 8
    assert {c.key for c in clips} >= {"Jazz/moved/renamed.flac", "Jazz/rock/r1.flac"}
    features = store.clipset(library, Counting(), "embedding")
    assert len(features) == 8 and features.features.shape == (8, 1, 2)


def test_the_tag_index_reads_a_file_again_only_when_it_changed(tmp_path):
    from mutagen.flac import FLAC

    path = flac(tmp_path, "song", 1, ["Jazz"], "A")
    index = TagIndex.load(tmp_path / "index.json")
    assert index.read(path).genres == ("Jazz",)
    index.save()
    st = os.stat(path)
    audio = FLAC(path)
    audio["genre"] = ["Blues"]
    audio.save()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # a tagger that keeps the modification time
    assert os.stat(path).st_size == st.st_size  # the comment fits in the padding: only the change time tells
    again = TagIndex.load(tmp_path / "index.json")
    assert again.read(path).genres == ("Blues",) and again.changed


class Item(dict):
    """A beets item as genre_cnn.app.learn sees it: fields by `get`."""


def test_beets_items_become_a_list_of_tracks_whose_genres_replace_the_files_own(tmp_path):
    from genre_cnn.app.learn import command, track_of, tracks_file
    from genre_cnn.training.train import build_parser, check_settings

    files = [flac(tmp_path / "music", f"t{i}", i, ["Rock"], "File Artist") for i in range(4)]
    items = [Item(path=os.fsencode(files[0]), genres=["Jazz", "Blues"], artist="Nina", album="Live"),
             Item(path=os.fsencode(files[1]), genre="Jazz, Soul", artist="", albumartist="Nina", album="Live"),
             Item(path=os.fsencode(files[2]), genre="", artist="Someone", album=""),
             Item(path=os.fsencode(files[3]), genre="Blues", artist="Other", album="")]
    tracks = [track_of(item) for item in items]
    assert tracks[0] == {"path": str(files[0]), "genre": "Jazz; Blues", "artist": "Nina", "album": "Live"}
    assert tracks[1]["artist"] == "Nina" and tracks[1]["genre"] == "Jazz, Soul"
    listed = tracks_file(tracks + [{"path": str(tmp_path / "gone.flac"), "genre": "Jazz", "artist": "", "album": ""}],
                         "beets items genre:Jazz")
    library = Library(tracks=str(listed), min_tracks=1, title="beets items genre:Jazz")
    assert library.genres() == ["Blues", "Jazz"] and library.describe() == "beets items genre:Jazz"
    assert [c.genre for c in library.clips()] == ["Jazz", "Jazz", "Blues"]  # the list's genres, not the files' Rock
    assert "1 file(s) without a genre (after the mapping): left out" in library.listing.notes
    assert library.groups()[library.clips()[0].key] == library.groups()[library.clips()[1].key]  # Nina, album Live
    argv = command(listed, "beets items genre:Jazz")
    parser = build_parser()
    cfg = parser.parse_args(argv[argv.index("--config"):])
    check_settings(parser, cfg)  # every option checked, nothing read
    assert cfg.data.source.init_args.tracks == str(listed) and cfg.data.source.init_args.data_dir is None


def test_the_report_names_the_genres_too_mixed_by_one_artist_or_unheard():
    from genre_cnn.training.personal import unlearnt_genres

    genres = ["Ambient", "Drone", "Folk", "Polka", "Speech"]
    confusion = np.array([[6, 4, 0, 0, 0],  # Ambient: 60% recall, its misses spread: learnt
                          [6, 4, 0, 0, 0],  # Drone: 60% of it taken for Ambient
                          [1, 0, 2, 1, 6],  # Folk: recall 20%, not above chance (20%)... but 60% taken for Speech
                          [0, 0, 0, 9, 1],  # Polka: all by one artist
                          [0, 0, 0, 0, 0]])  # Speech: no file could be heard
    artists = {"Ambient": 3, "Drone": 2, "Folk": 4, "Polka": 1, "Speech": 2}
    verdicts = unlearnt_genres(genres, confusion, artists)
    assert set(verdicts) == {"Drone", "Folk", "Polka", "Speech"}
    assert verdicts["Drone"].startswith("too mixed: 60% of its tracks taken for Ambient")
    assert "`Drone: Ambient`" in verdicts["Drone"]
    assert verdicts["Folk"].startswith("too mixed: 60% of its tracks taken for Speech")
    assert verdicts["Polka"].startswith("too few artists") and verdicts["Speech"].startswith("no track of it")
    confusion[2] = [2, 2, 1, 3, 2]  # Folk: 10% recall, below chance, its misses spread
    assert unlearnt_genres(genres, confusion, artists)["Folk"] == "too mixed: recall 10%, below chance (20%)"


def test_genre_cnn_learn_trains_on_the_folders_with_the_library_recipe(tmp_path, monkeypatch):
    from genre_cnn.app import cli
    from genre_cnn.training.train import build_parser, check_settings

    seen = []
    monkeypatch.setattr(cli, "train", lambda args: seen.append(args) or 0)
    (tmp_path / "map.txt").write_text("Blues: Jazz\n")
    assert cli.main(["learn", str(tmp_path / "a"), str(tmp_path / "b"), "--genre-map", str(tmp_path / "map.txt"),
                     "--min-tracks", "3", "--multi", "drop"]) == 0
    parser = build_parser()
    cfg = parser.parse_args(seen[0])
    check_settings(parser, cfg)  # every option checked, nothing read
    source = cfg.data.source
    assert source.class_path.endswith("library.Library") and cfg.data.split.kind == "groups"
    assert source.init_args.data_dir == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert (source.init_args.mapping, source.init_args.min_tracks, source.init_args.multi) == (
        str(tmp_path / "map.txt"), 3, "drop")
    with pytest.raises(SystemExit) as exit_:  # a usage error, one line
        cli.main(["learn", str(tmp_path), "--min-tracks", "0"])
    assert exit_.value.code == 2
