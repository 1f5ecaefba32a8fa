"""`genre-cnn plot`: one readable PNG per file with every view of the write-up, labelled, and the genre
probabilities when a model is given."""

from __future__ import annotations

import matplotlib.image
import matplotlib.pyplot as plt

from genre_cnn.app.cli import main
from genre_cnn.app.plot import MFCC_TITLE, build_figure, png_names
from genre_cnn.data.demo import DEMO_GENRES
from genre_cnn.inference.predict import load_model

PANELS = ["waveform", "spectrogram (linear frequency)", "log-mel spectrogram (model input)",
          "chroma (model input)", MFCC_TITLE, "spectral centroid", "zero-crossing rate"]


def panels(fig) -> list:
    """The figure's titled axes (colour bars are extra, untitled axes)."""
    return [ax for ax in fig.axes if ax.get_title()]


def test_plot_writes_a_png_per_file(demo_run, demo_dir, tmp_path, capsys):
    ckpt = demo_run["root"] / "checkpoints" / demo_run["run"] / "cnn" / "best.ckpt"
    wav = demo_dir / "techno" / "techno.00002.wav"
    assert main(["plot", str(wav), "--ckpt", str(ckpt), "--out", str(tmp_path)]) == 0
    png = tmp_path / "techno.00002.png"
    assert capsys.readouterr().out.strip() == str(png)
    image = matplotlib.image.imread(png)  # (height, width, RGBA)
    assert image.shape[1] >= 1000 and image.shape[0] >= 1500
    assert image[..., :3].std() > 0.1  # not a blank canvas


def test_figure_has_every_view_labelled_and_the_probabilities(demo_run, demo_dir):
    model = load_model(demo_run["root"] / "checkpoints" / demo_run["run"] / "cnn" / "best.ckpt")
    fig = build_figure(demo_dir / "ambient" / "ambient.00003.wav", model)
    try:
        axes = panels(fig)
        assert [ax.get_title() for ax in axes[:-1]] == PANELS
        assert "genre probabilities" in axes[-1].get_title()
        assert all(ax.get_xlabel() and ax.get_ylabel() for ax in axes)
        assert all(ax.get_xlabel() == "time (s)" and ax.get_xlim() == (0.0, 8.0) for ax in axes[:-1])
        assert "ambient.00003.wav" in fig.get_suptitle()
        bars = axes[-1].patches
        assert len(bars) == len(DEMO_GENRES) and abs(sum(b.get_width() for b in bars) - 1) < 1e-4
        assert sum(ax.get_ylabel() == "dB" for ax in fig.axes) == 2  # colour bars of both spectrograms
    finally:
        plt.close(fig)


def test_figure_without_a_model_has_no_probabilities(demo_dir):
    fig = build_figure(demo_dir / "noise" / "noise.00000.wav")
    try:
        assert [ax.get_title() for ax in panels(fig)] == PANELS
    finally:
        plt.close(fig)


def test_files_sharing_a_name_get_a_png_each(tmp_path, monkeypatch, capsys):
    import genre_cnn.app.plot
    from genre_cnn.inference.session import Predictor

    paths = [tmp_path / "a" / "x.wav", tmp_path / "a" / "x.flac", tmp_path / "b" / "x.wav", tmp_path / "y.wav"]
    assert png_names(paths) == ["x.wav.png", "x.flac.png", "x.wav-2.png", "y.png"]
    for p in paths:
        p.parent.mkdir(exist_ok=True)
        p.write_bytes(b"")
    monkeypatch.setattr(Predictor, "open", classmethod(lambda cls, *args: None))  # no model needed
    def fake_plot(path, png, model):  # records which file made which PNG, without drawing
        png.parent.mkdir(exist_ok=True)
        png.write_text(str(path))
        return png

    monkeypatch.setattr(genre_cnn.app.plot, "plot_file", fake_plot)
    assert main(["plot", *map(str, paths), "--out", str(tmp_path / "out")]) == 0
    written = {p.read_text() for p in (tmp_path / "out").glob("*.png")}
    assert written == {str(p) for p in paths}  # none overwrote another


def test_long_file_axes_read_seconds_and_mfcc_leaves_out_c0(tmp_path):
    import numpy as np
    import soundfile

    sr = 8000
    t = np.arange(75 * sr) / sr
    soundfile.write(tmp_path / "long.wav", 0.3 * np.sin(2 * np.pi * 440 * t), sr)  # 75 s: m:ss territory
    fig = build_figure(tmp_path / "long.wav")
    try:
        fig.canvas.draw()
        wave, mfcc = panels(fig)[0], panels(fig)[4]
        labels = [t.get_text() for t in wave.get_xticklabels() if t.get_text()]
        assert wave.get_xlabel() == "time (s)" and labels and not any(":" in x for x in labels), labels
        import librosa

        mel_db = np.asarray(panels(fig)[2].collections[0].get_array())  # the log-mel panel (n_mels, frames)
        shown = np.asarray(mfcc.collections[0].get_array())
        assert "c0" in mfcc.get_title() and shown.shape[0] == 19
        np.testing.assert_allclose(shown, librosa.feature.mfcc(S=mel_db, n_mfcc=20)[1:], rtol=1e-4, atol=1e-3)
    finally:
        plt.close(fig)


def test_a_cjk_file_name_draws_no_missing_glyph(tmp_path):
    import warnings

    import numpy as np
    import soundfile

    song = tmp_path / "夜の歌 jazz.wav"
    t = np.arange(8 * 8000) / 8000
    soundfile.write(song, 0.3 * np.sin(2 * np.pi * 440 * t), 8000)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fig = build_figure(song)
        try:
            fig.canvas.draw()
        finally:
            plt.close(fig)
    assert [str(w.message) for w in caught if "Glyph" in str(w.message)] == []
    assert fig.get_suptitle().startswith("\\u591c\\u306e\\u6b4c jazz.wav: 8.0 s")


def test_musicnn_panels_say_what_its_model_takes(tmp_path):
    import numpy as np
    import soundfile

    from tests.test_serve_guard import READY

    model = load_model(READY)
    sr, t = 16000, np.arange(5 * 16000) / 16000
    wav = tmp_path / "tone.wav"
    soundfile.write(wav, 0.3 * np.sin(2 * np.pi * 440 * t) * (1 + np.sin(2 * np.pi * t)), sr)
    fig = build_figure(wav, model)
    try:
        axes = panels(fig)
        mel, chroma = axes[2], axes[3]
        assert mel.collections[0].get_array().shape[0] == 96  # every mel band of musicnn's front end
        assert chroma.get_title() == "chroma (for reference: not a model input)"
        units = [ax.get_ylabel() for ax in fig.axes if not ax.get_title()]  # the colour bars
        assert units[:2] == ["dB", "log10(1 + 10^4 power)"]
    finally:
        plt.close(fig)


def test_out_naming_a_file_is_one_line(tmp_path, capsys):
    existing = tmp_path / "plots"
    existing.write_text("keep me")
    assert main(["plot", str(tmp_path / "song.wav"), "--out", str(existing)]) == 2
    err = capsys.readouterr().err
    assert err == f"error: --out {existing}: not a folder (it is a file); give the folder for the PNGs\n"
    assert existing.read_text() == "keep me"


def test_hours_of_audio_are_refused_under_a_memory_cap(tmp_path):
    from pathlib import Path

    import numpy as np
    import soundfile

    from tests.memcap import run_capped

    with soundfile.SoundFile(tmp_path / "3h.flac", "w", 8000, 1, format="FLAC") as f:  # 270 KB of silence
        for _ in range(18):
            f.write(np.zeros(8000 * 600, np.float32))
    ready = Path(__file__).resolve().parents[1] / "genre_cnn" / "ready" / "musicnn_gtzan_mini.ckpt"
    args = ["plot", str(tmp_path / "3h.flac"), "--out", str(tmp_path), "--ckpt", str(ready)]
    setup = ("import librosa.display, matplotlib.pyplot, soundfile, soxr\nfrom genre_cnn.app.cli import main\n"
             f"from genre_cnn.inference.predict import load_model\nload_model({str(ready)!r})")
    # (imported and loaded before the cap)
    done = run_capped(f"print(main({args!r}))", headroom_mb=200, setup=setup)  # 3 h at 16 kHz: 690 MB
    assert done.stdout.strip() == "1", done.stderr[-2000:]
    assert done.stderr.strip() == f"{tmp_path / '3h.flac'}: too long (180.0 min > 15 min)"
