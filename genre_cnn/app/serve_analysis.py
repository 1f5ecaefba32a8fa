"""What the web page shows of one audio file: the model's answer over the whole track and along it, the
log-mel spectrogram the network saw and the chroma (the CNN's input; for musicnn, for reference), as images.

    from genre_cnn.app.serve_analysis import analyse, feature_png
    r = analyse(Predictor.open(engine="torch"), Path("song.mp3"))    # genre_cnn.inference.session
    png = feature_png(r["logmel"], r["hop_seconds"], "logmel", r["logmel_unit"])   # a data: URL

genre_cnn.app.serve serves these to the page (`genre-cnn serve`); nothing here needs the web stack.
`analyse` is the only function that touches the model.
"""

from __future__ import annotations

import base64
import dataclasses
import io
from collections.abc import Callable
from pathlib import Path

MAX_SECONDS = 15 * 60  # longer audio is refused (from its header, or while decoding)


def analyse(model, path: Path, max_seconds: float = MAX_SECONDS, check: Callable[[], None] | None = None) -> dict:
    """The model adapter: one audio file -> what the page shows. Raises AudioError (one line) for bad audio.
    `model`: a genre_cnn.inference.session.Predictor, or a classifier (genre_cnn.inference.predict.load_model).

    Returns {"model": class name, "genres": [n], "probabilities": [n] (the answer `genre-cnn predict` gives),
    "music": the model's verdict (None for a model without one; genre_cnn.inference.session),
    "window_times": [K] (s, window centres, spread evenly), "window_probabilities": [K][n] (one point for a model
    that sees the clip whole), "duration": s, "hop_seconds": s per frame, "logmel": (n_mels, T) numpy array (what the
    model's front end makes of the file), "chroma": (12, T) array (the CNN's own input; for a front end without
    chroma, musicnn's, the same chroma computed from its spectrogram, for reference), "chroma_title": what it is}.
    The file is decoded in pieces and the network runs in batches (genre_cnn.audio.decode.load_capped,
    `track_probs`); `check()` runs between pieces and may raise to stop.
    """
    import torch

    from genre_cnn.audio.decode import load_capped
    from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig
    from genre_cnn.inference.session import Predictor, verdict

    predictor = Predictor.of(model)
    model = predictor.model

    sr = model.sample_rate
    y = load_capped(path, sr, max_seconds, check=check)  # (samples,)
    duration = y.size / sr
    wave = torch.from_numpy(y)
    view = model.feature_view(wave)  # (channels, T) and its settings; None for a model that hears no spectrogram
    feats, config = view if view is not None else (None, FrontEndConfig(sample_rate=sr))
    heard_chroma = view is not None and config.chroma
    if not heard_chroma:  # the same log-mel (or the default front end's), and a chroma beside it, for reference
        config = dataclasses.replace(config, chroma=True)
        with torch.inference_mode():
            feats = FrontEnd(config)(wave[None])[0]  # (n_mels + 12, T)
    _, window_probs = model.track_probs(wave, check=check)  # (K, n)
    centres = (torch.arange(len(window_probs)) + 0.5) * duration / len(window_probs)  # (K,) seconds
    if check is not None:
        check()
    answer = predictor.predict_file(path, top_k=1)  # the answer and verdict of `genre-cnn predict`
    return {"model": type(model).__name__, "genres": model.genres,
            "probabilities": [answer["probabilities"][g] for g in model.genres], "music": verdict(answer),
            "window_times": centres.tolist(), "window_probabilities": window_probs.tolist(),
            "duration": duration, "hop_seconds": config.hop_length / sr,
            "logmel_unit": "dB" if config.compression == "db" else "log10(1 + 10^4 power)",
            "logmel": feats[:config.n_mels].numpy(), "chroma": feats[config.n_mels:].numpy(),
            "chroma_title": "chroma (model input)" if heard_chroma else "chroma (for reference: not a model input)"}


def feature_png(data, hop_seconds: float, kind: str, unit: str = "dB", title: str | None = None) -> str:
    """A (bins, T) log-mel (kind "logmel", in `unit`) or chroma ("chroma") array as a labelled PNG data URL, with
    `title` (default: that it is the model's input)."""
    import numpy as np
    from matplotlib.figure import Figure  # no pyplot: its global state is not thread-safe

    logmel = kind == "logmel"
    height = 2.6 if logmel else 1.9  # inches; fixed margins, so that both images share one time axis
    fig = Figure(figsize=(9, height), dpi=100)
    bottom, top = 0.45 / height, 1 - 0.3 / height
    ax = fig.add_axes((0.08, bottom, 0.8, top - bottom))
    extent = (0, data.shape[1] * hop_seconds, 0, data.shape[0])
    span = 80 if unit == "dB" else 4  # colour range below the loudest bin: 80 dB, or 4 decades of log10
    img = ax.imshow(data, origin="lower", aspect="auto", extent=extent, interpolation="nearest",
                    cmap="magma" if logmel else "viridis",
                    vmin=max(float(data.min()), float(data.max()) - span) if logmel else 0,
                    vmax=None if logmel else 1)
    ax.set(xlabel="time (s)", ylabel="mel bin" if logmel else "pitch class",
           title=title or ("log-mel spectrogram (model input)" if logmel else "chroma (model input)"))
    if not logmel:
        ax.set_yticks(np.arange(12) + 0.5, ["C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B"],
                      fontsize=7)
    cax = fig.add_axes((0.895, bottom, 0.015, top - bottom))
    fig.colorbar(img, cax=cax).set_label(unit if logmel else "relative energy")
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
