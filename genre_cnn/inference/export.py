"""Export a CNN or musicnn model with its front end to ONNX: one graph from a waveform to genre probabilities.

    genre-cnn export [--ckpt CKPT] [--out model.onnx]

The input contract (also in `genre-cnn export --help` and the graph's metadata `input`): `waveform`, float32,
shape (1, samples), mono, values in [-1, 1], at the model's sample rate (metadata `sample_rate`: 22050 Hz for
the CNN, 16000 Hz for musicnn), at least MIN_SAMPLES samples, any length past that (the samples axis is
dynamic). The graph neither decodes, mixes nor resamples: do that first. It returns `probabilities`, float32
(1, n_genres), in the order of the JSON list in metadata `genres`, and `window_probabilities`, float32
(K, n_genres), each window's own (metadata `segment_samples`: the length of a waveform that is exactly one
window). Inside: torch.stft (ONNX STFT, opset 20), the model's log-mel (and chroma for the CNN), its windows
of the whole track (a track shorter than one window is looped), the network, and the track's probabilities
as the classifier's `predict_waveform` computes them (the mean of the CNN's windows; musicnn's head on the
mean embedding of its patches). A model with an open-set detector (the musicnn family's `openset`) has three more
outputs, computed on the same pooled embedding as the probabilities: `familiarity` (1,) float32, the conformal p-value
of the clip among the training music, `music_probability` (1,) float32, and `verdict` (1,) int64, an index into the
JSON list in metadata `verdicts` (["music", "unfamiliar", "not music"]; only "music" should get a genre).
With onnxruntime:

    import json, librosa, onnxruntime as ort
    session = ort.InferenceSession("model.onnx")
    meta = session.get_modelmeta().custom_metadata_map
    y, _ = librosa.load("song.mp3", sr=int(meta["sample_rate"]), mono=True)   # (samples,) float32
    probs = session.run(None, {"waveform": y[None]})[0][0]                    # (n_genres,)
    genres = json.loads(meta["genres"])

Families whose input pipeline is torch only (`exportable` in genre_cnn.models.families: the CNN, musicnn) export; the
dense baseline's librosa features do not. `genre_cnn.inference.onnx_predict` caches such an export per checkpoint so
that `genre-cnn predict` runs without torch. `--out` must be a new path or a regular file (replaced atomically).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from genre_cnn.errors import GenreCnnError
from genre_cnn.inference.torch_runner import (
    answer,
    model_spans,
    openset,
    pools_embeddings,
    verdicts,
    window_step,
    window_values,
)
from genre_cnn.models import families
from genre_cnn.models.checkpoint import CheckpointError
from genre_cnn.models.families.base import GenreClassifier
from genre_cnn.paths import atomic_write

MIN_SAMPLES = 4096  # the shortest input the graph is exported for: two STFT frames' worth
OPENSET_OUTPUTS = ["familiarity", "music_probability", "verdict"]  # after the probabilities, with a detector


class ExportError(GenreCnnError):
    """An output path that export must not write to; the message is one line."""

    exit_code = 2


def check_out(out: Path) -> Path:
    """`out` if it is a new path in a folder, or an existing regular file (not a link, folder, device, pipe);
    else ExportError. The file is replaced by renaming, so anything else there would be destroyed."""
    out = Path(out)
    if out.is_symlink() or (out.exists() and not out.is_file()):
        kind = ("a symbolic link" if out.is_symlink() else "a folder" if out.is_dir()
                else "not a regular file (a device, pipe or socket)")
        raise ExportError(f"--out {out}: {kind}; give the path of a new or existing .onnx file")
    if out.parent.exists() and not out.parent.is_dir():
        raise ExportError(f"--out {out}: {out.parent} is not a folder")
    return out


def input_contract(model: GenreClassifier) -> str:
    """What the exported graph takes, in one line (also stored in its metadata `input`)."""
    return (f"waveform float32 (1, samples), mono, values in [-1, 1], {model.sample_rate} Hz, at least "
            f"{MIN_SAMPLES} samples")


class WaveformToProbs(nn.Module):
    """Export-only wrapper: waveform (1, samples) -> probabilities (1, n), window probabilities (K, n) and window
    values (K', D): the classifier's own `predict_waveform` / `window_probs` (front end, windows, network, the
    mean of the windows' softmax, or musicnn's head on the mean patch embedding, which is then its one
    "window"), computed once from `torch_runner.window_values`; then, for a model with a detector, its familiarity,
    music probability and verdict (1,) on that mean embedding (`torch_runner.openset`)."""

    def __init__(self, model: GenreClassifier):
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, ...]:
        values = window_values(self.model, waveform[0])  # (K', D)
        means = values.mean(dim=0, keepdim=True)  # (1, D)
        probs = answer(self.model, means)  # (1, n)
        extra = openset(self.model, means) or ()
        return probs, (probs if pools_embeddings(self.model) else values), values, *extra


class MeansToProbs(nn.Module):
    """Export-only wrapper: means of window values (B, D) -> genre probabilities (B, n) (`torch_runner.answer`), and
    for a model with a detector its familiarity, music probability and verdict (B,) (`torch_runner.openset`)."""

    def __init__(self, model: GenreClassifier):
        super().__init__()
        self.model = model

    def forward(self, means: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return answer(self.model, means), *(openset(self.model, means) or ())


def openset_metadata(model: GenreClassifier) -> tuple[list[str], dict[str, str]]:
    """The detector's output names and metadata (`verdicts`) for a model with one; nothing for one without."""
    words = verdicts(model)
    return (OPENSET_OUTPUTS, {"verdicts": json.dumps(words)}) if words else ([], {})


def exportable(model: GenreClassifier) -> bool:
    """Whether the model's whole pipeline is torch, so one ONNX graph holds it (its family says)."""
    family = families.of(model)
    return family is not None and family.exportable


def export_onnx(model: GenreClassifier, out: Path, seconds: float = 30.0) -> Path:
    """Writes `model` (front end included) to `out` as a single ONNX file, atomically, and returns `out`.

    Args:
        model: a trained exportable classifier (moved to CPU and eval mode for the export).
        out: the .onnx file to write (its folder is created): a new path or a regular file (`check_out`).
        seconds: length of the example input used for tracing; any length works at inference.
    """
    import logging
    import warnings

    from torch.export import Dim

    if not exportable(model):
        shown = ", ".join(f.name for f in families.all().values() if f.exportable)
        raise CheckpointError(f"{getattr(model, 'checkpoint', 'this model')}: export needs a model of a family that "
                              f"exports to ONNX ({shown}), this one is {type(model).__name__} (its pipeline is not all "
                              "torch)")
    out = check_out(out)
    wrapper = WaveformToProbs(model.cpu().eval()).eval()
    extra_outputs, extra_meta = openset_metadata(model)
    sample_rate = model.sample_rate
    example = 0.1 * torch.randn(1, max(MIN_SAMPLES, int(seconds * sample_rate)))  # (1, samples)
    samples = Dim("samples", min=MIN_SAMPLES, max=sample_rate * 3600)
    quiet = [logging.getLogger(name) for name in ("torch.onnx", "onnx_ir", "onnxscript")]  # per op, per initializer
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecation notices while tracing
            program = torch.onnx.export(wrapper, (example,), dynamo=True, verbose=False,
                                        input_names=["waveform"],
                                        output_names=["probabilities", "window_probabilities", "window_values",
                                                      *extra_outputs],
                                        dynamic_shapes={"waveform": {1: samples}})
    finally:
        for logger, level in zip(quiet, levels, strict=True):
            logger.setLevel(level)
    segment, clip = model_spans(model)
    step = window_step(model)
    program.model.metadata_props.update({
        "genres": json.dumps(model.genres),
        "sample_rate": str(sample_rate),
        "segment_samples": str(segment or ""),
        "clip_samples": str(clip or ""),
        "window_step": str(step or ""),
        "input": input_contract(model),
        "model_class": type(model).__name__,
        "checkpoint": str(getattr(model, "checkpoint", "")),
        "trained_on": str(getattr(model, "trained_on", "")),
        "producer_note": f"genre_cnn: {input_contract(model)} -> probabilities (1, len(genres)), "
                         "window_probabilities (K, len(genres)), window_values (K', D)"
                         + (", familiarity (1,), music_probability (1,), verdict (1,) int64" if extra_meta else ""),
        **extra_meta,
    })
    proto = program.model_proto
    return atomic_write(out, lambda f: f.write(proto.SerializeToString()))



def export_answer(model: GenreClassifier, out: Path) -> Path:
    """Writes the graph from means of window values (input `means`, float32 (B, D)) to genre probabilities
    (output `probabilities` (B, n); with a detector also `familiarity`, `music_probability`, `verdict` (B,)) to
    `out`, atomically: what prediction runs on the mean of the windows it read (genre_cnn.inference.onnx_predict).
    For musicnn the head on the mean embedding, for the CNN the identity."""
    import warnings

    from torch.export import Dim

    with torch.no_grad():
        dim = window_values(model.cpu().eval(), torch.zeros(max(MIN_SAMPLES, model_spans(model)[0] or 0))).shape[1]
    example = torch.rand(3, dim)  # (B, D)
    extra_outputs, extra_meta = openset_metadata(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        program = torch.onnx.export(MeansToProbs(model).eval(), (example,), dynamo=True, verbose=False,
                                    input_names=["means"], output_names=["probabilities", *extra_outputs],
                                    dynamic_shapes={"means": {0: Dim("batch", min=1, max=65536)}})
    program.model.metadata_props.update({"genres": json.dumps(model.genres), "model_class": type(model).__name__,
                                         **extra_meta})
    proto = program.model_proto
    return atomic_write(Path(out), lambda f: f.write(proto.SerializeToString()))
