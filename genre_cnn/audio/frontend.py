"""What a model hears: the front-end settings (one dataclass), the front end itself, and the windowing rule.

    from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig
    feats = FrontEnd(FrontEndConfig(n_mels=64))(waveform)    # (B, samples) -> (B, 64 + 12, frames)

`FrontEndConfig` is the one place the spectrogram settings are written; the front end, the feature cache
key, the DataModule and the classifiers all take it. `FrontEnd` is an `nn.Module` (torch.stft and
librosa's filterbanks as non-persistent buffers), so it runs on CPU or GPU and travels inside every model.
`track_windows` is the one windowing rule of evaluation, prediction and ONNX export.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch
from torch import nn

from genre_cnn.bounds import FRONTEND, out_of
from genre_cnn.errors import SettingsError

N_CHROMA = 12
AMIN = 1e-10  # power floor before the dB log: -100 dB


@dataclass(frozen=True)
class FrontEndConfig:
    """Spectrogram settings. Units: Hz, samples, mel bands.

    Args:
        sample_rate: every file is resampled to this rate first.
        n_fft: FFT size (Hann window of the same length, centred frames, zero padding).
        hop_length: samples between frames.
        n_mels: Slaney mel bands of the power spectrogram.
        chroma: append 12 chroma bins (librosa's chroma_stft with tuning 0) after the mel bands.
        compression: "db" (10 log10(max(S, 1e-10)), as librosa.power_to_db) or "log10_1e4"
            (log10(10000 S + 1), the compression of musicnn, Pons & Serra 2019).

    The defaults are genre_cnn's own front end (128 log-mel bands in dB + 12 chroma at 22050 Hz); the
    pretrained musicnn model's is `FrontEndConfig(16000, 512, 256, 96, chroma=False, compression="log10_1e4")`.
    """

    sample_rate: int = 22050
    n_fft: int = 2048
    hop_length: int = 512
    n_mels: int = 128
    chroma: bool = True
    compression: Literal["db", "log10_1e4"] = "db"

    def __post_init__(self) -> None:
        """Sane ranges (genre_cnn.bounds), checked before any work, here only: training and loading a checkpoint
        both build this (an n_fft of 10**6 would exhaust a cache worker's memory). SettingsError naming the option."""
        for key, (low, high) in FRONTEND.items():
            if why := out_of(getattr(self, key), low, high):
                raise SettingsError(f"--frontend.{key} {why}")
        if self.hop_length > self.n_fft:
            raise SettingsError(f"--frontend.hop_length must be <= n_fft ({self.n_fft}), got {self.hop_length}")
        if self.n_mels > self.n_fft // 2 + 1:
            raise SettingsError(f"--frontend.n_mels must be <= the FFT's {self.n_fft // 2 + 1} bins, got {self.n_mels}")
        if self.compression not in ("db", "log10_1e4") or not isinstance(self.chroma, bool):
            raise SettingsError(f"--frontend.compression must be db or log10_1e4 and --frontend.chroma a boolean, got "
                                f"{self.compression!r:.20}, {self.chroma!r:.20}")

    @classmethod
    def of(cls, value: FrontEndConfig | dict | None) -> FrontEndConfig:
        """A config from itself, a dict (as saved in a checkpoint's hyperparameters) or None (the defaults)."""
        if isinstance(value, cls):
            return value
        return cls(**(value or {}))

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def channels(self) -> int:
        """Rows of the front end's output: mel bands, then chroma bins."""
        return self.n_mels + N_CHROMA * self.chroma

    def frames(self, samples: int) -> int:
        """Frames of a centred STFT over `samples` samples."""
        return 1 + samples // self.hop_length

    def window_frames(self, seconds: float) -> int:
        """Frames of one model input window of `seconds`."""
        return self.frames(int(seconds * self.sample_rate))


def track_windows(feats: torch.Tensor, frames: int) -> torch.Tensor:
    """Half-overlapping windows over a whole track: (C, T) -> (K, C, frames), K = 1 + (T' - frames) // hop.

    The one windowing rule of evaluation, prediction and export. A track shorter than one window is looped
    to reach it (T' >= frames); a longer one is not changed (T' = T). Written without shape-dependent
    Python branches, so that it exports to ONNX with a dynamic length."""
    t = feats.shape[-1]
    feats = feats.repeat(1, (frames + t - 1) // t)  # (C, T'): loops a short track
    hop = max(1, frames // 2)
    k = (feats.shape[-1] - frames) // hop + 1
    index = torch.arange(k, device=feats.device)[:, None] * hop + torch.arange(frames, device=feats.device)  # (K, W)
    return feats[:, index].transpose(0, 1)  # (C, K, W) -> (K, C, W)


class FrontEnd(nn.Module):
    """Waveform (B, samples) -> features (B, channels, frames), as described by a `FrontEndConfig`.

    With the defaults it matches `librosa.power_to_db(librosa.feature.melspectrogram(y), ref=1.0,
    amin=1e-10, top_db=None)` and `librosa.feature.chroma_stft(y, tuning=0)` (chroma normalised to a
    maximum of 1 per frame; tests/test_features.py checks both). Tuning estimation is left out: it is slow,
    per-file and not differentiable, and GTZAN is tuned near A440.
    """

    def __init__(self, config: FrontEndConfig | dict | None = None):
        super().__init__()
        import librosa

        self.config = c = FrontEndConfig.of(config)
        mel = librosa.filters.mel(sr=c.sample_rate, n_fft=c.n_fft, n_mels=c.n_mels)  # (n_mels, n_fft//2+1)
        self.register_buffer("hann", torch.hann_window(c.n_fft), persistent=False)
        self.register_buffer("mel_fb", torch.from_numpy(mel).float(), persistent=False)
        if c.chroma:
            chroma = librosa.filters.chroma(sr=c.sample_rate, n_fft=c.n_fft, n_chroma=N_CHROMA, tuning=0.0)
            self.register_buffer("chroma_fb", torch.from_numpy(chroma).float(), persistent=False)  # (12, bins)

    def power(self, y: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> power spectrogram (B, n_fft//2+1, frames)."""
        c = self.config
        spec = torch.stft(y.float(), c.n_fft, c.hop_length, window=self.hann, center=True,
                          pad_mode="constant", return_complex=True)  # (B, bins, frames)
        return spec.real.square() + spec.imag.square()

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.from_power(self.power(y))

    def from_power(self, power: torch.Tensor) -> torch.Tensor:
        """Power spectrogram (B, bins, frames) -> features (B, channels, frames)."""
        mel = torch.matmul(self.mel_fb, power)  # (B, n_mels, frames)
        if self.config.compression == "db":
            mel = 10.0 * torch.log10(mel.clamp_min(AMIN))
        else:
            mel = torch.log10(10000.0 * mel + 1.0)
        if not self.config.chroma:
            return mel
        chroma = torch.matmul(self.chroma_fb, power)  # (B, 12, frames)
        chroma = chroma / chroma.amax(dim=1, keepdim=True).clamp_min(torch.finfo(chroma.dtype).tiny)
        return torch.cat([mel, chroma], dim=1)  # (B, n_mels + 12, frames)

