"""What every model family's classifier offers: plain `nn.Module`s (no Lightning) from a waveform to probabilities.

    from genre_cnn.models.families.base import GenreClassifier     # subclassed by each family module; no CLI

Each classifier carries whatever turns a waveform into its input (a front end, a pretrained backbone), so
training and prediction cannot drift apart, and says in `inputs` what its training loaders yield: "windows"
(random windows of the cached spectrogram; a track is every window, its probabilities their mean, CLMR-style
track-level evaluation) or "vectors" (one per clip). What callers may ask of any classifier: `genres`,
`sample_rate`, `window_samples`, `clip_samples`, `track_probs` / `window_probs` / `predict_waveform`, and
`feature_view` (the spectrogram it hears, for plots; None for a model that hears none). A family's settings are
its `__init__` arguments, their ranges its `bounds` (genre_cnn.bounds checks them for training and loading alike),
and `legacy` the values that checkpoints saved before a setting existed were trained with.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import ClassVar, Literal

import numpy as np
import torch
from torch import nn

from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig
from genre_cnn.models.networks import WIDTHS, DenseEnsemble, DenseNet

TRACK_BATCH = 16  # windows or patches per forward pass when a whole track is shown window by window


def in_batches(inputs: torch.Tensor, run: Callable[[torch.Tensor], torch.Tensor], batch: int,
               check: Callable[[], None] | None = None) -> torch.Tensor:
    """`run` over `inputs` (N, ...) `batch` rows at a time, concatenated; `check()` after every batch (it may
    raise to stop)."""
    out = []
    for start in range(0, len(inputs), batch):
        out.append(run(inputs[start:start + batch]))
        if check is not None:
            check()
    return torch.cat(out)


class GenreClassifier(nn.Module):
    """Logits for the family's training input, clip and window probabilities for a batch of evaluation inputs,
    and the same for a whole waveform."""

    inputs: ClassVar[Literal["windows", "vectors"]]
    cached: ClassVar[str]  # which array of the feature cache (`features`) the training inputs come from
    bounds: ClassVar[dict] = {}  # setting -> its range or rule (genre_cnn.bounds), for training and loading alike
    legacy: ClassVar[dict] = {}  # setting -> the value checkpoints and runs saved before it existed were trained with
    fitted: ClassVar[tuple[str, ...]] = ()  # settings that training sets once it has fitted them, never options
    value_bounds: ClassVar[dict[str, tuple[float, float]]] = {}  # state-dict tensor -> the range of its values
    hparams: dict  # the settings it was built from (`from_hparams`), saved in its checkpoints

    @staticmethod
    def features(frontend: FrontEndConfig):
        """The front end's settings -> the feature cache's extractor (genre_cnn.data.cache) this family trains on."""
        raise NotImplementedError

    @staticmethod
    def pool(cached: np.ndarray) -> np.ndarray:
        """Cached rows (N, ...) -> training inputs (N, ...); as cached unless a family says otherwise."""
        return cached

    def __init__(self, genres: list[str]):
        super().__init__()
        self.genres = list(genres)
        # divides every window's logits before the softmax (fitted on held-out clips by training); 1 until fitted
        self.register_buffer("temperature", torch.ones(()))

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args) -> None:
        state_dict.setdefault(prefix + "temperature", torch.ones(()))  # saved before models carried one: T = 1
        super()._load_from_state_dict(state_dict, prefix, *args)

    @property
    def sample_rate(self) -> int:
        """The rate (Hz) of the mono waveforms it takes."""
        raise NotImplementedError

    @property
    def window_samples(self) -> int | None:
        """Samples of a waveform that is exactly one of its input windows (prediction reads evenly spaced windows
        of this length with --max-windows), or None for a model that sees the track as one input."""
        return None

    @property
    def clip_samples(self) -> int | None:
        """Samples of the centred clip it hears of a longer track (prediction reads only that), or None: all of it."""
        return None

    def feature_view(self, waveform: torch.Tensor) -> tuple[torch.Tensor, FrontEndConfig] | None:
        """The spectrogram it hears of a mono waveform (samples,) at `sample_rate`, for plots: features (C, T) on
        the CPU (log-mel bands, then chroma if the settings say so) and the front-end settings that made them;
        None for a model whose input is no spectrogram."""
        return None

    @classmethod
    def legacy_state(cls) -> dict[str, tuple[int, ...]]:
        """Tensors that checkpoints of earlier versions may hold beyond what the settings build, {name: shape}: they
        load (and are used) when present."""
        return {}

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of evaluation inputs -> the logits of each of their windows (B, K, n), before the temperature."""
        raise NotImplementedError

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        """A batch of training inputs -> the logits of each member of the model (M, B, n): training fits each
        member to the labels on its own (a deep ensemble); one member unless the family makes ensembles."""
        return self(x)[None]  # (1, B, n)

    def clip_probs(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A batch of evaluation inputs -> clip probabilities (B, n), the mean of the window probabilities
        (B, K, n), each the softmax of the window's logits divided by the temperature."""
        window_probs = (self.window_logits(x) / self.temperature).softmax(-1)  # (B, K, n)
        return window_probs.mean(dim=1), window_probs

    def track_inputs(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono waveform (samples,) at `sample_rate` -> this model's evaluation input for the track (unbatched)."""
        raise NotImplementedError

    @torch.no_grad()
    def predict_waveform(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono waveform (samples,) at `sample_rate` -> genre probabilities (n,)."""
        return self.clip_probs(self.track_inputs(waveform)[None])[0][0]  # (n,)

    @torch.no_grad()
    def window_probs(self, waveform: torch.Tensor) -> torch.Tensor:
        """Mono waveform (samples,) -> probabilities of each window along the track (K, n) (K = 1 for a
        model that sees the track as one vector)."""
        return self.clip_probs(self.track_inputs(waveform)[None])[1][0]  # (K, n)

    @torch.no_grad()
    def track_probs(self, waveform: torch.Tensor, batch: int = TRACK_BATCH,
                    check: Callable[[], None] | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """What `predict_waveform` and `window_probs` give, ((n,), (K, n)) on the CPU, with the network run on at
        most `batch` windows at a time, so that its activations take the same memory for a track of any length
        (the web page and the plots show every window of a file a user hands over; the front end still sees the
        whole waveform, which they cap); `check()` runs after each batch and may raise to stop."""
        window_probs = self.window_probs(waveform).cpu()  # (1, n): one clip-long vector
        if check is not None:
            check()
        return window_probs.mean(dim=0), window_probs

    def calibrated(self, logits: torch.Tensor) -> torch.Tensor:
        """Logits (..., n) -> probabilities (..., n), divided by the temperature as every answer is."""
        return (logits / self.temperature).softmax(-1)

    @classmethod
    def settings(cls) -> dict[str, inspect.Parameter]:
        """Its `__init__` arguments, by name: the family's settings."""
        return {k: p for k, p in inspect.signature(cls.__init__).parameters.items()
                if k != "self" and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)}

    @classmethod
    def from_hparams(cls, hparams: dict) -> GenreClassifier:
        """The classifier from hyperparameters (a checkpoint's, or a run's options; those its `__init__` does not
        take are ignored), `legacy` filling settings they predate; keeps them, defaults filled in, as `hparams`."""
        params = cls.settings()
        given = {k: v for k, v in {**cls.legacy, **hparams}.items() if k in params}
        model = cls(**given)
        model.hparams = {k: given.get(k, p.default) for k, p in params.items()
                         if k in given or p.default is not p.empty}
        if isinstance(getattr(model, "frontend", None), FrontEnd) and "frontend" in params:
            model.hparams["frontend"] = model.frontend.config.as_dict()  # plain types: loads with weights_only
        return model


class FrontEndInput:
    """For a classifier whose input comes from its `frontend` (genre_cnn.audio.frontend.FrontEnd): its sample rate
    and the spectrogram plots draw are that front end's."""

    frontend: FrontEnd

    @property
    def sample_rate(self) -> int:
        return self.frontend.config.sample_rate

    @torch.no_grad()
    def feature_view(self, waveform: torch.Tensor) -> tuple[torch.Tensor, FrontEndConfig]:
        wave = waveform.float().to(self.frontend.hann.device)[None]  # (1, samples)
        return self.frontend(wave)[0].cpu(), self.frontend.config  # (C, T)


class VectorClassifier(GenreClassifier):
    """`DenseNet` (or a `DenseEnsemble` of `members` of them) on a standardised per-clip vector; the scaler
    (training-split mean and std) is saved with the weights as buffers. Subclasses say where the vector comes from."""

    inputs = "vectors"

    def __init__(self, genres: list[str], in_features: int, widths: tuple[int, ...] = WIDTHS, dropout: float = 0.3,
                 members: int = 1):
        super().__init__(genres)
        self.net = (DenseNet(in_features, len(genres), tuple(widths), dropout) if members == 1
                    else DenseEnsemble(in_features, len(genres), tuple(widths), dropout, members))
        self.register_buffer("mean", torch.zeros(in_features))
        self.register_buffer("std", torch.ones(in_features))

    def set_scaler(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """The training split's per-feature mean and standard deviation, (D,) each."""
        self.mean.copy_(mean.float())
        self.std.copy_(std.clamp_min(1e-6).float())

    def select(self, x: torch.Tensor) -> torch.Tensor:
        """Raw vectors (B, ...) -> the part the network sees (B, D): all of it unless a subclass says otherwise."""
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Raw vectors (B, ...) -> logits (B, n), the mean of the members' for an ensemble."""
        return self.net((self.select(x) - self.mean) / self.std)

    def member_logits(self, x: torch.Tensor) -> torch.Tensor:
        z = (self.select(x) - self.mean) / self.std  # (B, D)
        members = self.net.members if isinstance(self.net, DenseEnsemble) else [self.net]
        return torch.stack([member(z) for member in members])  # (M, B, n)

    def window_logits(self, x: torch.Tensor) -> torch.Tensor:
        return self(x)[:, None]  # (B, 1, n): one "window", the whole clip
