"""Export the CNN with its front end to ONNX: one graph from a waveform to genre probabilities.

    genre-cnn export [--ckpt CKPT] [--out model.onnx]

The graph takes `waveform`, float32 (1, samples), mono at the model's sample rate (metadata `sample_rate`),
of any length (the samples axis is dynamic); it returns `probabilities`, float32 (1, n_genres), in the order
of the JSON list in metadata `genres`. Inside: torch.stft (ONNX STFT, opset 20), log-mel + chroma, the
half-overlapping windows of the whole track (`genre_cnn.frontend.track_windows`: a track shorter than one
window is looped), the CNN, and the mean of the windows' softmax. With onnxruntime:

    import json, onnxruntime as ort
    session = ort.InferenceSession("model.onnx")
    genres = json.loads(session.get_modelmeta().custom_metadata_map["genres"])
    probs = session.run(None, {"waveform": y[None].astype("float32")})[0][0]   # y: (samples,)
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from genre_cnn.classifiers import WindowClassifier

MIN_SAMPLES = 4096  # the shortest input the graph is exported for: two STFT frames' worth


class WaveformToProbs(nn.Module):
    """Export-only wrapper: waveform (1, samples) -> probabilities (1, n), exactly the classifier's own
    `predict_waveform` computation (front end, `track_windows`, network, mean of the windows' softmax)."""

    def __init__(self, model: WindowClassifier):
        super().__init__()
        self.model = model

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.model.clip_probs(self.model.track_inputs(waveform[0])[None])[0]  # (1, n)


def export_onnx(model: WindowClassifier, out: Path, seconds: float = 30.0) -> Path:
    """Writes `model` (front end included) to `out` as a single ONNX file and returns `out`.

    Args:
        model: a trained WindowClassifier (moved to CPU and eval mode for the export).
        out: the .onnx file to write (its folder is created).
        seconds: length of the example input used for tracing; any length works at inference.
    """
    import logging
    import warnings

    from torch.export import Dim

    if not isinstance(model, WindowClassifier):
        raise TypeError(f"ONNX export supports the CNN (WindowClassifier), not {type(model).__name__}")
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
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
                                        input_names=["waveform"], output_names=["probabilities"],
                                        dynamic_shapes={"waveform": {1: samples}})
    finally:
        quiet.setLevel(level)
    program.model.metadata_props.update({
        "genres": json.dumps(model.genres),
        "sample_rate": str(sample_rate),
        "producer_note": "genre_cnn: waveform (1, samples) float32 mono -> probabilities (1, len(genres))",
    })
    program.save(out, external_data=False)
    return out

