"""Training-time augmentation, one part per kind of model input, handed to the LightningModule that trains a family.

    from genre_cnn.training.augment import WindowAugment
    x, target = WindowAugment(frontend)(x, y, n_classes)    # windows (B, C, W), labels (B,): the same, or soft targets

`WindowAugment` is for models trained on windows of the front end's log-mel + chroma (the CNN): a random pitch shift,
a random gain, SpecAugment masks and mixup. `VectorAugment` is for models trained on one vector per clip (the dense
baseline, the musicnn heads): mixup only. `for_inputs` picks one by a classifier's `inputs`; their settings are the
`--<family>.*` options train.py adds beside the classifier's (ranges: genre_cnn.bounds.TRAINING).
"""

from __future__ import annotations

import functools
from typing import ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from genre_cnn.audio.frontend import FrontEndConfig


def mixup(x: torch.Tensor, y: torch.Tensor, n_classes: int, alpha: float) -> tuple[torch.Tensor, torch.Tensor]:
    """mixup (Zhang et al. 2018): each example blended with another of the batch, weight ~ Beta(alpha, alpha).
    x (B, ...), labels y (B,) -> x (B, ...) and soft targets (B, n); alpha <= 0 leaves x and the labels as they are."""
    if alpha <= 0:
        return x, y
    target = F.one_hot(y, n_classes).float()  # (B, n)
    lam = float(np.random.beta(alpha, alpha))
    perm = torch.randperm(len(x), device=x.device)
    return lam * x + (1 - lam) * x[perm], lam * target + (1 - lam) * target[perm]


@functools.cache
def mel_centres(n_mels: int, sample_rate: int) -> torch.Tensor:
    """The centre frequencies (Hz) of the front end's Slaney mel bands (n_mels,): the peaks of
    librosa.filters.mel's triangles."""
    import librosa

    return torch.from_numpy(librosa.mel_frequencies(n_mels + 2, fmax=sample_rate / 2)[1:-1]).float()


def shift_pitch(x: torch.Tensor, semitones: torch.Tensor, config: FrontEndConfig) -> torch.Tensor:
    """Features (B, C, T) of `config`'s front end with each example's pitch moved by `semitones` (B,): the log-mel
    resampled along frequency (band i takes the input's level at f_i / 2**(s/12), linear between band centres,
    the edge bands repeated) and the chroma rolled by the nearest whole semitone. Pitch shifting by stretching
    the spectrogram along frequency, as in Schlueter & Grill (ISMIR 2015). Returns (B, C, T) in x's dtype."""
    n, t = config.n_mels, x.shape[-1]
    if n < 2:  # no frequency axis to move along
        return x
    centres = mel_centres(n, config.sample_rate).to(x.device)  # (n,)
    wanted = centres[None] / 2 ** (semitones.float()[:, None] / 12)  # (B, n): the input frequency each band shows
    hi = torch.searchsorted(centres, wanted.contiguous()).clamp(1, n - 1)  # (B, n)
    lo = hi - 1
    w = ((wanted - centres[lo]) / (centres[hi] - centres[lo])).clamp(0, 1)[..., None].to(x.dtype)  # (B, n, 1)
    mel = x[:, :n]  # (B, n, T)
    below, above = (mel.gather(1, i[..., None].expand(-1, -1, t)) for i in (lo, hi))  # (B, n, T) each
    out = [below * (1 - w) + above * w]
    if x.shape[1] > n:
        bins = x.shape[1] - n  # 12 chroma bins, C first: rolling by k moves every pitch class k semitones up
        source = (torch.arange(bins, device=x.device) - semitones.round().long()[:, None]) % bins  # (B, 12)
        out.append(x[:, n:].gather(1, source[..., None].expand(-1, -1, t)))  # (B, 12, T)
    return torch.cat(out, dim=1)


class VectorAugment:
    """Augmentation of per-clip vectors (B, D): mixup with Beta(mixup_alpha, mixup_alpha) (0: none).

    Args:
        mixup_alpha: mixup's Beta parameter; 0 leaves the batch as it is.
    """

    legacy: ClassVar[dict] = {}  # setting -> the value runs saved before it existed were trained with

    def __init__(self, mixup_alpha: float = 0.0):
        self.hparams = {"mixup_alpha": mixup_alpha}

    def __call__(self, x: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs (B, ...) and labels (B,) -> inputs and the labels, or soft targets (B, n) once mixed."""
        return mixup(x, y, n_classes, self.hparams["mixup_alpha"])


class WindowAugment(VectorAugment):
    """Augmentation of log-mel + chroma windows (B, C, W) of the front end `frontend`, on the batch's device: a
    random pitch shift of up to +-pitch_shift semitones (`shift_pitch`), a random gain of up to +-gain_db on the
    log-mel rows, one frequency mask of up to freq_mask mel bins and one time mask of up to time_mask frames
    (SpecAugment, Park et al. 2019), and mixup (Zhang et al. 2018) with Beta(mixup_alpha, mixup_alpha).

    Args:
        frontend: the front end whose features the windows are (train.py's `--frontend` group).
        pitch_shift: semitones, up and down (3 by default, BENCHMARKS.md says why; 0: none).
        gain_db: dB, up and down.
        freq_mask: mel bins, at most.
        time_mask: frames, at most.
        mixup_alpha: mixup's Beta parameter (0: none).
    """

    legacy: ClassVar[dict] = {"pitch_shift": 0.0}  # runs from before the pitch shift had none

    def __init__(self, frontend: FrontEndConfig | dict | None = None, pitch_shift: float = 3.0, gain_db: float = 6.0,
                 freq_mask: int = 16, time_mask: int = 20, mixup_alpha: float = 0.2):
        super().__init__(mixup_alpha)
        self.frontend = FrontEndConfig.of(frontend)
        self.hparams.update(pitch_shift=pitch_shift, gain_db=gain_db, freq_mask=freq_mask, time_mask=time_mask)

    def __call__(self, x: torch.Tensor, y: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        hp = self.hparams
        b, c, t = x.shape
        x = x.clone()
        n_mels = self.frontend.n_mels
        if hp["pitch_shift"] > 0:
            x = shift_pitch(x, (torch.rand(b, device=x.device) * 2 - 1) * hp["pitch_shift"], self.frontend)
        x[:, :n_mels] += (torch.rand(b, 1, 1, device=x.device) * 2 - 1) * hp["gain_db"]
        fill = x.mean(dim=2, keepdim=True)  # (B, C, 1)
        for size, length, axis in ((hp["freq_mask"], n_mels, 1), (hp["time_mask"], t, 2)):
            if size <= 0:
                continue
            width = torch.randint(0, size + 1, (b, 1, 1), device=x.device)  # (B, 1, 1)
            start = (torch.rand(b, 1, 1, device=x.device) * (length - width + 1)).long()  # (B, 1, 1)
            pos = torch.arange(c if axis == 1 else t, device=x.device).view((1, -1, 1) if axis == 1 else (1, 1, -1))
            mask = (pos >= start) & (pos < start + width)  # (B, C, 1) or (B, 1, T)
            if axis == 1:
                mask = mask & (pos < n_mels)
            x = torch.where(mask, fill, x)  # (B, C, T)
        return super().__call__(x, y, n_classes)  # mixup: (B, C, T), labels (B,) or soft targets (B, n)


def for_inputs(inputs: str) -> type[VectorAugment]:
    """The augmentation of a classifier's `inputs` ("windows" or "vectors")."""
    return WindowAugment if inputs == "windows" else VectorAugment
