"""musicnn (MSD_musicnn) in PyTorch: the pretrained music tagger as a feature extractor, with its own front end.

    python -m genre_cnn.models.musicnn FILE [FILE ...]     # top 5 of the 50 Million Song Dataset tags of each file

Its front end is genre_cnn's own `FrontEnd` with the settings `FRONTEND` below (16 kHz, 96 mel bands, log10(10000 S
+ 1)); the network takes non-overlapping 3-s patches of it (`cut_patches`).
Port of J. Pons and X. Serra, "musicnn: pre-trained convolutional neural networks for music audio tagging",
ISMIR 2019 late-breaking demo (arXiv:1909.06654), model MSD_musicnn of the `musicnn==0.1.0` wheel (ISC licence).
Checked layer by layer against the original's activations in ../shared/musicnn_reference (tests/test_musicnn.py).

Input: log-mel patches (N, 187, 96) = 3 s at 16 kHz, time-major as in the original. The network:
- front end: batch norm of the input; timbral: vertical filters 7 x 38 and 7 x 67 mel bands (204 each, time padded
  by 3 on both sides, valid in frequency); temporal: horizontal filters 128, 64 and 32 frames x 1 band (51 each, TF
  'same' padding: the extra pad at the end). Each conv -> ReLU -> batch norm -> max over frequency; 561 channels.
- mid end: three 1-D convs over time (64 filters, width 7, ReLU then batch norm), the 2nd and 3rd residual;
  front-end and mid-end outputs concatenated densely: 561 + 3 x 64 = 753 channels.
- back end: max and mean over time, interleaved per channel (TF flattens (N, 753, 2)) -> 1506 -> batch norm
  -> dense 200 + ReLU -> batch norm (`penultimate`) -> dense 50 -> sigmoid (`taggram`).
Batch norm runs in inference mode with TF's epsilon 1e-3.

The weights are converted once from the wheel's TensorFlow checkpoint (genre_cnn.models.tfbundle, no TF needed) and
cached as a plain state dict under home()/data/pretrained/msd_musicnn.pt. A model built on them names them by a
reference, "MSD_musicnn@sha256:<digest of the weights>" (`MSD_MUSICNN`), as torchaudio's pipeline bundles name
their weights: `backbone_state` loads the weights a reference names once per process and checks their digest, so
that the frozen backbone never needs to travel inside a trained model's checkpoint.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from genre_cnn.audio.frontend import FrontEnd, FrontEndConfig
from genre_cnn.errors import GenreCnnError
from genre_cnn.paths import atomic_write, home

MSD_TAGS: tuple[str, ...] = (
    "rock", "pop", "alternative", "indie", "electronic", "female vocalists", "dance", "00s", "alternative rock",
    "jazz", "beautiful", "metal", "chillout", "male vocalists", "classic rock", "soul", "indie rock", "Mellow",
    "electronica", "80s", "folk", "90s", "chill", "instrumental", "punk", "oldies", "blues", "hard rock", "ambient",
    "acoustic", "experimental", "female vocalist", "guitar", "Hip-Hop", "70s", "party", "country", "easy listening",
    "sexy", "catchy", "funk", "electro", "heavy metal", "Progressive rock", "60s", "rnb", "indie pop", "sad", "House",
    "happy",
)
TF_BN_EPS = 1e-3  # tf.compat.v1.layers.batch_normalization's default (torch's is 1e-5)
INSTALL = ".venv/bin/pip install --no-deps musicnn==0.1.0"


# What the pretrained model was trained on: 16 kHz, 512-point FFT, hop 256, 96 Slaney mel bands, power,
# log10(10000 S + 1) in float32 (the wheel's own extractor casts to float16 first and overflows on loud frames).
FRONTEND = FrontEndConfig(sample_rate=16000, n_fft=512, hop_length=256, n_mels=96, chroma=False,
                          compression="log10_1e4")
PATCH_FRAMES = 187  # 3 s: the input length the network was trained on


class WeightsNotFound(GenreCnnError):
    """The musicnn wheel (which carries the TensorFlow checkpoint) is not installed; the message says how to get it."""


def cut_patches(logmel: torch.Tensor, patch_frames: int = PATCH_FRAMES) -> torch.Tensor:
    """(B, 96, frames) -> (B, P, patch_frames, 96): non-overlapping patches, the last partial one dropped; a track
    shorter than one patch is looped to fill it. No shape-dependent Python branch, so it exports to ONNX."""
    t = logmel.shape[-1]
    logmel = logmel.repeat(1, 1, (patch_frames + t - 1) // t)  # (B, F, T'): loops a short track; T' = T if T >= 187
    n = logmel.shape[-1] // patch_frames
    frames = logmel[..., : n * patch_frames].transpose(-1, -2)  # (B, n * T, F)
    return frames.reshape(frames.shape[0], n, patch_frames, frames.shape[-1])  # (B, P, T, F)


class _ConvBNReLU(nn.Module):
    """conv -> ReLU -> batch norm, in the original's order; `pad` is (before, after) in time."""

    def __init__(self, conv: nn.Conv1d | nn.Conv2d, pad: tuple[int, int]) -> None:
        super().__init__()
        self.conv = conv
        bn = nn.BatchNorm2d if isinstance(conv, nn.Conv2d) else nn.BatchNorm1d
        self.bn = bn(conv.out_channels, eps=TF_BN_EPS)
        self.pad = pad

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time_pad = (0, 0, *self.pad) if x.dim() == 4 else self.pad  # time is dim 2 of (N, C, T, F), (N, C, T)
        return self.bn(F.relu(self.conv(F.pad(x, time_pad))))

    def pooled(self, x: torch.Tensor) -> torch.Tensor:
        """max over frequency of forward(x): (N, 1, T, F) -> (N, C, T).

        In eval mode, ReLU and batch norm are monotone per channel, so the max is taken first, on the conv output
        (the min where the batch norm's scale is negative: those filters are negated), and ReLU and batch norm then
        run on (N, C, T) instead of (N, C, T, F). Same result (tests/test_musicnn.py checks it).
        """
        if self.training:
            return self.forward(x).amax(dim=3)
        sign = torch.where(self.bn.weight < 0, -1.0, 1.0)  # (C,)
        before, after = self.pad
        y = F.conv2d(x, self.conv.weight * sign.view(-1, 1, 1, 1), self.conv.bias * sign,
                     padding=(max(before, after), 0))  # (N, C, T + |after - before|, F)
        y = y[:, :, after - before:] if after > before else y  # TF's 'same' pads the odd row at the end
        bn = self.bn
        return F.batch_norm(F.relu(y.amax(dim=3) * sign.view(1, -1, 1)), bn.running_mean, bn.running_var, bn.weight,
                            bn.bias, False, 0.0, bn.eps)  # (N, C, T)


def _same(k: int) -> tuple[int, int]:
    """TensorFlow's 'same' padding for stride 1: the odd pad goes at the end."""
    return (k - 1) // 2, k // 2


class Musicnn(nn.Module):
    """The musicnn network (Pons & Serra, 2019) on log-mel patches (N, T, n_mels); defaults are MSD_musicnn's.

    forward returns a dict (N = patches, T = frames, channel-first):
      timbral (N, 408, T), temporal (N, 153, T), cnn1/cnn2/cnn3 (N, 64, T), max_pool/mean_pool (N, 753),
      pooled (N, 1506) = max and mean interleaved per channel (as TF flattens them), penultimate (N, 200),
      logits and taggram (N, 50).
    """

    def __init__(self, n_mels: int = 96, frontend_filters: float = 1.6, midend_filters: int = 64,
                 backend_units: int = 200, num_classes: int = 50) -> None:
        super().__init__()
        timbral, temporal = int(frontend_filters * 128), int(frontend_filters * 32)
        self.input_bn = nn.BatchNorm2d(1, eps=TF_BN_EPS)
        self.timbral = nn.ModuleList(_ConvBNReLU(nn.Conv2d(1, timbral, (7, int(f * n_mels))), (3, 3))
                                     for f in (0.4, 0.7))
        self.temporal = nn.ModuleList(_ConvBNReLU(nn.Conv2d(1, temporal, (k, 1)), _same(k)) for k in (128, 64, 32))
        front = 2 * timbral + 3 * temporal
        self.midend = nn.ModuleList(_ConvBNReLU(nn.Conv1d(c, midend_filters, 7), (3, 3))
                                    for c in (front, midend_filters, midend_filters))
        pooled = 2 * (front + 3 * midend_filters)
        self.pool_bn = nn.BatchNorm1d(pooled, eps=TF_BN_EPS)
        self.dense = nn.Linear(pooled, backend_units)
        self.dense_bn = nn.BatchNorm1d(backend_units, eps=TF_BN_EPS)
        self.classifier = nn.Linear(backend_units, num_classes)

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        x = self.input_bn(x.unsqueeze(1))  # (N, 1, T, F)
        timbral = torch.cat([blk.pooled(x) for blk in self.timbral], dim=1)  # (N, 408, T)
        temporal = torch.cat([blk.pooled(x) for blk in self.temporal], dim=1)  # (N, 153, T)
        front = torch.cat([timbral, temporal], dim=1)  # (N, 561, T)
        cnn1 = self.midend[0](front)
        cnn2 = self.midend[1](cnn1) + cnn1
        cnn3 = self.midend[2](cnn2) + cnn2
        features = torch.cat([front, cnn1, cnn2, cnn3], dim=1)  # (N, 753, T)
        max_pool, mean_pool = features.amax(dim=2), features.mean(dim=2)  # (N, 753) each
        pooled = torch.stack([max_pool, mean_pool], dim=2).flatten(1)  # (N, 1506): max, mean of channel 0, ...
        penultimate = self.dense_bn(F.relu(self.dense(self.pool_bn(pooled))))  # (N, 200)
        logits = self.classifier(penultimate)  # (N, 50)
        return {"timbral": timbral, "temporal": temporal, "cnn1": cnn1, "cnn2": cnn2, "cnn3": cnn3,
                "max_pool": max_pool, "mean_pool": mean_pool, "pooled": pooled, "penultimate": penultimate,
                "logits": logits, "taggram": torch.sigmoid(logits)}


# Module prefix -> the TF layers it came from (names follow the order the original builds its layers in).
_TF_NAMES = {"input_bn": (None, "batch_normalization"), "timbral.0": ("conv2d", "batch_normalization_1"),
             "timbral.1": ("conv2d_1", "batch_normalization_2"), "temporal.0": ("conv2d_2", "batch_normalization_3"),
             "temporal.1": ("conv2d_3", "batch_normalization_4"), "temporal.2": ("conv2d_4", "batch_normalization_5"),
             "midend.0": ("conv2d_5", "batch_normalization_6"), "midend.1": ("conv2d_6", "batch_normalization_7"),
             "midend.2": ("conv2d_7", "batch_normalization_8"), "pool_bn": (None, "batch_normalization_9"),
             "dense": ("dense", None), "dense_bn": (None, "batch_normalization_10"), "classifier": ("dense_1", None)}


def convert_tf_checkpoint(variables: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """A Musicnn state dict from the TF variables {name: array} of an MSD_musicnn/MTT_musicnn checkpoint."""
    sd: dict[str, np.ndarray] = {}
    for prefix, (weight, bn) in _TF_NAMES.items():
        mod = prefix if prefix in ("dense", "classifier") else f"{prefix}.conv"
        if weight is not None:
            k = variables[f"{weight}/kernel"]
            if k.ndim == 2:  # dense (in, out) -> (out, in)
                sd[f"{mod}.weight"] = k.T
            elif prefix.startswith("midend"):  # (7, C_in, 1, C_out) -> Conv1d (C_out, C_in, 7)
                sd[f"{mod}.weight"] = k[:, :, 0, :].transpose(2, 1, 0)
            else:  # (h, w, in, out) -> Conv2d (out, in, h, w)
                sd[f"{mod}.weight"] = k.transpose(3, 2, 0, 1)
            sd[f"{mod}.bias"] = variables[f"{weight}/bias"]
        if bn is not None:
            mod = prefix if prefix in ("input_bn", "pool_bn", "dense_bn") else f"{prefix}.bn"
            for ours, theirs in (("weight", "gamma"), ("bias", "beta"), ("running_mean", "moving_mean"),
                                 ("running_var", "moving_variance")):
                sd[f"{mod}.{ours}"] = variables[f"{bn}/{theirs}"]
    return {k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in sd.items()}


def wheel_checkpoint(model: str = "MSD_musicnn") -> Path:
    """The `.index` file of a checkpoint in the installed musicnn wheel, found without importing the package."""
    spec = importlib.util.find_spec("musicnn")  # a top-level package: finds it, runs none of its code
    for folder in (spec.submodule_search_locations or []) if spec else []:
        index = Path(folder) / model / ".index"
        if index.is_file():
            return index
    raise WeightsNotFound(f"musicnn weights not found: run `{INSTALL}` (the wheel's TensorFlow checkpoint, ISC)")


def pretrained_path() -> Path:
    return home() / "data" / "pretrained" / "msd_musicnn.pt"


MSD_MUSICNN = "MSD_musicnn@sha256:85496deac03e09ce"  # the weights of the wheel's MSD_musicnn, by their digest


class BackboneError(GenreCnnError):
    """Weights that do not match the reference a model names; the message is one line saying what to do."""


def weights_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 (hex) of a state dict's names, dtypes, shapes and bytes, in name order: what a reference checks."""
    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def pretrained_state() -> dict[str, torch.Tensor]:
    """MSD_musicnn's weights as a state dict: the cached conversion, or the wheel's checkpoint converted now (and
    cached)."""
    from genre_cnn.models.tfbundle import read_bundle

    path = pretrained_path()
    if path.is_file():
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except Exception:  # noqa: BLE001 - an unreadable cache is rebuilt from the wheel
            pass
    state = convert_tf_checkpoint(read_bundle(wheel_checkpoint("MSD_musicnn")))
    atomic_write(path, lambda f: torch.save(state, f))
    return state


@functools.cache
def backbone_state(reference: str) -> dict[str, torch.Tensor]:
    """The weights `reference` ("MSD_musicnn@sha256:DIGEST") names, loaded once per process and checked against its
    digest; BackboneError for another model or weights that do not match (a damaged cache is converted again)."""
    name, _, digest = reference.partition("@sha256:")
    if name != "MSD_musicnn" or not digest:
        raise BackboneError(f"unknown musicnn weights {reference[:80]!r} (known: {MSD_MUSICNN})")
    state = pretrained_state()
    if not weights_digest(state).startswith(digest):
        pretrained_path().unlink(missing_ok=True)  # a damaged cache: convert the wheel's checkpoint again
        state = pretrained_state()
        if not weights_digest(state).startswith(digest):
            raise BackboneError(f"the installed musicnn weights are not {reference}: reinstall them with `{INSTALL}`")
    return state


def load_pretrained(map_location: str | torch.device = "cpu") -> Musicnn:
    """MSD_musicnn with its pretrained weights, in eval mode; converts the wheel's checkpoint on first use."""
    model = Musicnn()
    model.load_state_dict(pretrained_state())
    return model.to(map_location).eval()


@torch.inference_mode()
def embed(model: Musicnn, front: FrontEnd, wave: np.ndarray | torch.Tensor,
          keys: tuple[str, ...] = ("taggram", "penultimate", "pooled")) -> dict[str, torch.Tensor]:
    """Clip-level outputs: `keys` of the model averaged over all 3-s patches of one waveform (samples,) at 16 kHz."""
    wave = torch.as_tensor(wave, dtype=torch.float32).reshape(1, -1)  # (1, samples)
    patches = cut_patches(front(wave))[0]  # (P, 187, 96)
    out = model(patches)
    return {k: out[k].mean(dim=0) for k in keys}


EMBEDDING_SIZE = 200 + 50  # per patch: the penultimate layer, then the 50 tag logits


def embed_patches(model: Musicnn, patches: torch.Tensor) -> torch.Tensor:
    """Patches (N, 187, 96) -> their embeddings (N, 250): penultimate layer, then tag logits."""
    out = model(patches)
    return torch.cat([out["penultimate"], out["logits"]], dim=1)  # (N, 250)


def patch_embeddings(model: Musicnn, front: FrontEnd, wave: torch.Tensor) -> torch.Tensor:
    """Waveform (B, samples) at 16 kHz -> per-patch embeddings (B, P, 250): penultimate layer and tag logits."""
    patches = cut_patches(front(wave))  # (B, P, 187, 96)
    emb = embed_patches(model, patches.flatten(0, 1))  # (B * P, 250)
    return emb.view(patches.shape[0], patches.shape[1], EMBEDDING_SIZE)  # (B, P, 250)


@dataclass(frozen=True)
class MusicnnEmbeddings:
    """The feature cache's extractor for the musicnn family: one clip (samples,) at 16 kHz -> {"embedding": (P, 250)
    float32}, the pretrained network's penultimate layer and tag logits for each 3-s patch. Picklable."""

    sample_rate: int = FRONTEND.sample_rate

    def settings(self) -> dict:
        return {"kind": "musicnn", "weights": "MSD_musicnn", **FRONTEND.as_dict(), "patch_frames": PATCH_FRAMES}

    def build(self) -> tuple[Musicnn, FrontEnd]:
        return load_pretrained(), FrontEnd(FRONTEND)

    def __call__(self, y: np.ndarray, built: tuple[Musicnn, FrontEnd]) -> dict[str, np.ndarray]:
        with torch.inference_mode():
            emb = patch_embeddings(*built, torch.from_numpy(y)[None])[0]  # (P, 250)
        return {"embedding": emb.numpy()}


def main(argv: list[str]) -> None:
    from genre_cnn.audio.decode import load_audio

    if not argv:
        sys.exit("usage: python -m genre_cnn.models.musicnn FILE [FILE ...]")
    model, front = load_pretrained(), FrontEnd(FRONTEND)
    for file in argv:
        tags = embed(model, front, load_audio(Path(file), FRONTEND.sample_rate), keys=("taggram",))["taggram"]
        top = torch.argsort(tags, descending=True)[:5]
        print(f"{file}: " + ", ".join(f"{MSD_TAGS[i]} {tags[i]:.2f}" for i in top.tolist()))


if __name__ == "__main__":
    main(sys.argv[1:])
