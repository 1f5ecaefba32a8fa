"""One PNG per audio file with the write-up's views of it, and the model's genre probabilities.

    genre-cnn plot song.mp3 [--ckpt CKPT] [--out DIR]      # writes DIR/song.png

Panels, top to bottom (time in seconds, frequency in Hz): the waveform; the linear-frequency spectrogram
in dB; the log-mel spectrogram the model sees (its own front end, or a default one without a model; in dB,
or in log10(1 + 10^4 power) for musicnn's) and the chroma (a model input for the CNN; drawn for reference
for musicnn, which takes none); MFCCs 1-19 of that log-mel (c0, the overall level, is left out: it would
take the whole colour scale); spectral centroid and zero-crossing rate over time; and, given a model, its
answer for the whole file (every window), with its verdict for a model that knows what it does not know
(genre_cnn.inference.session: a file it does not judge to be music is titled so, its bars only a guess).
`png_names` gives several inputs that share a name distinct PNG names.

Memory does not grow past a bound: files over MAX_SECONDS are refused (from the header, or while decoding in
pieces), the network hears the file a piece at a time (genre_cnn.inference.track), and the spectrogram panels draw at
most MAX_COLUMNS columns (neighbouring frames averaged). Characters that the figure's font cannot draw
(a CJK file name with the default font) are written as \\uXXXX escapes, never as boxes.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from genre_cnn.errors import GenreCnnError
from genre_cnn.paths import atomic_write

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from genre_cnn.inference.session import Predictor

MAX_SECONDS = 15 * 60  # longer files are refused
MAX_COLUMNS = 4000  # spectrogram columns drawn at most (about three per pixel of the figure's width)
TIME_PANELS = 7  # waveform, spectrogram, log-mel, chroma, MFCC, centroid, ZCR; +1 bar chart with a model
MFCC_TITLE = "MFCC 1-19 (c0, the overall level, left out)"


def png_names(paths: list[Path]) -> list[str]:
    """A distinct PNG name per input, in order: `song.png`; `song.mp3.png`, `song.flac.png` where several
    inputs share the stem `song`; and `-2`, `-3` added where whole names repeat (a/x.wav, b/x.wav)."""
    stems = [Path(p).stem for p in paths]
    names = [Path(p).name if stems.count(s) > 1 else s for p, s in zip(paths, stems)]
    out: list[str] = []
    for name in names:
        k = sum(n == name for n in names[:len(out)])
        out.append(f"{name}-{k + 1}.png" if k else f"{name}.png")
    return out


class PlotError(GenreCnnError):
    """An output folder that cannot be used; the message is one line."""

    exit_code = 2


def check_out_dir(out: Path) -> Path:
    """`out` if it is a folder or a new path (created when the first PNG is written); else PlotError."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise PlotError(f"--out {out}: not a folder (it is a file); give the folder for the PNGs")
    return out


def displayable(text: str) -> str:
    """`text` with each character that the figure's font has no glyph for written as a \\uXXXX escape."""
    from matplotlib import font_manager
    from matplotlib.ft2font import FT2Font

    font = FT2Font(font_manager.findfont(font_manager.FontProperties()))
    return "".join(c if c.isascii() or font.get_char_index(ord(c)) else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _columns(data, frames_per_column: int):
    """(bins, T) -> (bins, ceil(T / f)): the mean of each f neighbouring frames (the last group may be shorter)."""
    import numpy as np

    if frames_per_column == 1:
        return data
    t = data.shape[1]
    starts = np.arange(0, t, frames_per_column)
    return np.add.reduceat(data, starts, axis=1) / np.diff(np.append(starts, t))  # (bins, columns)


def build_figure(path: Path, model: Predictor | None = None) -> Figure:
    """The figure for one file (not saved); `model`: a Predictor (genre_cnn.inference.session), or a classifier.
    Every panel has a title and both axis labels; colour bars are extra axes labelled with their unit. Raises
    AudioError for a file that is not usable audio or is longer than MAX_SECONDS."""
    import librosa
    import librosa.display
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import torch

    from genre_cnn.audio.decode import load_capped
    from genre_cnn.audio.frontend import N_CHROMA, FrontEnd, FrontEndConfig
    from genre_cnn.inference.session import Predictor, choose_genres, verdict_text

    predictor = Predictor.of(model) if model is not None else None
    model = predictor.model if predictor is not None else None
    path = Path(path)
    y = load_capped(path, model.sample_rate if model is not None else FrontEndConfig().sample_rate, MAX_SECONDS)
    view = model.feature_view(torch.from_numpy(y)) if model is not None else None  # what the model hears, if any
    config = view[1] if view is not None else FrontEndConfig(sample_rate=model.sample_rate if model else 22050)
    frontend = FrontEnd(config)  # the panels' spectrogram: the model's front end's, or a default one at its rate
    sr, n_fft, hop = config.sample_rate, config.n_fft, config.hop_length
    with torch.no_grad():
        power_t = frontend.power(torch.from_numpy(y)[None])  # (1, bins, frames)
        feats = view[0].numpy() if view is not None else frontend.from_power(power_t)[0].numpy()  # (n_mels [+ 12], T)
    answer = predictor.predict_file(path, top_k=1, max_windows=0) if predictor is not None else None  # every window
    probs = np.array([answer["probabilities"][g] for g in model.genres]) if answer else None  # (n,)
    power = power_t[0].numpy()  # (bins, frames)
    del power_t
    mel = feats[:config.n_mels]
    if config.chroma:
        chroma, chroma_title = feats[config.n_mels:], "chroma (model input)"
    else:  # musicnn takes none: drawn for reference
        chroma = librosa.feature.chroma_stft(S=power, sr=sr, n_fft=n_fft, tuning=0.0, n_chroma=N_CHROMA)
        chroma_title = "chroma (for reference: not a model input)"
    mel_unit = "dB" if config.compression == "db" else "log10(1 + 10^4 power)"
    mfcc = librosa.feature.mfcc(S=mel, n_mfcc=20)[1:]  # (19, frames): c1..c19
    centroid = librosa.feature.spectral_centroid(S=np.sqrt(power), sr=sr, n_fft=n_fft)[0]  # (frames,)
    zcr = librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=hop)[0]  # (frames,)
    times = librosa.times_like(centroid, sr=sr, hop_length=hop)
    f = -(-power.shape[1] // MAX_COLUMNS)  # frames per drawn column
    spec_db = _columns(librosa.power_to_db(power, ref=1.0, amin=1e-10, top_db=80.0), f)  # (bins, columns)
    del power

    rows = TIME_PANELS + (probs is not None)
    heights = [1.0, 1.6, 1.6, 1.0, 1.2, 1.0, 1.0] + ([0.22 * len(probs) + 0.5] if probs is not None else [])
    fig, axes = plt.subplots(rows, 1, figsize=(12, 2.1 * sum(heights)), height_ratios=heights,
                             layout="constrained")
    fig.suptitle(f"{displayable(path.name)}: {y.size / sr:.1f} s at {sr} Hz", fontsize=13)
    ax_wave, ax_spec, ax_mel, ax_chroma, ax_mfcc, ax_cent, ax_zcr = axes[:TIME_PANELS]
    duration = y.size / sr

    librosa.display.waveshow(y, sr=sr, ax=ax_wave, color="tab:blue", axis="s")  # seconds, never m:ss
    ax_wave.set(title="waveform", ylabel="amplitude")

    shows = [
        (ax_spec, spec_db, "linear", "spectrogram (linear frequency)", "frequency (Hz)", "dB"),
        (ax_mel, _columns(mel, f), "mel", "log-mel spectrogram (model input)", "frequency (Hz, mel scale)",
         mel_unit),
        (ax_chroma, _columns(chroma, f), "chroma", chroma_title, "pitch class", "relative energy"),
        (ax_mfcc, _columns(mfcc, f), None, MFCC_TITLE, "coefficient", "value"),
    ]
    for ax, data, y_axis, title, ylabel, unit in shows:
        img = librosa.display.specshow(data, sr=sr, hop_length=hop * f, n_fft=n_fft, x_axis="s", y_axis=y_axis,
                                       ax=ax, cmap="magma" if y_axis != "chroma" else "viridis")
        ax.set(title=title, ylabel=ylabel)
        fig.colorbar(img, ax=ax, pad=0.01).set_label(unit)
    ax_mfcc.set_yticks(np.arange(0, len(mfcc), 4) + 0.5, labels=[str(i + 1) for i in range(0, len(mfcc), 4)])

    ax_cent.plot(times, centroid, color="tab:orange")
    ax_cent.set(title="spectral centroid", ylabel="frequency (Hz)")
    ax_zcr.plot(times, zcr, color="tab:green")
    ax_zcr.set(title="zero-crossing rate", ylabel="crossings / sample")
    for ax in axes[:TIME_PANELS]:
        ax.set_xlim(0, duration)
        ax.set_xlabel("time (s)")

    if probs is not None:
        ax_bar = axes[TIME_PANELS]
        order = np.argsort(probs)  # lowest first: the best genre ends up on top
        names = [displayable(model.genres[i]) for i in order]
        bars = ax_bar.barh(names, probs[order], color=["tab:gray"] * (len(order) - 1) + ["tab:red"])
        ax_bar.bar_label(bars, labels=[f"{100 * p:.1f}%" for p in probs[order]], padding=3)
        title = f"genre probabilities ({type(model).__name__}, whole file)"
        if choose_genres(answer).reason in ("not music", "unfamiliar"):
            title = f"{verdict_text(answer)}: no genre; what it would have guessed ({type(model).__name__})"
        ax_bar.set(title=title, xlabel="probability", ylabel="genre", xlim=(0, 1.1))
    return fig


def plot_file(path: Path, out_png: Path, model: Predictor | None = None) -> Path:
    """Writes the figure of `build_figure` for the audio file `path` to `out_png` (atomically) and returns it.

    Raises genre_cnn.audio.decode.AudioError (one line) if the file cannot be read as audio or is too long.
    """
    import io

    import matplotlib.pyplot as plt

    fig = build_figure(path, model)
    buf = io.BytesIO()
    try:
        fig.savefig(buf, format="png", dpi=100)
    finally:
        plt.close(fig)
    return atomic_write(Path(out_png), lambda f: f.write(buf.getvalue()))
