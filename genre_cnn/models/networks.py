"""The plain networks (no training logic): the write-up's CNN and its dense baseline.

    python -m genre_cnn.models.networks      # prints both networks and their parameter counts

Both follow the write-up genre_cnn starts from, "Automated Music Genre Detection and Classification using
Machine Learning" (a librosa + GTZAN project README): layers of 512, 256, 128 and 64 units with ReLU and a
10-way output; softmax is applied by the caller at inference, cross-entropy takes the logits in training.
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn

WIDTHS = (512, 256, 128, 64)  # the write-up's layer widths, the default of every family


class GenreCNN(nn.Module):
    """A 1-D convolutional network over time: the front end's bins (128 log-mel + 12 chroma) are its channels.

    A 1-D convolution treats each frame's whole spectrum as one vector, as in Choi et al.'s
    "Automatic tagging using deep convolutional neural networks" (ISMIR 2016) time-axis variants and
    Pons et al. "Experimenting with musically motivated CNNs" (CBMI 2016); it is cheaper than a 2-D CNN
    of similar size, with fewer parameters to over-fit GTZAN's 1000 clips.
    Blocks: conv(k) -> batch norm -> ReLU -> max-pool(2) -> dropout; then mean and
    max pooling over time, dropout and a linear layer.

    `band_norm` takes the recording's colour out of the first `n_mels` channels (the log-mel bands) before
    anything is learnt: "none" leaves them; "mean" subtracts each band's mean over the window (a static EQ or
    gain is a constant per band in dB, so it vanishes); "instance" also divides by each band's standard
    deviation (floored at 1 dB), instance normalisation without affine parameters. The chroma rows are left.

    `stem` > 0 puts a 2-D first stage before the 1-D blocks: `stem` filters of 7 bands x 3 frames slid along
    frequency (one set of weights for every band, as in Pons et al.'s timbral filters), batch norm, ReLU, then the
    maximum over each 4 bands; its (stem, ceil(n_mels / 4), frames) output is flattened into channels. A sound
    moved by a few bands (another pitch, another singer) then excites the same filters, where the 1-D blocks
    alone learn each band separately. About 25% more time per step than without it (stem = 8, 2 CPU cores).

    Input (B, in_channels, frames) -> logits (B, num_classes).
    """

    def __init__(self, in_channels: int, num_classes: int, widths: tuple[int, ...] = WIDTHS,
                 kernel_size: int = 3, dropout: float = 0.3, band_norm: Literal["none", "mean", "instance"] = "none",
                 n_mels: int = 0, stem: int = 0):
        super().__init__()
        if not widths:
            raise ValueError("widths: the CNN needs at least one convolutional block, got []")
        self.band_norm, self.n_mels = band_norm, n_mels
        self.stem = None
        if stem:
            if n_mels < 1:
                raise ValueError("GenreCNN: a stem needs the number of log-mel rows, n_mels")
            self.stem = nn.Sequential(nn.Conv2d(1, stem, (7, 3), padding=(3, 1), bias=False), nn.BatchNorm2d(stem),
                                      nn.ReLU(inplace=True), nn.MaxPool2d((4, 1), ceil_mode=True))
            in_channels += stem * -(-n_mels // 4) - n_mels
        self.input_norm = nn.BatchNorm1d(in_channels)  # dB and chroma differ in scale by ~100x
        layers: list[nn.Module] = []
        for c_in, c_out in zip((in_channels, *widths[:-1]), widths):
            layers += [nn.Conv1d(c_in, c_out, kernel_size, padding=kernel_size // 2, bias=False),
                       nn.BatchNorm1d(c_out), nn.ReLU(inplace=True), nn.MaxPool1d(2), nn.Dropout(dropout / 2)]
        self.blocks = nn.Sequential(*layers)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * widths[-1], num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.band_norm != "none":
            mel, rest = x[:, :self.n_mels], x[:, self.n_mels:]  # (B, n_mels, T), (B, C - n_mels, T)
            mel = mel - mel.mean(dim=-1, keepdim=True)
            if self.band_norm == "instance":
                mel = mel / mel.std(dim=-1, keepdim=True).clamp_min(1.0)
            x = torch.cat([mel, rest], dim=1)  # (B, in_channels, T)
        if self.stem is not None:
            mel = self.stem(x[:, None, :self.n_mels]).flatten(1, 2)  # (B, stem * ceil(n_mels / 4), T)
            x = torch.cat([mel, x[:, self.n_mels:]], dim=1)  # (B, in_channels, T)
        h = self.blocks(self.input_norm(x))  # (B, widths[-1], frames / 2**len(widths))
        pooled = torch.cat([h.mean(dim=-1), h.amax(dim=-1)], dim=1)  # (B, 2 * widths[-1])
        return self.head(pooled)  # (B, num_classes)


class DenseNet(nn.Module):
    """The write-up's dense network: 512-256-128-64 units with ReLU and dropout, then the output layer.

    Input (B, in_features) standardised hand-crafted vectors -> logits (B, num_classes). No widths: a linear
    classifier.
    """

    def __init__(self, in_features: int, num_classes: int, widths: tuple[int, ...] = WIDTHS,
                 dropout: float = 0.3):
        super().__init__()
        layers: list[nn.Module] = []
        for f_in, f_out in zip((in_features, *widths[:-1]), widths):
            layers += [nn.Linear(f_in, f_out), nn.ReLU(inplace=True), nn.Dropout(dropout)]
        self.net = nn.Sequential(*layers, nn.Linear(widths[-1] if widths else in_features, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, num_classes)


class DenseEnsemble(nn.Module):
    """`members` DenseNets trained apart (each from its own seed) whose logits are averaged: a deep ensemble
    (Lakshminarayanan, Pritzel & Blundell 2017, "Simple and Scalable Predictive Uncertainty Estimation using Deep
    Ensembles", https://arxiv.org/abs/1612.01474), the normalised geometric mean of the members' probabilities.
    Input (B, in_features) -> logits (B, num_classes)."""

    def __init__(self, in_features: int, num_classes: int, widths: tuple[int, ...] = WIDTHS,
                 dropout: float = 0.3, members: int = 5):
        super().__init__()
        self.members = nn.ModuleList(DenseNet(in_features, num_classes, widths, dropout) for _ in range(members))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([m(x) for m in self.members]).mean(dim=0)  # (B, num_classes)


if __name__ == "__main__":
    from genre_cnn.audio.features import HANDCRAFTED_SIZE
    from genre_cnn.audio.frontend import FrontEndConfig
    from genre_cnn.data.layout import GTZAN_GENRES

    n = len(GTZAN_GENRES)
    c = FrontEndConfig()  # the CNN as LitCNN trains it by default
    for net in (GenreCNN(c.channels, n, band_norm="mean", n_mels=c.n_mels, stem=8), DenseNet(HANDCRAFTED_SIZE, n)):
        print(net, f"\n{sum(p.numel() for p in net.parameters()):,} parameters\n")
