"""What the README says about skipped files and the web page, held by the code: `predict` ends its list of
skipped files with a count, a WAV or AIFF cut short is skipped (not predicted as a short file), the page draws
a chroma panel for musicnn models too, and its drop zone names every format the loader decodes."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

SR = 16000


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 440 * t) * (1 + 0.5 * np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def cut_short(path: Path, fmt: str) -> Path:
    """A 5-s file of which the first quarter of the bytes is left: its header still declares 5 s."""
    sf.write(path, tone(5.0), SR, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 4])
    return path


def placeholder_size(path: Path) -> Path:
    """A complete 5-s WAV whose data chunk has the size a streaming encoder writes when it cannot seek back."""
    sf.write(path, tone(5.0), SR, subtype="PCM_16")
    data = bytearray(path.read_bytes())
    at = data.find(b"data")
    data[at + 4:at + 8] = struct.pack("<I", 0xFFFFFFFF)
    path.write_bytes(bytes(data))
    return path


def test_predict_skips_cut_short_files_and_ends_with_a_count(tmp_path, capsys):
    from genre_cnn.app.cli import main

    text = tmp_path / "a-notes.wav"
    text.write_text("not audio\n")
    files = [text, cut_short(tmp_path / "b-cut.wav", "WAV"), cut_short(tmp_path / "c-cut.aiff", "AIFF"),
             placeholder_size(tmp_path / "d-streamed.wav")]
    sf.write(tmp_path / "e-fine.wav", tone(5.0), SR)
    assert main(["predict", str(tmp_path), "--no-progress", "--workers", "1"]) == 0
    out, err = capsys.readouterr()
    lines = err.splitlines()
    assert lines[0] == f"{text}: not an audio file (it holds text)"
    for path, line in zip(files[1:3], lines[1:3]):
        assert line == f"{path}: truncated: the file holds 25% of the audio its header declares (a download or " \
                       "copy cut short)", line
    assert lines[3:] == ["3 of 5 file(s) skipped; 2 predicted"]  # no short-file warning: nothing cut was predicted
    assert "d-streamed.wav" in out and "e-fine.wav" in out


def test_the_page_draws_a_chroma_for_musicnn_models_for_reference(tmp_path):
    from genre_cnn.app.serve_analysis import analyse, feature_png
    from genre_cnn.inference.predict import READY_MODEL, load_model

    clip = tmp_path / "clip.wav"
    sf.write(clip, tone(4.0), SR)
    model = load_model(READY_MODEL)
    assert not model.frontend.config.chroma  # musicnn hears no chroma
    r = analyse(model, clip)
    assert r["chroma"].shape == (12, r["logmel"].shape[1])
    assert np.isfinite(r["chroma"]).all() and r["chroma"].max() == pytest.approx(1.0)  # normalised per frame
    assert r["chroma_title"] == "chroma (for reference: not a model input)"
    assert feature_png(r["chroma"], r["hop_seconds"], "chroma", title=r["chroma_title"]).startswith(
        "data:image/png;base64,")


def test_the_drop_zone_names_and_accepts_every_format_the_loader_decodes():
    from genre_cnn.audio.decode import DECODE_EXTENSIONS

    page = (Path(__file__).resolve().parents[1] / "genre_cnn" / "app" / "static" / "serve.html").read_text()
    listed = re.search(r'<div class="muted" id="formats">([^<]*)</div>', page).group(1)
    accept = re.search(r'<input id="file" type="file" accept="([^"]*)"', page).group(1)
    assert sorted(f".{name.strip()}" for name in listed.split(",")) == sorted(DECODE_EXTENSIONS)
    assert sorted(accept.split(",")) == sorted(["audio/*", *DECODE_EXTENSIONS])
