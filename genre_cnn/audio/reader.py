"""One open decoder per file: spans read by seeking, or the whole stream in blocks, mono at a chosen rate.

    from genre_cnn.audio.reader import AudioReader
    with AudioReader(Path("song.mp3"), 16000) as reader:
        reader.samples                  # the length at 16 kHz if the header can be trusted, else None
        y = reader.span(start, length)  # (<= length,) float32, only that part decoded (seek on the open handle)
        for block in reader.stream():   # the whole file, (samples,) float32 blocks at 16 kHz
            ...

Memory never depends on what a header claims: a length is trusted only when the decoder can seek and the
file's size can hold it (MAX_FRAMES_PER_BYTE), spans and blocks are read with explicit sizes, and a file of
unknown length is streamed in blocks of about a million frames. Stereo is mixed as 0.5 * (L + R) (column
sums: numpy's `.mean(axis=1)` over two columns costs more than decoding an MP3). Files soundfile cannot open
(m4a, opus, wma, ...) and those it cannot seek in (an MP3 whose header misstates its length) are streamed
through audioread (ffmpeg). Used by genre_cnn.inference.predict; no CLI.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from genre_cnn.audio.sniff import AudioError, quiet_stderr, shown, sniff, truncation

AUDIO_EXTENSIONS = (".wav", ".au", ".flac", ".ogg", ".mp3")  # what a dataset folder is searched for
SOUNDFILE_EXTENSIONS = (*AUDIO_EXTENSIONS, ".aiff", ".aif", ".aifc", ".caf", ".w64", ".rf64", ".oga", ".snd")
MIN_RATE, MAX_RATE = 4000, 384000  # Hz: a header outside this range is damage, not audio
BLOCK = 1 << 20  # source frames per block when a file is streamed
# No codec packs more frames into a byte (FLAC's constant blocks of silence come closest, about 4000 a byte);
# a header that claims more is wrong, and the file is then streamed as one of unknown length.
MAX_FRAMES_PER_BYTE = 8192
UNKNOWN_FRAMES = 1 << 62  # libsndfile's length of a stream that does not state it (2^63 - 1 for some MP3s)


def check_rate(path: Path, sr: int) -> None:
    if not MIN_RATE <= sr <= MAX_RATE:
        raise AudioError(f"{shown(path)}: implausible sample rate {sr} Hz in its header (expected "
                         f"{MIN_RATE}-{MAX_RATE} Hz): a damaged or mislabelled file")


def clean(y: np.ndarray) -> np.ndarray:
    """float32, NaN and inf replaced by 0, clipped to [-1, 1] (in place where it can)."""
    y = np.nan_to_num(y.astype(np.float32, copy=False), nan=0.0, posinf=0.0, neginf=0.0)
    return np.clip(y, -1.0, 1.0, out=y)


def mono(block: np.ndarray) -> np.ndarray:
    """(frames, channels) -> (frames,) float32, the channels' mean summed column by column."""
    out = block[:, 0].astype(np.float32)  # a contiguous copy
    for c in range(1, block.shape[1]):
        out += block[:, c]
    return out / np.float32(block.shape[1]) if block.shape[1] > 1 else out


def resample(y: np.ndarray, sr: int, sample_rate: int) -> np.ndarray:
    """(samples,) at `sr` -> float32 at `sample_rate` (soxr HQ, length ceil(samples * ratio), as librosa's
    `resample(res_type="soxr_hq")` that training used)."""
    if sr == sample_rate:
        return y
    import soxr

    out = soxr.resample(y, sr, sample_rate, quality="HQ").astype(np.float32)
    n = int(np.ceil(y.size * sample_rate / sr))
    return out[:n] if out.size >= n else np.pad(out, (0, n - out.size))


def reason(err: BaseException) -> str:
    """A decoder's message as one line, without library exception names."""
    text = getattr(err, "error_string", None) or (str(err).splitlines() or [""])[0]
    if "possibly a pipe" in text:  # libsndfile's words for a regular file whose contents it does not recognise
        return "damaged, or not in a format its decoder recognises"
    return text.strip().rstrip(".")[:200] or "the decoder gave up"


class AudioReader:
    """A file opened once for reading at `sample_rate` (mono float32). Raises AudioError (one line) for what
    cannot be audio (see `sniff`) and for an absurd rate. `samples` is the length at `sample_rate` when the
    header can be trusted (the file is then seekable and `span` works), else None; `rate` is the file's own
    (None until the fallback decoder has started); `frames_read` counts the source frames decoded so far."""

    def __init__(self, path: Path, sample_rate: int):
        import soundfile as sf

        self.path, self.sample_rate, self.frames_read = Path(path), sample_rate, 0
        self.kind = sniff(self.path)
        self.file, self.frames, self.rate, self.open_error = None, None, None, None
        try:
            with quiet_stderr(self.kind != "audio"):
                self.file = sf.SoundFile(os.fsencode(self.path))
        except OSError as err:  # e.g. permission denied: no decoder will do better
            raise AudioError(f"{shown(self.path)}: cannot be read ({err.strerror or err})") from None
        except Exception as err:  # noqa: BLE001 - not a soundfile format: streamed by the fallback decoder
            self.open_error = err
            return
        check_rate(self.path, self.file.samplerate)
        self.rate = self.file.samplerate
        held = truncation(self.path) if self.kind == "audio" else None
        if held is not None:
            self.close()
            raise AudioError(f"{shown(self.path)}: truncated: the file holds {100 * held:.0f}% of the audio its "
                             "header declares (a download or copy cut short)")
        size = os.stat(self.path).st_size
        if not self.file.seekable():  # e.g. an MP3 whose header misstates its length: libsndfile reads nothing
            self.file.close()
            self.file, self.rate = None, None
            self.open_error = AudioError("damaged header (its length cannot be read)")
        elif 0 <= self.file.frames < min(UNKNOWN_FRAMES, MAX_FRAMES_PER_BYTE * size + 1):
            self.frames = self.file.frames

    def __enter__(self) -> AudioReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None

    @property
    def samples(self) -> int | None:
        """Length at `sample_rate` (ceil, as `decode.resample` makes it), or None when unknown."""
        if self.frames is None:
            return None
        return int(np.ceil(self.frames * self.sample_rate / self.rate))

    @property
    def seconds(self) -> float | None:
        return None if self.frames is None else self.frames / self.rate

    def span(self, start: int, length: int) -> np.ndarray:
        """Samples [start, start + length) at `sample_rate`, (<= length,) float32: shorter where the file ends
        first. Only that span (and a resampler margin of 0.1 s) is decoded, through the one open handle."""
        if self.frames is None:
            raise ValueError("span() needs a file of known length (see `samples`)")
        sr, f = self.rate, self.file
        ratio = Fraction(self.sample_rate, sr)
        q = ratio.denominator  # source offsets that are multiples of q land on whole target samples
        margin = 0 if sr == self.sample_rate else sr // 10
        first = min(max(0, (int(start / ratio) - margin) // q * q), self.frames)  # source frame
        need = min(int((start + length) / ratio) + 1 + margin, self.frames) - first
        try:
            with quiet_stderr(self.kind != "audio"):
                f.seek(first)
                block = f.read(max(0, need), dtype="float32", always_2d=True)  # (frames, channels)
        except Exception as err:  # noqa: BLE001 - a decoder failure half-way: not usable
            raise AudioError(f"{shown(self.path)}: unreadable audio ({reason(err)})") from None
        self.frames_read += len(block)
        y = resample(clean(mono(block)), sr, self.sample_rate)
        offset = start - int(first * ratio)
        return y[offset:offset + length]

    def stream(self) -> Iterator[np.ndarray]:
        """The whole file from its start, as (samples,) float32 blocks at `sample_rate` (soxr HQ, streamed), at
        most about BLOCK source frames each. Raises AudioError if the decoder fails."""
        stream = None
        for block, sr in self.source_blocks():  # (frames,) at the file's rate
            if sr != self.sample_rate:
                import soxr

                stream = stream or soxr.ResampleStream(sr, self.sample_rate, 1, dtype="float32", quality="HQ")
                block = stream.resample_chunk(block)
            yield block
        if stream is not None:
            yield stream.resample_chunk(np.zeros(0, np.float32), last=True)

    def source_blocks(self) -> Iterator[tuple[np.ndarray, int]]:
        """The whole file from its start at its own rate: (mono float32 block, rate) pairs, NaN/inf zeroed, clipped."""
        if self.file is not None:
            f = self.file
            # a length the header misstates: small blocks, as a read that runs past the real end is lost
            blocksize = max(1024, (BLOCK if self.frames is not None else BLOCK // 16) // f.channels)
            read = 0
            while True:
                try:
                    with quiet_stderr(self.kind != "audio"):
                        if not read:
                            f.seek(0)
                        block = f.read(blocksize, dtype="float32", always_2d=True)  # (frames, channels)
                except Exception as err:  # noqa: BLE001 - a decoder failure half-way
                    if self.frames is not None:
                        raise AudioError(f"{shown(self.path)}: unreadable audio ({reason(err)})") from None
                    if read:  # a header that misstates the length: this is its end
                        return
                    self.close()  # nothing read at all: the fallback decoder may do better
                    self.open_error = err
                    break
                if not len(block):
                    return
                read += len(block)
                self.frames_read += len(block)
                yield clean(mono(block)), f.samplerate
        yield from self._fallback_blocks()

    def _fallback_blocks(self) -> Iterator[tuple[np.ndarray, int]]:
        """audioread (ffmpeg, GStreamer or Core Audio): 16-bit PCM, interleaved, in the decoder's own buffers."""
        import audioread

        try:
            decoder = audioread.audio_open(str(self.path))
        except Exception as err:  # noqa: BLE001 - the fallback decoder failed too: say why in one line
            raise self._fallback_error(err) from None
        with decoder:
            sr, channels = decoder.samplerate, max(1, decoder.channels)
            check_rate(self.path, sr)
            self.rate = sr
            rest = b""
            try:
                for buf in decoder:  # a buffer may end inside a frame
                    buf = rest + buf
                    cut = len(buf) // (2 * channels) * 2 * channels
                    rest = buf[cut:]
                    pcm = np.frombuffer(buf[:cut], dtype="<i2").reshape(-1, channels)  # (frames, channels)
                    self.frames_read += len(pcm)
                    yield clean(mono(pcm) / np.float32(32768.0)), sr
            except Exception as err:  # noqa: BLE001 - a decoder failure half-way: not usable
                raise AudioError(f"{shown(self.path)}: unreadable audio ({reason(err)})") from None

    def _fallback_error(self, err: BaseException) -> AudioError:
        import audioread

        path = self.path
        if self.kind == "unknown":
            return AudioError(f"{shown(path)}: unknown format: not an audio file, or a damaged one (it starts like "
                              "no format the decoders know)")
        if isinstance(err, audioread.NoBackendError) and path.suffix.lower() not in SOUNDFILE_EXTENSIONS:
            return AudioError(f"{shown(path)}: cannot decode {path.suffix} files: no decoder installed (install "
                              "ffmpeg, e.g. `apt-get install ffmpeg` or `brew install ffmpeg`)")
        if isinstance(self.open_error, AudioError):  # soundfile opened it but cannot seek or read it
            return AudioError(f"{shown(path)}: {self.open_error}, and no other decoder to read it (install ffmpeg)")
        if self.open_error is not None and (path.suffix.lower() in SOUNDFILE_EXTENSIONS or not path.suffix):
            err = self.open_error
        return AudioError(f"{shown(path)}: unreadable audio ({reason(err)})")
