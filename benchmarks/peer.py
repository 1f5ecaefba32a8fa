"""The plain peer: librosa features computed the usual way, one call per feature on the waveform.

Used by `cache_speed.py` (as the sequential baseline to beat) and `accuracy.py` (with an RBF SVM).
Features: 20 MFCCs, 12 chroma, spectral centroid, bandwidth, roll-off, flatness, contrast (7), zero-crossing
rate and RMS, as mean and standard deviation over time, plus tempo: 87 values.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def load(path: Path, sr: int = 22050, seconds: float = 30.0) -> np.ndarray:
    """The waveform as tutorials read it: librosa.load, mono, resampled, the first `seconds`."""
    import librosa

    return librosa.load(path, sr=sr, duration=seconds)[0]


def librosa_features(y: np.ndarray, sr: int = 22050) -> np.ndarray:
    """The peer's (87,) vector of one waveform."""
    import librosa

    frames = np.concatenate([
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=20),
        librosa.feature.chroma_stft(y=y, sr=sr),
        librosa.feature.spectral_centroid(y=y, sr=sr),
        librosa.feature.spectral_bandwidth(y=y, sr=sr),
        librosa.feature.spectral_rolloff(y=y, sr=sr),
        librosa.feature.spectral_flatness(y=y),
        librosa.feature.spectral_contrast(y=y, sr=sr),
        librosa.feature.zero_crossing_rate(y),
        librosa.feature.rms(y=y),
    ])  # (43, frames)
    tempo = librosa.feature.tempo(y=y, sr=sr)
    return np.concatenate([frames.mean(1), frames.std(1), tempo[:1]]).astype(np.float32)


def rbf_svm():
    """The peer classifier: standardisation + RBF SVM with scikit-learn's usual settings (C=10)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(C=10.0, gamma="scale"))
