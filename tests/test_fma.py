"""FMA as a dataset kind (Defferrard et al., "FMA: A Dataset for Music Analysis", ISMIR 2017), on a small copy in
the real layout: a tracks.csv with the real three header rows and column names, MP3 clips under
fma_small/123/123456.mp3; its download from a local HTTP server (resumed, SHA-1 checked, zips extracted safely).

    .venv/bin/python -m pytest -q tests/test_fma.py
"""

from __future__ import annotations

import csv
import hashlib
import http.server
import io
import json
import logging
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from genre_cnn.data import layout
from genre_cnn.data.download import DownloadError, safe_extract
from genre_cnn.data.sources import fma
from genre_cnn.data.sources.fma import Fma
from genre_cnn.data.sources.folder import Folder
from genre_cnn.data.splits import Split
from genre_cnn.data.store import FeatureStore
from genre_cnn.errors import SettingsError
from genre_cnn.training.datamodule import GenreDataModule
from tests.local_http import serving
from tests.test_datamodule import tone_folder

SR = 22050
SECONDS = 4.0
TONES = {"Electronic": 880.0, "Folk": 220.0, "Hip-Hop": 55.0}  # Hz: each genre its own pitch
PER_PART = {"training": 3, "validation": 1, "test": 1}
# real columns of tracks.csv, (top, second), in the real file's order (album, artist, set, track)
COLUMNS = [("album", "id"), ("album", "title"), ("artist", "id"), ("artist", "name"), ("set", "split"),
           ("set", "subset"), ("track", "duration"), ("track", "genre_top"), ("track", "genres"), ("track", "title")]


def plan() -> list[dict]:
    """The tracks of the copy: 3 genres x (3 training, 1 validation, 1 test), then one track of each odd kind."""
    rows = [dict(genre=g, subset="small", split=s, audio="ok") for g in TONES for s, n in PER_PART.items()
            for _ in range(n)]
    rows += [dict(genre="", subset="small", split="training", audio="ok"),  # no track.genre_top
             dict(genre="Old-Time / Historic", subset="medium", split="training", audio="ok"),  # medium only
             dict(genre="Rock", subset="large", split="training", audio="none"),  # large only, no file here
             dict(genre="Folk", subset="small", split="test", audio="missing"),  # listed, file missing
             dict(genre="Hip-Hop", subset="small", split="training", audio="corrupt")]
    for i, row in enumerate(rows):
        row["id"] = 2 + 3001 * i  # 000002, 003003, 006004, ...: several folders
        row["artist"] = f"{row['split']} artist {i % 2}"  # the split is artist-disjoint
    return rows


TRACKS = plan()


def key(row: dict) -> str:
    return f"{row['genre']}/{row['id']:06d}.mp3"


def write_tracks_csv(path: Path, rows: list[dict], columns: list[tuple[str, str]] = COLUMNS) -> Path:
    """tracks.csv as FMA ships it (what pandas.read_csv(index_col=0, header=[0, 1]) reads)."""
    values = {("album", "id"): lambda r: 1, ("album", "title"): lambda r: "Album, vol. 1",
              ("artist", "id"): lambda r: r["id"] % 7, ("artist", "name"): lambda r: r["artist"],
              ("set", "split"): lambda r: r["split"], ("set", "subset"): lambda r: r["subset"],
              ("track", "duration"): lambda r: int(SECONDS), ("track", "genre_top"): lambda r: r["genre"],
              ("track", "genres"): lambda r: "[21]", ("track", "title"): lambda r: f"Song {r['id']},\n\"live\""}
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        out = csv.writer(f)
        out.writerow(["", *(top for top, _ in columns)])
        out.writerow(["", *(second for _, second in columns)])
        out.writerow(["track_id", *([""] * len(columns))])
        for row in rows:
            out.writerow([row["id"], *(values[c](row) for c in columns)])
    return path


def write_clip(path: Path, hz: float, i: int) -> None:
    t = np.arange(int(SECONDS * SR)) / SR
    y = 0.3 * np.sin(2 * np.pi * hz * (1 + i / 50) * t) + 0.1 * np.sin(2 * np.pi * 3 * hz * t)  # (samples,)
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, y, SR, format="MP3")


@pytest.fixture(scope="module")
def fma_root(tmp_path_factory) -> Path:
    """fma_metadata/tracks.csv, fma_small/ and fma_medium/ (small's clips and the medium-only one)."""
    root = tmp_path_factory.mktemp("fma")
    write_tracks_csv(root / "fma_metadata" / "tracks.csv", TRACKS)
    for i, row in enumerate(TRACKS):
        name = f"{row['id']:06d}"
        path = root / ("fma_medium" if row["subset"] == "medium" else "fma_small") / name[:3] / f"{name}.mp3"
        if row["audio"] == "ok":
            write_clip(path, TONES.get(row["genre"], 440.0), i)
        elif row["audio"] == "corrupt":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"ID3" + bytes(range(256)) * 8)
    shutil.copytree(root / "fma_small", root / "fma_medium", dirs_exist_ok=True)
    return root


@pytest.fixture
def fresh_warnings(monkeypatch):
    """Warnings said once per process are said again in this test."""
    monkeypatch.setattr(layout, "_WARNED", set())


def test_clips_genres_and_labels_come_from_tracks_csv(fma_root, fresh_warnings, caplog):
    source = Fma(str(fma_root), download=False)
    caplog.set_level(logging.INFO)
    source.ensure()
    assert source.genres() == ["Electronic", "Folk", "Hip-Hop"]
    clips = source.clips()
    source.clips()  # each count is said once
    usable = [r for r in TRACKS if r["subset"] == "small" and r["genre"] and r["audio"] in ("ok", "corrupt")]
    assert [c.key for c in clips] == sorted(key(r) for r in usable)
    for clip in clips:
        name = clip.path.name.removesuffix(".mp3")
        assert clip.path == fma_root / "fma_small" / name[:3] / f"{name}.mp3"
    lines = [r.getMessage() for r in caplog.records]
    assert [m for m in lines if "genre_top" in m] == [
        f"{fma_root / 'fma_metadata' / 'tracks.csv'}: 1 track(s) of fma_small have no top-level genre "
        "(track.genre_top): left out"]
    assert len([m for m in lines if "no audio file" in m and "1 track(s)" in m]) == 1


def test_a_subset_includes_the_smaller_ones(fma_root):
    small = Fma(str(fma_root), download=False)
    medium = Fma(str(fma_root), download=False, subset="medium")
    assert medium.genres() == ["Electronic", "Folk", "Hip-Hop", "Old-Time / Historic"]
    extra = sorted(set(c.key for c in medium.clips()) - set(c.key for c in small.clips()))
    assert extra == [key(r) for r in TRACKS if r["subset"] == "medium"]  # the large-only track is in neither
    assert medium.cache_source() != small.cache_source()  # a cache and a split file per subset
    with pytest.raises(SettingsError, match="--data.source.subset"):
        Fma(str(fma_root), subset="full")


def test_columns_are_found_by_name_not_position(fma_root, tmp_path):
    shuffled = write_tracks_csv(tmp_path / "tracks.csv", TRACKS, COLUMNS[::-1])
    assert fma.read_tracks(shuffled) == fma.read_tracks(fma_root / "fma_metadata" / "tracks.csv")
    assert fma.read_tracks(shuffled)[0] == fma.Track(2, "Electronic", "small", "training")
    flat = tmp_path / "flat.csv"
    flat.write_text("track_id,genre_top,subset,split\n2,Rock,small,training\n")
    with pytest.raises(layout.DataError, match="not FMA's tracks.csv .*track.genre_top"):
        fma.read_tracks(flat)


def test_the_official_split_is_the_default_disjoint_and_skips_the_corrupt_clip(fma_root, fresh_warnings, caplog):
    dm = GenreDataModule(Fma(str(fma_root), download=False), FeatureStore(clip_seconds=SECONDS, workers=1),
                         family="dense")
    assert dm.split_kind == "official"
    caplog.set_level(logging.INFO)
    dm.prepare_data()
    dm.setup("fit")
    corrupt = next(r for r in TRACKS if r["audio"] == "corrupt")
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    assert len(skipped) == 1 and f"{corrupt['id']:06d}.mp3" in skipped[0]
    parts = {"training": "train", "validation": "val", "test": "test"}
    usable = [r for r in TRACKS if r["subset"] == "small" and r["genre"] and r["audio"] == "ok"]
    assert dm.split == {p: sorted(key(r) for r in usable if parts[r["split"]] == p) for p in ("train", "val", "test")}
    keys = sum(dm.split.values(), [])
    assert len(keys) == len(set(keys)) == 15 and key(corrupt) not in keys
    assert json.loads((dm.cache_dir / "split-official.json").read_text()) == dm.split
    assert dm.cache_dir.name.startswith("fma_small-")


def test_a_dataset_without_its_own_split_refuses_split_official(tmp_path):
    root = tone_folder(tmp_path / "a", per_genre=2)
    assert GenreDataModule(Folder(str(root))).split_kind == "random"  # as before
    with pytest.raises(SettingsError, match="--data.split.kind official: the folder dataset kind has no split of"):
        GenreDataModule(Folder(str(root)), split=Split("official"))
    assert GenreDataModule(Fma(str(root)), split=Split("random")).split_kind == "random"


def test_every_family_trains_tests_and_predicts_on_fma_and_the_report_says_which_split(fma_root, tmp_path):
    from genre_cnn.inference.api import predict_files
    from genre_cnn.inference.predict import load_model
    from genre_cnn.training.train import main

    results = main(["--data.source", "Fma", "--data.source.data_dir", str(fma_root), "--data.source.download",
                    "false", "--data.features.clip_seconds", str(SECONDS), "--data.features.workers", "1",
                    "--data.crops_per_clip", "2",
                    "--models", "[dense,cnn,musicnn]", "--trainer.max_epochs", "1",
                    "--trainer.enable_progress_bar", "false", "--output_root", str(tmp_path), "--run_name", "fma"])
    report = json.loads((tmp_path / "runs" / "fma" / "report.json").read_text())
    assert set(report) == {"dense", "cnn", "musicnn"}
    for name, r in report.items():
        assert r["split"] == "official" and r["clips"] == 3 == results[name]["clips"]
        assert list(r["per_genre"]) == ["Electronic", "Folk", "Hip-Hop"]
    assert "| split | official | official | official |" in (tmp_path / "runs" / "fma" / "report.md").read_text()
    clip = next((fma_root / "fma_small").rglob("*.mp3"))
    for name in report:  # each family's tested checkpoint answers on an FMA clip, in FMA's genres
        model = load_model(Path(results[name]["checkpoint"]))
        (answer,), errors = predict_files(model, [clip], progress=False)
        assert not errors and answer["top"][0]["genre"] in ("Electronic", "Folk", "Hip-Hop")


# --- download: a local HTTP server serving zips built here ---------------------------------------------------


class Files:
    """What the server serves: path -> bytes; mode "ok" or "truncate" (half the body, then hang up)."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.mode, self.requests = files, "ok", []


def serve(state: Files):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            rng = self.headers.get("Range")
            state.requests.append((self.path, rng))
            body = state.files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            start = int(rng.removeprefix("bytes=").split("-")[0]) if rng else 0
            self.send_response(206 if rng else 200)
            if rng:
                self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
            payload = body[start:]
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2] if state.mode == "truncate" else payload)
            self.close_connection = state.mode == "truncate"

        def log_message(self, *args) -> None:
            pass

    return Handler


@pytest.fixture
def server(fma_root):
    """FMA's fma_metadata.zip and fma_small.zip (bzip2-compressed, as FMA's are) of the copy."""
    files = {}
    for folder in ("fma_metadata", "fma_small"):
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_BZIP2) as z:
            z.writestr(f"{folder}/README.txt", "This .zip archive is part of the FMA.\n")
            for path in sorted((fma_root / folder).rglob("*")):
                if path.is_file():
                    z.write(path, path.relative_to(fma_root).as_posix())
        files[f"/{folder}.zip"] = buffer.getvalue()
    state = Files(files)
    with serving(serve(state)) as state.url:
        yield state


def sha1(data: bytes) -> str:
    return hashlib.sha1(data).hexdigest()


def test_ensure_downloads_what_is_missing_resuming_an_interrupted_zip(server, fma_root, tmp_path, monkeypatch):
    monkeypatch.setattr(fma, "FMA_URL", server.url)
    monkeypatch.setattr(fma, "FMA_SHA1", {name[1:]: sha1(body) for name, body in server.files.items()})
    source = Fma(str(tmp_path / "fma"), download=True)
    server.mode = "truncate"
    with pytest.raises(DownloadError, match="run again to resume"):
        source.ensure()
    part = tmp_path / "fma" / "fma_metadata.zip.part"
    half = len(server.files["/fma_metadata.zip"]) // 2
    assert part.stat().st_size == half and not (tmp_path / "fma" / "fma_metadata").exists()

    server.mode = "ok"
    source.ensure()
    assert ("/fma_metadata.zip", f"bytes={half}-") in server.requests
    assert sorted(p.name for p in (tmp_path / "fma").iterdir()) == [
        ".extracted-fma_metadata.zip", ".extracted-fma_small.zip", "fma_metadata", "fma_small"]  # zips deleted
    expected = Fma(str(fma_root), download=False)
    assert [c.key for c in source.clips()] == [c.key for c in expected.clips()]
    assert source.official_split() == expected.official_split()
    asked = len(server.requests)
    source.ensure()
    assert len(server.requests) == asked  # nothing missing: nothing asked


def test_a_checksum_mismatch_keeps_nothing(server, tmp_path):
    root = tmp_path / "fma"
    wrong = "0" * 40
    with pytest.raises(DownloadError, match="SHA-1 mismatch") as err:
        fma.download_fma(root, ["fma_small"], server.url, {"fma_small.zip": wrong}, progress=False)
    assert wrong in str(err.value) and sha1(server.files["/fma_small.zip"]) in str(err.value)
    assert list(root.iterdir()) == []  # no zip, no .part, no fma_small/
    with pytest.raises(DownloadError, match="--data.source.data_dir"):  # what to do without the server
        fma.download_fma(root, ["fma_large"], server.url, {}, progress=False)


def _zip_link(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    return info


@pytest.mark.parametrize("bad", ["../evil.txt", "/tmp/evil.txt", "fma_small/000/link.mp3"])
def test_an_unsafe_zip_is_refused_before_writing(bad, tmp_path):
    archive = tmp_path / "fma_small.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("fma_small/000/000002.mp3", b"fine")
        z.writestr(_zip_link(bad) if bad.endswith("link.mp3") else bad, b"/etc/passwd")
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError, match="refusing") as err:
        safe_extract(archive, dest)
    assert repr(bad) in str(err.value) and not dest.exists()


def test_a_track_listed_in_two_splits_is_one_line_before_any_clip_is_cached(fma_root, tmp_path, fresh_warnings,
                                                                             monkeypatch, caplog):
    root = tmp_path / "fma"
    root.mkdir()
    (root / "fma_small").symlink_to(fma_root / "fma_small")
    twice = {**TRACKS[0], "split": "test"}  # the first track again, in another split
    csv_path = write_tracks_csv(root / "fma_metadata" / "tracks.csv", [*TRACKS, twice])
    monkeypatch.setattr("genre_cnn.data.store.build_cache", lambda *a, **k: pytest.fail("cache built"))
    with pytest.raises(layout.DataError) as err:
        FeatureStore(clip_seconds=SECONDS, workers=1).prepare(Fma(str(root), download=False), None)
    assert str(err.value) == (f"{csv_path} lists track {TRACKS[0]['id']} twice, with set.split 'training' and 'test': "
                              "keep one of its rows")
    write_tracks_csv(csv_path, [*TRACKS, TRACKS[1]])  # a row repeated alike: read once, said in one line
    assert fma.read_tracks(csv_path) == fma.read_tracks(fma_root / "fma_metadata" / "tracks.csv")
    assert f"{csv_path}: 1 row(s) repeat a track listed before: each track read once" in caplog.text
