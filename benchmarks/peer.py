"""The plain peer: librosa features computed the usual way, one call per feature on the waveform.

    .venv/bin/python benchmarks/peer.py FILE     # prints the length of one file's vector

Used by `cache_speed.py` (as the sequential baseline to beat) and `accuracy.py` (with an RBF SVM).
Frame features (`ROWS` of them): 20 MFCCs, 12 chroma, spectral centroid, bandwidth, roll-off, flatness,
contrast (6 bands + 1), zero-crossing rate and RMS; the vector is their mean and standard deviation over
time, plus tempo: `VALUES` = 2 * `ROWS` + 1 numbers.

Chroma: by default librosa estimates each clip's tuning (`tuning=None`), as tutorials leave it and as
`accuracy.py`'s peer runs; genre_cnn's chroma does not (tuning 0). `cache_speed.py` passes `tuning=0.0`,
so that both sides compute the same chroma (and the peer skips the estimation's cost).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

N_MFCC, N_CHROMA, N_BANDS = 20, 12, 6
ROWS = N_MFCC + N_CHROMA + 4 + (N_BANDS + 1) + 2  # MFCC, chroma, 4 spectral shape, contrast, ZCR and RMS
VALUES = 2 * ROWS + 1  # mean and std of each row, then tempo


def load(path: Path, sr: int = 22050, seconds: float = 30.0) -> np.ndarray:
    """The waveform as tutorials read it: librosa.load, mono, resampled, the first `seconds`."""
    import librosa

    return librosa.load(path, sr=sr, duration=seconds)[0]


def librosa_features(y: np.ndarray, sr: int = 22050, tuning: float | None = None) -> np.ndarray:
    """The peer's (VALUES,) vector of one waveform; `tuning` goes to chroma_stft (None: estimated per clip)."""
    import librosa

    frames = np.concatenate([
        librosa.feature.mfcc(y=y, sr=sr, n_mfcc=N_MFCC),
        librosa.feature.chroma_stft(y=y, sr=sr, n_chroma=N_CHROMA, tuning=tuning),
        librosa.feature.spectral_centroid(y=y, sr=sr),
        librosa.feature.spectral_bandwidth(y=y, sr=sr),
        librosa.feature.spectral_rolloff(y=y, sr=sr),
        librosa.feature.spectral_flatness(y=y),
        librosa.feature.spectral_contrast(y=y, sr=sr, n_bands=N_BANDS),
        librosa.feature.zero_crossing_rate(y),
        librosa.feature.rms(y=y),
    ])  # (ROWS, frames)
    assert frames.shape[0] == ROWS, frames.shape
    tempo = librosa.feature.tempo(y=y, sr=sr)
    return np.concatenate([frames.mean(1), frames.std(1), tempo[:1]]).astype(np.float32)  # (VALUES,)


def rbf_svm():
    """The peer classifier: standardisation + RBF SVM with scikit-learn's usual settings (C=10)."""
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), SVC(C=10.0, gamma="scale"))


if __name__ == "__main__":
    import sys

    if len(sys.argv) != 2:
        raise SystemExit(__doc__)
    vec = librosa_features(load(Path(sys.argv[1])))
    print(f"{sys.argv[1]}: {ROWS} frame features -> {vec.shape[0]} values (2 * {ROWS} + 1 = {VALUES})")
