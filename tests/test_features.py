"""The torch front end agrees with librosa on real GTZAN clips, and the hand-crafted vector is sane."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from genre_cnn.audio.decode import load_audio
from genre_cnn.audio.features import extract
from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig
from tests.conftest import GTZAN_MINI, needs_gtzan_mini

MEL_TOL_DB = 0.05  # max |difference| of log-mel in dB, wherever the mel power is above -100 dB
CHROMA_TOL = 1e-4  # max |difference| of chroma (each frame normalised to a maximum of 1)


@needs_gtzan_mini
@pytest.mark.parametrize("clip", ["blues/blues.00000.wav", "classical/classical.00001.wav", "metal/metal.00002.wav"])
def test_front_end_matches_librosa_on_real_clips(clip):
    import librosa

    y = load_audio(GTZAN_MINI / "genres" / clip, 22050)
    feats = FrontEnd()(torch.from_numpy(y)[None])[0].numpy()  # (140, T)
    mel = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=2048, hop_length=512, n_mels=128)
    mel_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    chroma = librosa.feature.chroma_stft(y=y, sr=22050, n_fft=2048, hop_length=512, tuning=0.0)
    assert feats.shape == (140, mel.shape[1]) == (140, FrontEndConfig().frames(len(y)))
    audible = mel > 1e-10
    assert audible.mean() > 0.9
    assert np.abs(feats[:128] - mel_db)[audible].max() < MEL_TOL_DB
    assert np.abs(feats[128:] - chroma).max() < CHROMA_TOL


def test_front_end_matches_librosa_on_a_synthetic_signal():
    """The same check as on real clips, on a chirp with noise: runs even without ../shared."""
    import librosa

    sr = 22050
    t = np.arange(4 * sr) / sr
    y = (0.3 * np.sin(2 * np.pi * (110 + 400 * t) * t) + 0.01 * np.random.default_rng(0).standard_normal(t.size))
    y = y.astype(np.float32)
    feats = FrontEnd()(torch.from_numpy(y)[None])[0].numpy()  # (140, T)
    mel = librosa.feature.melspectrogram(y=y, sr=sr, n_fft=2048, hop_length=512, n_mels=128)
    audible = mel > 1e-10
    mel_db = librosa.power_to_db(mel, ref=1.0, amin=1e-10, top_db=None)
    assert np.abs(feats[:128] - mel_db)[audible].max() < MEL_TOL_DB
    chroma = librosa.feature.chroma_stft(y=y, sr=sr, n_fft=2048, hop_length=512, tuning=0.0)
    assert np.abs(feats[128:] - chroma).max() < CHROMA_TOL


def test_front_end_is_batched_and_silence_safe():
    rng = np.random.default_rng(0)
    y = torch.from_numpy(rng.standard_normal((3, 22050)).astype(np.float32) * 0.1)
    y[2] = 0.0  # a silent row must not produce NaN chroma
    out = FrontEnd()(y)
    assert out.shape == (3, 140, FrontEndConfig().frames(22050))
    assert torch.isfinite(out).all()
    assert torch.allclose(out[0], FrontEnd()(y[:1])[0], atol=1e-4)
    assert out[2, :128].max() == pytest.approx(-100.0)  # the -100 dB floor


def test_handcrafted_vector_tells_tone_from_noise():
    sr = 22050
    t = np.arange(5 * sr) / sr
    tone = (0.5 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    noise = np.random.default_rng(0).uniform(-0.5, 0.5, t.size).astype(np.float32)
    fe = FrontEnd()
    (_, h_tone), (_, h_noise) = extract(tone, fe), extract(noise, fe)
    assert h_tone.shape == h_noise.shape == (91,)
    assert np.isfinite(h_tone).all() and np.isfinite(h_noise).all()
    centroid, zcr = 0, 4  # first entries of the means
    assert h_noise[centroid] > 5 * h_tone[centroid]
    assert h_noise[zcr] > 10 * h_tone[zcr]


# Frame features: ours and librosa's, both from the float32 power spectrogram that extract() (and so the
# cache) computes. Float32 rounding then bounds the agreement:
SHAPE_RTOL = 1e-5  # centroid, bandwidth, flatness, RMS: relative (seen: <= 2e-6)
ROLLOFF_FRAMES = 0.01  # roll-off: within one FFT bin (sr / n_fft = 10.8 Hz) everywhere, and exactly equal in all
#                        but 1% of frames (cumulative sums in float32 round differently; seen: 1 frame of 1293)


@needs_gtzan_mini
@pytest.mark.parametrize("clip", ["rock/rock.00004.wav", "classical/classical.00001.wav"])
def test_numpy_spectral_features_match_librosa(clip):
    import librosa

    from genre_cnn.audio.features import spectral_shape, zero_crossing_rate

    sr, n_fft = 22050, 2048
    y = load_audio(GTZAN_MINI / "genres" / clip, 22050)
    power = FrontEnd().power(torch.from_numpy(y)[None])[0].numpy()  # (1025, T) float32, as in extract()
    assert power.dtype == np.float32
    mag = np.sqrt(power)
    ours = spectral_shape(mag, power, sr)  # (4, T)
    theirs = np.concatenate([
        librosa.feature.spectral_centroid(S=mag, sr=sr), librosa.feature.spectral_bandwidth(S=mag, sr=sr),
        librosa.feature.spectral_rolloff(S=mag, sr=sr), librosa.feature.spectral_flatness(S=mag)])
    for row in (0, 1, 3):
        np.testing.assert_allclose(ours[row], theirs[row], rtol=SHAPE_RTOL)
    off = np.abs(ours[2] - theirs[2])
    assert off.max() <= sr / n_fft + 1e-3 and (off > 0).mean() <= ROLLOFF_FRAMES
    zcr = zero_crossing_rate(y, n_fft, 512, power.shape[1])
    np.testing.assert_allclose(zcr, librosa.feature.zero_crossing_rate(y, frame_length=n_fft, hop_length=512),
                               atol=1 / n_fft)  # one crossing at most, at the padded edges


@needs_gtzan_mini
def test_handcrafted_vector_matches_librosa_frame_features():
    """The cached vector itself: mean and variance of spectral shape and RMS, as extract() computes them.

    RMS is librosa.feature.rms(S=magnitude, frame_length=n_fft): the Hann-windowed frame's energy by
    Parseval, sqrt(2 * sum(|X_k|^2 for 0 < k < n_fft/2) + |X_0|^2 + |X_n_fft/2|^2) / n_fft."""
    import librosa

    sr, n_fft = 22050, 2048
    y = load_audio(GTZAN_MINI / "genres" / "rock" / "rock.00004.wav", 22050)
    _, hand = extract(y, FrontEnd())  # (91,)
    mag = np.sqrt(FrontEnd().power(torch.from_numpy(y)[None])[0].numpy())  # (1025, T) float32
    frames = np.concatenate([  # rows 0, 1, 3 and 5 of the 45 frame features (roll-off, 2, is checked per frame
        # above: one bin off in one frame moves its variance by more than float32 rounding)
        librosa.feature.spectral_centroid(S=mag, sr=sr), librosa.feature.spectral_bandwidth(S=mag, sr=sr),
        librosa.feature.spectral_flatness(S=mag), librosa.feature.rms(S=mag, frame_length=n_fft)])  # (4, T)
    rows = [0, 1, 3, 5]
    np.testing.assert_allclose(hand[rows], frames.mean(1), rtol=SHAPE_RTOL)  # means
    np.testing.assert_allclose(hand[[45 + r for r in rows]], frames.var(1), rtol=SHAPE_RTOL)  # variances
