"""The dense baseline's hand-crafted vector, and what the feature cache stores for each clip.

    python -m genre_cnn.audio.features FILE      # prints the shapes and ranges of both feature sets for one file

`handcrafted` computes the vector from the front end's power spectrogram and features of the same clip
(spectral shape, ZCR and RMS in numpy, checked against librosa in tests/test_features.py).
`SpectralFeatures` is what the cache computes per clip for the CNN and dense families: the front end's
(channels, frames) tensor and the hand-crafted vector.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from genre_cnn.audio.frontend import AMIN, N_CHROMA, FrontEnd, FrontEndConfig

# frame features of the hand-crafted vector: 4 spectral shape + ZCR + RMS + 7 contrast + 20 MFCC + 12 chroma
FRAME_FEATURES = 4 + 1 + 1 + 7 + 20 + N_CHROMA
HANDCRAFTED_SIZE = 2 * FRAME_FEATURES + 1  # mean and variance of each, plus tempo: 91


def spectral_shape(mag: np.ndarray, power: np.ndarray, sample_rate: int) -> np.ndarray:
    """Spectral centroid and bandwidth (Hz), 85% roll-off (Hz) and flatness of each frame: (4, T).

    The same definitions as librosa.feature.spectral_* (checked in tests), in plain numpy: faster, and
    no JIT compilation at the start of every worker process.
    """
    freqs = np.linspace(0, sample_rate / 2, mag.shape[0])[:, None]  # (bins, 1)
    total = mag.sum(0).clip(min=np.finfo(mag.dtype).tiny)  # (T,)
    centroid = (freqs * mag).sum(0) / total
    bandwidth = np.sqrt((mag * (freqs - centroid) ** 2).sum(0) / total)
    rolloff = freqs[np.argmax(np.cumsum(mag, axis=0) >= 0.85 * mag.sum(0), axis=0), 0]  # (T,)
    floored = np.maximum(power, AMIN)  # (bins, T)
    flatness = np.exp(np.log(floored).mean(0)) / floored.mean(0)  # (T,)
    return np.stack([centroid, bandwidth, rolloff, flatness])


def zero_crossing_rate(y: np.ndarray, frame_length: int, hop_length: int, frames: int) -> np.ndarray:
    """Fraction of sign changes in each centred frame, as librosa.feature.zero_crossing_rate: (1, frames)."""
    crossings = np.abs(np.diff(np.signbit(y).astype(np.int8), prepend=np.int8(np.signbit(y[0]))))  # (samples,)
    padded = np.pad(crossings, frame_length // 2)  # centred frames; padding adds no crossings
    cumsum = np.concatenate([[0], np.cumsum(padded)])
    starts = np.arange(frames) * hop_length
    ends = np.minimum(starts + frame_length, len(padded))
    return ((cumsum[ends] - cumsum[starts]) / frame_length)[None]


def handcrafted(y: np.ndarray, power: np.ndarray, feats: np.ndarray, sample_rate: int, hop_length: int) -> np.ndarray:
    """The dense baseline's vector: mean and variance over time of 33 frame features, plus tempo.

    Frame features: spectral centroid, bandwidth, roll-off, flatness, zero-crossing rate, RMS, 7 spectral
    contrast bands, 20 MFCCs (from the log-mel) and 12 chroma (the write-up's centroid, ZCR, MFCC and
    chroma, plus what else helps). Inputs: y (samples,), power (bins, frames) and the front end's
    features (n_mels + 12, frames) of the same clip.
    Returns float32 (HANDCRAFTED_SIZE,) = (91,).
    """
    import librosa

    mag = np.sqrt(power)
    n_fft = 2 * (power.shape[0] - 1)
    mel_db, chroma = feats[:-N_CHROMA], feats[-N_CHROMA:]
    frames = [
        spectral_shape(mag, power, sample_rate),  # (4, T): centroid, bandwidth, roll-off, flatness
        zero_crossing_rate(y, n_fft, hop_length, mag.shape[1]),  # (1, T)
        np.sqrt(2 * power[1:-1].sum(0, keepdims=True) + power[[0, -1]].sum(0, keepdims=True)) / n_fft,  # RMS
        librosa.feature.spectral_contrast(S=mag, sr=sample_rate, n_fft=n_fft),  # (7, T)
        librosa.feature.mfcc(S=mel_db, n_mfcc=20),  # (20, T)
        chroma,  # (12, T)
    ]
    t = min(f.shape[1] for f in frames)
    stacked = np.concatenate([f[:, :t] for f in frames], axis=0)  # (45, T)
    onset = librosa.onset.onset_strength(S=mel_db, sr=sample_rate, hop_length=hop_length)
    tempo = librosa.feature.tempo(onset_envelope=onset, sr=sample_rate, hop_length=hop_length)  # (1,)
    vec = np.concatenate([stacked.mean(axis=1), stacked.var(axis=1), tempo[:1]])
    return np.nan_to_num(vec).astype(np.float32)


@dataclass(frozen=True)
class SpectralFeatures:
    """The cache's extractor for the CNN and dense families: one clip (samples,) -> {"spec": (channels, frames)
    float16, "hand": (HANDCRAFTED_SIZE,) float32}. Picklable, so worker processes can run it."""

    frontend: FrontEndConfig = FrontEndConfig()

    def __post_init__(self):
        if not self.frontend.chroma or self.frontend.compression != "db":
            raise ValueError("the hand-crafted vector needs the dB log-mel + chroma front end")

    @property
    def sample_rate(self) -> int:
        return self.frontend.sample_rate

    def settings(self) -> dict:
        return {"kind": "spectral", **self.frontend.as_dict()}

    def build(self) -> FrontEnd:
        return FrontEnd(self.frontend)

    def __call__(self, y: np.ndarray, frontend: FrontEnd) -> dict[str, np.ndarray]:
        spec, hand = extract(y, frontend)
        return {"spec": spec.astype(np.float16), "hand": hand}


def extract(y: np.ndarray, frontend: FrontEnd) -> tuple[np.ndarray, np.ndarray]:
    """One clip (samples,) -> (front-end features (channels, frames) float32, hand-crafted vector (91,) float32)."""
    with torch.no_grad():
        wav = torch.from_numpy(y)[None].to(frontend.hann.device)  # (1, samples)
        power = frontend.power(wav)  # (1, bins, frames)
        feats = frontend.from_power(power)[0].cpu().numpy()  # (channels, frames)
    c = frontend.config
    return feats, handcrafted(y, power[0].cpu().numpy(), feats, c.sample_rate, c.hop_length)


def main() -> None:
    import argparse
    from pathlib import Path

    from genre_cnn.audio.decode import load_audio

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", type=Path)
    args = parser.parse_args()
    frontend = FrontEnd()
    y = load_audio(args.file, frontend.config.sample_rate)
    feats, hand = extract(y, frontend)
    print(f"log-mel + chroma {feats.shape}: dB {feats[:-N_CHROMA].min():.1f}..{feats[:-N_CHROMA].max():.1f}")
    print(f"hand-crafted {hand.shape}: {np.array2string(hand[:6], precision=3)} ...")


if __name__ == "__main__":
    main()
