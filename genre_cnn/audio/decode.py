"""Reading audio: any supported file as mono float32 at a chosen rate, whole or in bounded memory.

    from genre_cnn.audio.decode import load_audio
    y = load_audio(Path("song.mp3"), 22050)    # (samples,) float32; AudioError (one line) for unusable audio
    python -m genre_cnn.data.layout DATA_DIR          # lists a dataset's usable clips, and what is skipped and why

Length policy (documented in the README): a clip shorter than `min_seconds` is skipped as too short;
a dataset clip is fixed to `clip_seconds` by taking the centred excerpt of a longer file and by looping
a shorter one (GTZAN's clips are 29.9-30.6 s, so this trims or pads a few milliseconds at most).
Prediction uses the whole file, whatever its length. Where a dataset's files are: genre_cnn.data.layout; what a
file's first bytes say it is: genre_cnn.audio.sniff.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np

from genre_cnn.audio.reader import AUDIO_EXTENSIONS, MIN_RATE, SOUNDFILE_EXTENSIONS, AudioReader, resample
from genre_cnn.audio.sniff import AudioError, shown

log = logging.getLogger(__name__)

__all__ = ["AUDIO_EXTENSIONS", "DECODE_EXTENSIONS", "PREDICT_MIN_SECONDS", "SOUNDFILE_EXTENSIONS", "AudioError",
           "SignalCheck", "audio_info", "fix_length", "load_audio", "load_capped", "resample", "shown"]
# What prediction searches folders for: soundfile's formats, and what ffmpeg decodes through audioread.
DECODE_EXTENSIONS = (*SOUNDFILE_EXTENSIONS, ".m4a", ".m4b", ".mp4", ".aac", ".opus", ".wma", ".mka", ".webm",
                     ".wv", ".ape", ".ac3", ".mp2", ".amr")
BLOCK = 1 << 20  # samples per block when a signal is checked in pieces
PREDICT_MIN_SECONDS = 0.5  # prediction refuses shorter files; longer ones are used whole (looped up to one window)


def audio_info(path: Path) -> tuple[int, int] | None:
    """(sample rate in Hz, frames) of a file soundfile can open and seek in, with a length its size can hold,
    or None if its length is unknown until it is decoded (the fallback decoder's formats, a header that
    misstates it). Raises AudioError for an absurd rate and for what cannot be audio at all (see `sniff`)."""
    with AudioReader(path, MIN_RATE) as reader:
        return None if reader.frames is None else (reader.rate, reader.frames)


def load_audio(path: Path, sample_rate: int, min_seconds: float = 3.0) -> np.ndarray:
    """Read any supported file as mono float32 at `sample_rate`, shape (samples,).

    Raises AudioError (one line) for unreadable, empty, non-finite-only, silent, signal-free (a constant level,
    a lone click) or too-short audio, and for a header rate outside 4-384 kHz (checked before resampling).
    NaN and inf samples are replaced by 0; stereo is averaged; other rates are resampled (soxr, high quality).
    """
    y, sr = _decode(path)
    if y.size == 0:
        raise AudioError(f"{shown(path)}: no audio samples (empty or truncated file)")
    y = resample(y, sr, sample_rate)
    seconds = y.size / sample_rate
    if seconds < min_seconds:
        raise AudioError(f"{shown(path)}: too short ({seconds:.2f} s < {min_seconds:g} s)")
    SignalCheck().add(y).verdict(path, sample_rate)
    return y


def load_capped(path: Path, sample_rate: int, max_seconds: float, min_seconds: float = PREDICT_MIN_SECONDS,
                check: Callable[[], None] | None = None) -> np.ndarray:
    """`load_audio` in bounded memory, for files that a user hands over whole (the web page, plots).

    A file longer than `max_seconds` is refused (AudioError) from its header where it states its length, and
    in any case while decoding: blocks of about a million samples are read, mixed to mono and resampled one
    at a time (genre_cnn.audio.reader), and decoding stops at the first block past the limit. Memory: the
    result (at most `max_seconds * sample_rate` float32 samples) plus one block, whatever the file claims.
    `check()` is called after every block and may raise to stop the work (a client that left). Returns
    (samples,) float32.
    """
    pieces, samples = [], 0
    with AudioReader(path, sample_rate) as reader:
        if reader.seconds is not None and reader.seconds > max_seconds:
            raise AudioError(f"{path}: too long ({reader.seconds / 60:.1f} min > {max_seconds / 60:g} min)")
        for block in reader.stream():  # (samples,) at sample_rate
            samples += block.size
            if samples > max_seconds * sample_rate + sample_rate:  # a second of resampler slack
                raise AudioError(f"{path}: too long (more than {max_seconds / 60:g} min)")
            pieces.append(block)
            if check is not None:
                check()
        source = reader.frames_read, reader.rate or sample_rate
    if source[0] == 0:
        raise AudioError(f"{path}: no audio samples (empty or truncated file)")
    n = int(np.ceil(source[0] * sample_rate / source[1]))  # as `resample`
    y = np.concatenate(pieces)[:n]
    y = np.pad(y, (0, n - y.size)) if y.size < n else y
    if y.size < min_seconds * sample_rate:
        raise AudioError(f"{path}: too short ({y.size / sample_rate:.2f} s < {min_seconds:g} s)")
    signal = SignalCheck()
    for start in range(0, y.size, BLOCK):
        signal.add(y[start:start + BLOCK])
    signal.verdict(path, sample_rate)
    return y


class SignalCheck:
    """Is there music in it? Accumulates over the blocks of a track: refuses a peak below -80 dBFS, an RMS
    below -60 dBFS after removing each block's DC, and fewer than 0.1 s of samples above -60 dBFS (a lone click)."""

    def __init__(self):
        self.n = self.active = 0
        self.peak = self.energy = 0.0

    def add(self, y: np.ndarray) -> SignalCheck:
        if y.size:
            centred = y - y.mean(dtype=np.float64)  # (samples,) float64
            self.n += y.size
            self.peak = max(self.peak, float(np.max(np.abs(y))))
            self.energy += float(np.dot(centred, centred))
            self.active += int(np.count_nonzero(np.abs(centred) > 1e-3))
        return self

    def verdict(self, path: Path, sample_rate: int = 22050) -> None:
        if self.peak < 1e-4:
            raise AudioError(f"{shown(path)}: silent (peak below -80 dBFS)")
        if self.energy < 1e-6 * self.n or self.active < min(sample_rate // 10, self.n // 100):
            raise AudioError(f"{shown(path)}: silent or no signal (a constant level or isolated clicks, "
                             "RMS below -60 dBFS)")


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """The whole file as mono float32 (samples,) and its rate, read in blocks (genre_cnn.audio.reader: soundfile
    for wav, flac, ogg, mp3, aiff, ...; else audioread, i.e. ffmpeg, for m4a, aac, opus, wma, ...)."""
    with AudioReader(path, MIN_RATE) as reader:
        blocks = [block for block, _ in reader.source_blocks()]  # (frames,) each, at the file's rate
        return (np.concatenate(blocks) if blocks else np.zeros(0, np.float32)), reader.rate or MIN_RATE


def fix_length(y: np.ndarray, samples: int) -> np.ndarray:
    """Centred excerpt of a longer signal, or a shorter one looped, to exactly `samples`, shape (samples,)."""
    if y.size >= samples:
        start = (y.size - samples) // 2
        return y[start:start + samples]
    return np.resize(y, samples)  # repeats y from its start

