"""`genre-cnn sort` with the manifests and names real libraries hold: a manifest re-saved by a spreadsheet (a
byte-order mark, `;` separators, CRLF) is still read and appended to in its own dialect, one whose header
cannot be read is refused rather than taken as empty, and names that are not UTF-8 or are close to 255 bytes
are copied, recorded and found again by the rerun."""

from __future__ import annotations

import csv
import os
from pathlib import Path

from genre_cnn.app.cli import main
from genre_cnn.app.sort import COLUMNS, MANIFEST
from genre_cnn.models.checkpoint import READY_MODEL


def manifest_rows(dest: Path) -> list[dict]:
    """The manifest's rows, file names kept byte for byte."""
    with open(dest / MANIFEST, newline="", encoding="utf-8", errors="surrogateescape") as f:
        return list(csv.DictReader(f))


READY = ["--ckpt", str(READY_MODEL), "--no-progress", "--workers", "1", "--min-confidence", "0"]


def tones(folder: Path, names: list[str]) -> list[Path]:
    """1-s tones under `names` in `folder` (any file name the file system takes)."""
    import numpy as np
    import soundfile as sf

    folder.mkdir(parents=True, exist_ok=True)
    t = np.arange(22050) / 22050
    for i, name in enumerate(names):
        sf.write(folder / "tone.wav", 0.3 * np.sin(2 * np.pi * (220 + 110 * i) * t), 22050)
        os.replace(folder / "tone.wav", folder / name)  # libsndfile takes only names that are UTF-8
    return [folder / n for n in names]


def test_a_manifest_resaved_by_a_spreadsheet_is_still_read_and_appended_to(tmp_path, capsys):
    src, dest = tmp_path / "src", tmp_path / "dest"
    tones(src, ["a.wav", "b.wav"])
    assert main(["sort", str(src), str(dest), *READY]) == 0
    rows = manifest_rows(dest)
    with open(dest / MANIFEST, "w", newline="", encoding="utf-8-sig") as f:  # as a spreadsheet saves it
        writer = csv.writer(f, delimiter=";", lineterminator="\r\n")
        writer.writerow([c.upper() for c in COLUMNS])
        writer.writerows([r[c] for c in COLUMNS] for r in rows)
    capsys.readouterr()
    assert main(["sort", str(src), str(dest), *READY]) == 0
    err = capsys.readouterr().err
    assert "sorted 0 track(s)" in err and "2 already in the manifest" in err and not list(dest.rglob("* (2).wav"))
    tones(src, ["a.wav", "b.wav", "c.wav"])
    assert main(["sort", str(src), str(dest), *READY]) == 0
    text = (dest / MANIFEST).read_bytes().decode("utf-8")
    rows = list(csv.reader(text.lstrip("\ufeff").splitlines(), delimiter=";"))  # in the manifest's own dialect
    assert text.startswith("\ufeff") and len(rows) == 4 and all(len(r) == len(COLUMNS) for r in rows)


def test_a_manifest_whose_header_cannot_be_read_is_refused_not_taken_as_empty(tmp_path, capsys):
    src, dest = tmp_path / "src", tmp_path / "dest"
    tones(src, ["a.wav"])
    dest.mkdir()
    (dest / MANIFEST).write_text("Track|Where\nsomething else entirely\n")
    assert main(["sort", str(src), str(dest), *READY]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith(f"error: {dest / MANIFEST}: its header does not name the columns file, genre")
    assert not list(dest.rglob("*.wav"))


def test_names_not_utf8_or_near_255_bytes_are_copied_recorded_and_found_again(tmp_path, capsys):
    src, dest = tmp_path / "src", tmp_path / "dest"
    names = [os.fsdecode(b"caf\xe9 cr\xe8me.wav"), "é" * 120 + ".wav"]  # Latin-1; 244 bytes of UTF-8
    tones(src, names)
    for _ in range(2):
        assert main(["sort", str(src), str(dest), "--copy", *READY]) == 0
    err = capsys.readouterr().err
    assert "Traceback" not in err and "sorted 2 track(s)" in err and "2 already in the manifest" in err, err
    placed = sorted(p.name for p in dest.rglob("*.wav"))
    assert placed == sorted(names) and not list(dest.rglob("*.partial"))
    assert sorted(Path(r["file"]).name for r in manifest_rows(dest)) == sorted(names)
