"""Reading audio: any supported file as mono float32 at a chosen rate, whole, a span, or in bounded memory.

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
import os
from collections.abc import Callable, Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from genre_cnn.audio.sniff import AudioError, quiet_stderr, shown, sniff

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")  # what a dataset folder is searched for
SOUNDFILE_EXTENSIONS = (*AUDIO_EXTENSIONS, ".aiff", ".aif", ".aifc", ".caf", ".w64", ".rf64", ".oga", ".snd")
# What prediction searches folders for: soundfile's formats, and what ffmpeg decodes through audioread.
DECODE_EXTENSIONS = (*SOUNDFILE_EXTENSIONS, ".m4a", ".m4b", ".mp4", ".aac", ".opus", ".wma", ".mka", ".webm",
                     ".wv", ".ape", ".ac3", ".mp2", ".amr")
MIN_RATE, MAX_RATE = 4000, 384000  # Hz: a header outside this range is damage, not audio
BLOCK = 1 << 20  # samples per block when a file is decoded in pieces
UNKNOWN_FRAMES = 1 << 62  # what libsndfile reports as the length of a stream that does not state it
PREDICT_MIN_SECONDS = 0.5  # prediction refuses shorter files; longer ones are used whole (looped up to one window)


def audio_info(path: Path) -> tuple[int, int] | None:
    """(sample rate in Hz, frames) of a file soundfile can open and seek in, or None if only the fallback
    decoder can read it (its length is then unknown until it is decoded). Raises AudioError for an absurd rate
    and for what cannot be audio at all (see `sniff`)."""
    import soundfile as sf

    kind = sniff(path)
    try:
        with quiet_stderr(kind != "audio"):
            info = sf.info(os.fsencode(path))
    except Exception:  # noqa: BLE001 - not a soundfile format: the fallback decoder decides
        return None
    _check_rate(path, info.samplerate)
    return info.samplerate, info.frames


def load_audio(path: Path, sample_rate: int, min_seconds: float = 3.0) -> np.ndarray:
    """Read any supported file as mono float32 at `sample_rate`, shape (samples,).

    Raises AudioError (one line) for unreadable, empty, non-finite-only, silent, signal-free (a constant level,
    a lone click) or too-short audio, and for a header rate outside 4-384 kHz (checked before resampling).
    NaN and inf samples are replaced by 0; stereo is averaged; other rates are resampled (soxr, high quality).
    """
    y, sr = _decode(path)
    if y.size == 0:
        raise AudioError(f"{shown(path)}: no audio samples (empty or truncated file)")
    y = resample(_clean(y), sr, sample_rate)
    seconds = y.size / sample_rate
    if seconds < min_seconds:
        raise AudioError(f"{shown(path)}: too short ({seconds:.2f} s < {min_seconds:g} s)")
    SignalCheck().add(y).verdict(path, sample_rate)
    return y


def read_span(path: Path, sample_rate: int, start: int, length: int) -> np.ndarray:
    """Samples [start, start + length) at `sample_rate` of a seekable file (see `audio_info`), mono float32,
    shape (length,), zeros past its end. Only that span (and a resampler margin of ~0.1 s) is decoded, so
    memory does not depend on the file's length."""
    import soundfile as sf

    try:
        with quiet_stderr(sniff(path) != "audio"), sf.SoundFile(os.fsencode(path)) as f:
            sr = f.samplerate
            _check_rate(path, sr)
            ratio = Fraction(sample_rate, sr)
            q = ratio.denominator  # source offsets that are multiples of q land on whole target samples
            margin = 0 if sr == sample_rate else sr // 10
            first = max(0, (int(start / ratio) - margin) // q * q)  # source frame
            f.seek(min(first, f.frames))
            need = int((start + length) / ratio) + 1 + margin - first
            y = f.read(need, dtype="float32", always_2d=True).mean(axis=1)  # (frames,)
    except AudioError:
        raise
    except Exception as err:  # noqa: BLE001 - a decoder failure half-way: not usable
        raise AudioError(f"{shown(path)}: unreadable audio ({_reason(err)})") from None
    y = resample(_clean(y), sr, sample_rate)
    offset = start - int(first * ratio)
    y = y[offset:offset + length]
    return np.pad(y, (0, length - y.size)) if y.size < length else y


def load_capped(path: Path, sample_rate: int, max_seconds: float, min_seconds: float = PREDICT_MIN_SECONDS,
                check: Callable[[], None] | None = None) -> np.ndarray:
    """`load_audio` in bounded memory, for files that a user hands over whole (the web page, plots).

    A file longer than `max_seconds` is refused (AudioError) from its header where it states its length, and
    in any case while decoding: blocks of about a million samples are read, mixed to mono and resampled one
    at a time, and decoding stops at the first block past the limit. Memory: the result (at most
    `max_seconds * sample_rate` float32 samples) plus one block, whatever the file claims. `check()` is called
    after every block and may raise to stop the work (a client that left). Returns (samples,) float32.
    """
    info = audio_info(path)
    if info is not None and max_seconds * info[0] < info[1] < UNKNOWN_FRAMES:
        raise AudioError(f"{path}: too long ({info[1] / info[0] / 60:.1f} min > {max_seconds / 60:g} min)")
    pieces, frames, stream, sr = [], 0, None, sample_rate
    for block, sr in _blocks(path):  # (frames,) mono at the file's rate
        frames += block.size
        if frames > max_seconds * sr:
            raise AudioError(f"{path}: too long (more than {max_seconds / 60:g} min)")
        if sr != sample_rate:
            import soxr

            stream = stream or soxr.ResampleStream(sr, sample_rate, 1, dtype="float32", quality="HQ")
            block = stream.resample_chunk(block)
        pieces.append(block)
        if check is not None:
            check()
    if stream is not None:
        pieces.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    if frames == 0:
        raise AudioError(f"{path}: no audio samples (empty or truncated file)")
    n = int(np.ceil(frames * sample_rate / sr))  # as `resample`
    y = np.concatenate(pieces)[:n]
    y = np.pad(y, (0, n - y.size)) if y.size < n else y
    if y.size < min_seconds * sample_rate:
        raise AudioError(f"{path}: too short ({y.size / sample_rate:.2f} s < {min_seconds:g} s)")
    signal = SignalCheck()
    for start in range(0, y.size, BLOCK):
        signal.add(y[start:start + BLOCK])
    signal.verdict(path, sample_rate)
    return y


def _blocks(path: Path) -> Iterator[tuple[np.ndarray, int]]:
    """The file as (mono float32 block, sample rate) pairs of at most BLOCK frames, NaN/inf zeroed, clipped."""
    import soundfile as sf

    try:
        f = sf.SoundFile(str(path))
    except Exception:  # noqa: BLE001 - not a soundfile format: the fallback decoder below
        f = None
    try:
        if f is not None:
            with f:
                _check_rate(path, f.samplerate)
                for block in f.blocks(max(1024, BLOCK // f.channels), dtype="float32", always_2d=True):
                    yield _clean(block.mean(axis=1)), f.samplerate  # (frames, channels) -> (frames,)
            return
        import audioread

        try:
            decoder = audioread.audio_open(str(path))
        except Exception:  # noqa: BLE001 - `_decode` says why, in the loader's own words
            _decode(path)
            raise AudioError(f"{path}: unreadable audio") from None
        with decoder:
            sr, channels = decoder.samplerate, max(1, decoder.channels)
            _check_rate(path, sr)
            rest = b""
            for buf in decoder:  # 16-bit PCM, interleaved; a buffer may end inside a frame
                buf = rest + buf
                cut = len(buf) // (2 * channels) * 2 * channels
                rest = buf[cut:]
                pcm = np.frombuffer(buf[:cut], dtype="<i2").astype(np.float32) / 32768.0  # (frames * channels,)
                yield _clean(pcm.reshape(-1, channels).mean(axis=1)), sr
    except AudioError:
        raise
    except Exception as err:  # noqa: BLE001 - a decoder failure half-way: not usable
        raise AudioError(f"{path}: unreadable audio ({_reason(err)})") from None


def resample(y: np.ndarray, sr: int, sample_rate: int) -> np.ndarray:
    """(samples,) at `sr` -> float32 at `sample_rate` (soxr HQ, length ceil(samples * ratio), as librosa's
    `resample(res_type="soxr_hq")` that training used)."""
    if sr == sample_rate:
        return y
    import soxr

    out = soxr.resample(y, sr, sample_rate, quality="HQ").astype(np.float32)
    n = int(np.ceil(y.size * sample_rate / sr))
    return out[:n] if out.size >= n else np.pad(out, (0, n - out.size))


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


def _check_rate(path: Path, sr: int) -> None:
    if not MIN_RATE <= sr <= MAX_RATE:
        raise AudioError(f"{shown(path)}: implausible sample rate {sr} Hz in its header (expected "
                         f"{MIN_RATE}-{MAX_RATE} Hz): a damaged or mislabelled file")


def _clean(y: np.ndarray) -> np.ndarray:
    y = np.nan_to_num(y.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(y, -1.0, 1.0, out=y)


def _reason(err: BaseException) -> str:
    """A decoder's message as one line, without library exception names."""
    text = getattr(err, "error_string", None) or (str(err).splitlines() or [""])[0]
    if "possibly a pipe" in text:  # libsndfile's words for a regular file whose contents it does not recognise
        return "damaged, or not in a format its decoder recognises"
    return text.strip().rstrip(".")[:200] or "the decoder gave up"


def _decode(path: Path) -> tuple[np.ndarray, int]:
    """The whole file as mono float32 (samples,) and its rate: soundfile (wav, flac, ogg, mp3, aiff, ...), else
    audioread (ffmpeg, GStreamer or Core Audio: m4a, aac, opus, wma, ...)."""
    import soundfile as sf

    kind = sniff(path)
    try:
        with quiet_stderr(kind != "audio"), sf.SoundFile(os.fsencode(path)) as f:
            _check_rate(path, f.samplerate)
            return f.read(dtype="float32", always_2d=True).mean(axis=1), f.samplerate  # (samples,)
    except AudioError:
        raise
    except OSError as err:  # e.g. permission denied: no decoder will do better
        raise AudioError(f"{shown(path)}: cannot be read ({err.strerror or err})") from None
    except Exception as err:  # noqa: BLE001 - whatever a decoder library throws on a bad file: the fallback decides
        first = err
    import audioread

    try:
        with audioread.audio_open(str(path)) as f:
            sr, channels = f.samplerate, max(1, f.channels)
            _check_rate(path, sr)
            pcm = np.frombuffer(b"".join(f), dtype="<i2").astype(np.float32) / 32768.0  # (samples * channels,)
    except AudioError:
        raise
    except Exception as err:  # noqa: BLE001 - the fallback decoder failed too: say why in one line
        if kind == "unknown":
            raise AudioError(f"{shown(path)}: unknown format: not an audio file, or a damaged one (it starts "
                             "like no format the decoders know)") from None
        if path.suffix.lower() in SOUNDFILE_EXTENSIONS or not path.suffix:
            raise AudioError(f"{shown(path)}: unreadable audio ({_reason(first)})") from None
        if isinstance(err, audioread.NoBackendError):
            raise AudioError(f"{shown(path)}: cannot decode {path.suffix} files: no decoder installed (install "
                             "ffmpeg, e.g. `apt-get install ffmpeg` or `brew install ffmpeg`)") from None
        raise AudioError(f"{shown(path)}: unreadable audio ({_reason(err)})") from None
    return pcm[: pcm.size // channels * channels].reshape(-1, channels).mean(axis=1), sr


def fix_length(y: np.ndarray, samples: int) -> np.ndarray:
    """Centred excerpt of a longer signal, or a shorter one looped, to exactly `samples`, shape (samples,)."""
    if y.size >= samples:
        start = (y.size - samples) // 2
        return y[start:start + samples]
    return np.resize(y, samples)  # repeats y from its start

