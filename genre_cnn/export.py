"""Export the CNN with its front end to ONNX: one graph from a waveform to genre probabilities.

    genre-cnn export [--ckpt CKPT] [--out model.onnx]

The graph takes `waveform`, float32 (1, samples), mono at the model's sample rate (metadata `sample_rate`),
of any length (the samples axis is dynamic); it returns `probabilities`, float32 (1, n_genres), in the order
of the JSON list in metadata `genres`, and `window_probabilities`, float32 (K, n_genres), each window's own
(metadata `segment_samples`: the length of a waveform that is exactly one window). Inside: torch.stft (ONNX
STFT, opset 20), log-mel + chroma, the
half-overlapping windows of the whole track (`genre_cnn.frontend.track_windows`: a track shorter than one
window is looped), the CNN, and the mean of the windows' softmax. With onnxruntime:

    import json, onnxruntime as ort
    session = ort.InferenceSession("model.onnx")
    genres = json.loads(session.get_modelmeta().custom_metadata_map["genres"])
    probs = session.run(None, {"waveform": y[None].astype("float32")})[0][0]   # y: (samples,)

Families whose input pipeline is torch only (`exportable`: the CNN, musicnn) export; the dense baseline's
librosa features do not. `genre_cnn.onnx_predict` caches such an export per
checkpoint so that `genre-cnn predict` runs without torch.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from genre_cnn.classifiers import GenreClassifier, HandcraftedClassifier
from genre_cnn.paths import atomic_write
from genre_cnn.predict import model_spans

MIN_SAMPLES = 4096  # the shortest input the graph is exported for: two STFT frames' worth


class WaveformToProbs(nn.Module):
    """Export-only wrapper: waveform (1, samples) -> probabilities (1, n) and window probabilities (K, n),
    exactly the classifier's own `predict_waveform` / `window_probs` computation (front end, windows, network,
    mean of the windows' softmax)."""

    def __init__(self, model: GenreClassifier):
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        probs, window_probs = self.model.clip_probs(self.model.track_inputs(waveform[0])[None])  # (1, n), (1, K, n)
        return probs, window_probs[0]


def exportable(model: GenreClassifier) -> bool:
    """Whether the model's whole pipeline is torch (so one ONNX graph holds it): its `onnx_exportable`
    attribute if it declares one, else every family but the dense baseline (librosa features)."""
    return bool(getattr(model, "onnx_exportable", not isinstance(model, HandcraftedClassifier)))


def export_onnx(model: GenreClassifier, out: Path, seconds: float = 30.0) -> Path:
    """Writes `model` (front end included) to `out` as a single ONNX file, atomically, and returns `out`.

    Args:
        model: a trained exportable classifier (moved to CPU and eval mode for the export).
        out: the .onnx file to write (its folder is created).
        seconds: length of the example input used for tracing; any length works at inference.
    """
    import logging
    import warnings

    from torch.export import Dim

    if not exportable(model):
        raise TypeError(f"ONNX export supports the CNN and musicnn families, not {type(model).__name__}")
    out = Path(out)
    wrapper = WaveformToProbs(model.cpu().eval()).eval()
    sample_rate = model.sample_rate
    example = 0.1 * torch.randn(1, max(MIN_SAMPLES, int(seconds * sample_rate)))  # (1, samples)
    samples = Dim("samples", min=MIN_SAMPLES, max=sample_rate * 3600)
    quiet = logging.getLogger("torch.onnx")  # it warns once per missing torchvision op
    level = quiet.level
    quiet.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch's own deprecation notices while tracing
            program = torch.onnx.export(wrapper, (example,), dynamo=True, verbose=False,
                                        input_names=["waveform"],
                                        output_names=["probabilities", "window_probabilities"],
                                        dynamic_shapes={"waveform": {1: samples}})
    finally:
        quiet.setLevel(level)
    segment, clip = model_spans(model)
    program.model.metadata_props.update({
        "genres": json.dumps(model.genres),
        "sample_rate": str(sample_rate),
        "segment_samples": str(segment or ""),
        "clip_samples": str(clip or ""),
        "model_class": type(model).__name__,
        "checkpoint": str(getattr(model, "checkpoint", "")),
        "trained_on": str(getattr(model, "trained_on", "")),
        "producer_note": "genre_cnn: waveform (1, samples) float32 mono -> probabilities (1, len(genres)), "
                         "window_probabilities (K, len(genres))",
    })
    proto = program.model_proto
    return atomic_write(out, lambda f: f.write(proto.SerializeToString()))

