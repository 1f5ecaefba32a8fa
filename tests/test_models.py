"""The CNN's invariances, each checked on the code itself: band-mean removal cancels a static EQ, the 2-D stem
shares its filters along frequency, and the pitch-shift augmentation moves a tone where the front end puts
the same tone played higher or lower.

    .venv/bin/python -m pytest tests/test_models.py -q
"""

from __future__ import annotations

import math

import pytest
import torch

from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig
from genre_cnn.errors import SettingsError
from genre_cnn.models import families
from genre_cnn.models.networks import GenreCNN
from genre_cnn.training.augment import shift_pitch
from genre_cnn.training.lit import check_settings

N_MELS = FrontEndConfig().n_mels


def windows(batch: int = 4, frames: int = 130) -> torch.Tensor:
    """Log-mel-like dB values and chroma in [0, 1]: (batch, 140, frames)."""
    torch.manual_seed(0)
    x = torch.randn(batch, N_MELS + 12, frames) * 10 - 40
    x[:, N_MELS:] = torch.rand(batch, 12, frames)
    return x


@pytest.mark.parametrize("stem", [0, 8])
def test_band_mean_removal_cancels_a_static_eq(stem):
    net = GenreCNN(N_MELS + 12, 10, band_norm="mean", n_mels=N_MELS, stem=stem).eval()
    x = windows()
    eq = torch.zeros_like(x)
    eq[:, :N_MELS] = torch.randn(1, N_MELS, 1) * 6  # a different gain (dB) for every band, constant in time
    assert torch.allclose(net(x + eq), net(x), atol=1e-4)
    # without band-mean removal the same EQ moves the output (the test can see a difference)
    plain = GenreCNN(N_MELS + 12, 10, band_norm="none", n_mels=N_MELS, stem=stem).eval()
    assert not torch.allclose(plain(x + eq), plain(x), atol=1e-2)


def test_the_stem_shares_its_filters_along_frequency():
    net = GenreCNN(N_MELS + 12, 10, n_mels=N_MELS, stem=4).eval()
    x = windows(2)[:, None, :N_MELS]  # (B, 1, n_mels, T)
    moved = x.roll(8, dims=2)  # everything 8 bands (two pooled rows) higher
    out, out_moved = net.stem(x), net.stem(moved)  # (B, 4, n_mels / 4, T)
    # away from the edges, the moved input gives the same output two pooled rows higher
    assert torch.allclose(out_moved[:, :, 4:-2], out[:, :, 2:-4], atol=1e-5)
    assert out.shape == (2, 4, N_MELS // 4, x.shape[-1])


@pytest.mark.parametrize("n_mels", [30, 128, 130])
def test_the_cnn_with_a_stem_takes_any_number_of_bands(n_mels):
    net = GenreCNN(n_mels + 12, 10, band_norm="mean", n_mels=n_mels, stem=8).eval()
    assert net(torch.randn(3, n_mels + 12, 64)).shape == (3, 10)


@pytest.mark.parametrize("base", [440.0, 3000.0])  # where the mel scale is nearly linear in Hz, and where it is not
def test_pitch_shift_moves_a_tone_where_the_front_end_puts_the_shifted_tone(base):
    frontend = FrontEnd()
    t = torch.arange(2 * 22050) / 22050

    def feats(hz: float) -> torch.Tensor:
        return frontend(torch.sin(2 * math.pi * hz * t)[None])  # (1, 140, T)

    shifts = torch.tensor([7.0, -5.0, 12.0])  # one batch, each example its own shift
    shifted = shift_pitch(feats(base).expand(3, -1, -1), shifts, frontend.config)  # (3, 140, T)
    peak = lambda f: f[:N_MELS].mean(-1).argmax().item()  # noqa: E731  the loudest mel band of (140, T)
    pitch_class = lambda f: f[N_MELS:].mean(-1).argmax().item()  # noqa: E731
    for row, s in zip(shifted, shifts.tolist()):
        target = feats(base * 2 ** (s / 12))[0]
        assert peak(row) == peak(target) != peak(feats(base)[0])
        assert pitch_class(row) == pitch_class(target)
    same = feats(base)
    assert torch.equal(shift_pitch(same, torch.zeros(1), frontend.config), same)  # no shift, no change
    assert shift_pitch(same.half(), shifts[:1], frontend.config).dtype == torch.float16


@pytest.mark.parametrize(("option", "value"), [("stem", -1), ("pitch_shift", 13.0)])
def test_an_out_of_range_cnn_setting_names_its_option(option, value):
    with pytest.raises(SettingsError, match=f"--cnn.{option}"):
        check_settings(families.get("cnn"), {option: value})
