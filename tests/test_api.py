"""The Python API of the README: `from genre_cnn import load_model, predict_file, predict_waveform`."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import GTZAN_MINI, needs_gtzan_mini

README = Path(__file__).resolve().parents[1] / "README.md"
CLIP = GTZAN_MINI / "genres" / "classical" / "classical.00002.wav"


def test_import_genre_cnn_imports_no_torch_until_a_model_is_loaded():
    code = ("import sys, genre_cnn; from genre_cnn import load_model, predict_file, predict_waveform; "
            "print('torch' in sys.modules, sorted(genre_cnn.__all__))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("False ") and "'predict_file'" in out
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        import genre_cnn

        genre_cnn.nothing  # noqa: B018


@needs_gtzan_mini
def test_the_readme_example_runs_as_written(capsys):
    block = re.search(r"## From Python\n.*?```python\n(.*?)```", README.read_text(), re.S).group(1)
    import soundfile as sf

    samples, rate = sf.read(CLIP)  # (samples,) at 22050 Hz
    exec(block.replace("song.mp3", str(CLIP)), {"samples": samples, "rate": rate})
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("classical 0.") and "'genre': 'classical'" in lines[1]


@needs_gtzan_mini
def test_waveform_and_file_give_the_same_answer():
    import soundfile as sf

    from genre_cnn import load_model, predict_file, predict_waveform
    from genre_cnn.audio.decode import AudioError
    from genre_cnn.models.checkpoint import READY_MODEL

    model = load_model(READY_MODEL)
    samples, rate = sf.read(CLIP, dtype="float32")  # (samples,) at 22050 Hz, the model hears 16 kHz
    by_file = predict_file(model, CLIP, top_k=10)
    stereo = np.stack([samples, samples], axis=1)  # (samples, 2)
    by_wave = predict_waveform(model, stereo, rate, top_k=10)
    assert by_file["probabilities"].keys() == by_wave["probabilities"].keys()
    np.testing.assert_allclose(list(by_wave["probabilities"].values()), list(by_file["probabilities"].values()),
                               atol=1e-5)
    assert by_wave["music"]["verdict"] == by_file["music"]["verdict"] == "music"  # the ready model's detector
    assert by_wave["music"]["music_probability"] == pytest.approx(by_file["music"]["music_probability"], abs=1e-5)
    with pytest.raises(AudioError, match="missing.wav: cannot be read"):
        predict_file(model, CLIP.with_name("missing.wav"))
