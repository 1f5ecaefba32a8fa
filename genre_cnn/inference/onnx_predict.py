"""Prediction without torch: a checkpoint's ONNX export, made once and cached, run with onnxruntime.

    from genre_cnn.inference.onnx_predict import OnnxRunner, cached_onnx, make_onnx
    path = cached_onnx(ckpt) or make_onnx(ckpt, load_model(ckpt))   # None if the model does not export
    runner = OnnxRunner(path)
    probs, warning = predict_track(runner, Path("song.mp3"))          # genre_cnn.inference.predict

A prediction graph is two files: `<name>.onnx`, from a waveform to its windows' probabilities and values (the
`genre-cnn export` graph), and `<name>.answer.onnx` (`answer_path`), from the mean of window values to the genre
probabilities (musicnn's head; the identity for the CNN), so that windows read alone are pooled as the whole file's
would be. A model with an open-set detector has three more outputs in both graphs (familiarity, music probability,
verdict: genre_cnn.inference.export), which `openset` runs on the same means. The cache is `<home>/data/onnx/<sha256
of the checkpoint's bytes and EXPORT_VERSION>`, written atomically, so an edited or replaced checkpoint never reuses a
stale graph; the ready model's graphs ship beside it under the same kind of name (`shipped_onnx_path`), so the first
`genre-cnn predict` after set-up exports nothing. Importing this module and running an OnnxRunner needs numpy and
onnxruntime only: `genre-cnn predict` answers in about a second on the ONNX path, whereas importing torch alone takes
about as long (see benchmarks/predict_speed.py). The graph's probabilities match the PyTorch model's within 1e-4, the
ready model's on real clips included (tests/test_export.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

EXPORT_VERSION = "5"  # bump when export.py changes what a graph computes or carries


def onnx_digest(ckpt: Path) -> str:
    """A hash of the checkpoint's content (read in 1-MB blocks) and EXPORT_VERSION: what names its export."""
    digest = hashlib.sha256(EXPORT_VERSION.encode())
    with open(ckpt, "rb") as f:
        for block in iter(lambda: f.read(2**20), b""):
            digest.update(block)
    return digest.hexdigest()[:24]


def onnx_cache_path(ckpt: Path) -> Path:
    """Where the export of `ckpt` is cached: `<home>/data/onnx/<onnx_digest>.onnx`."""
    from genre_cnn.paths import home

    return home() / "data" / "onnx" / f"{onnx_digest(ckpt)}.onnx"


def shipped_onnx_path(ckpt: Path) -> Path:
    """Where an export shipped beside its checkpoint lies: `<stem>.<onnx_digest>.onnx` in the checkpoint's folder
    (the ready model's, written by `train.py --ship`), so a changed checkpoint never uses a stale graph."""
    return Path(ckpt).with_name(f"{Path(ckpt).stem}.{onnx_digest(ckpt)}.onnx")


def answer_path(graph: Path) -> Path:
    """The answer graph that goes with a prediction graph: `<name>.answer.onnx` beside `<name>.onnx`."""
    return Path(graph).with_suffix(".answer.onnx")


def cached_onnx(ckpt: Path) -> Path | None:
    """The export of `ckpt` (with its answer graph) shipped beside it or cached, or None if neither exists
    (or it cannot be read)."""
    try:
        paths = (shipped_onnx_path(ckpt), onnx_cache_path(ckpt))
    except OSError:
        return None
    return next((p for p in paths if p.is_file() and answer_path(p).is_file()), None)


def export_graphs(model, graph: Path) -> Path:
    """Writes `graph` and its answer graph for `model` (see genre_cnn.inference.export); returns `graph`."""
    from genre_cnn.inference.export import export_answer, export_onnx

    export_answer(model, answer_path(graph))
    return export_onnx(model, graph)


def make_onnx(ckpt: Path, model) -> Path | None:
    """Exports `model` (loaded from `ckpt`) into the cache and returns the path; None if its family does not
    export (the dense baseline), onnxruntime is missing, or the exporter cannot trace it (logged; prediction then
    uses torch). A failure to write the cache (a full disk) is raised, as any other bug is."""
    import contextlib
    import importlib.util
    import io
    import logging

    import torch

    from genre_cnn.inference.export import exportable

    if not exportable(model) or importlib.util.find_spec("onnxruntime") is None:
        return None
    out = onnx_cache_path(ckpt)
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # the exporter's progress lines must not reach stdout
            return export_graphs(model, out)
    except (torch.onnx.errors.OnnxExporterError, torch.onnx.errors.UnsupportedOperatorError) as err:
        logging.getLogger(__name__).warning("%s: no ONNX graph (%s); answering with PyTorch", ckpt,
                                            (str(err).strip().splitlines() or [type(err).__name__])[0][:160])
        return None


class OnnxRunner:
    """An exported graph behind the interface of `genre_cnn.inference.predict.predict_track` (numpy in, numpy out).

    Args: path (the .onnx file; its answer graph beside it is used when present, else the windows' probabilities
    are averaged, as for a graph from `genre-cnn export`), threads (onnxruntime intra-op threads; 0: its
    default, all cores), checkpoint (the checkpoint the user asked for, named in `description`; the cached graph
    is shared by checkpoints of the same content, so the path recorded in its metadata may be another copy's).
    """

    def __init__(self, path: Path, threads: int = 0, checkpoint: Path | None = None):
        self.session = _session(path, threads)
        meta = self.session.get_modelmeta().custom_metadata_map
        self.genres: list[str] = json.loads(meta["genres"])
        self.sample_rate = int(meta["sample_rate"])
        self.segment_samples = int(meta["segment_samples"]) if meta.get("segment_samples") else None
        self.clip_samples = int(meta["clip_samples"]) if meta.get("clip_samples") else None
        self.window_step = int(meta["window_step"]) if meta.get("window_step") else None
        outputs = {o.name for o in self.session.get_outputs()}
        head = answer_path(path)
        self.head = _session(head, threads) if "window_values" in outputs and head.is_file() else None
        answers = {o.name for o in self.head.get_outputs()} if self.head is not None else set()
        head_meta = self.head.get_modelmeta().custom_metadata_map if self.head is not None else {}
        # the words of the detector's verdict codes, or None for a model without a detector
        self.verdicts: list[str] | None = (json.loads(head_meta["verdicts"]) if "verdict" in answers
                                           and head_meta.get("verdicts") else None)
        self.description = f"{checkpoint or meta.get('checkpoint') or path} ({meta.get('model_class', '?')}, " \
                           f"{meta.get('trained_on', '')}; ONNX Runtime)"

    def window_probs(self, y: np.ndarray) -> np.ndarray:
        """Mono waveform (samples,) -> window probabilities (K, n)."""
        return self.session.run(["window_probabilities"], {"waveform": _wave(y)})[0]  # (K, n)

    def window_values(self, y: np.ndarray) -> np.ndarray:
        """Mono waveform (samples,) -> the values of its windows (K, D) whose mean `answer` takes."""
        if self.head is None:
            return self.window_probs(y)
        return self.session.run(["window_values"], {"waveform": _wave(y)})[0]  # (K, D)

    def answer(self, means: np.ndarray) -> np.ndarray:
        """Means of window values (B, D) -> genre probabilities (B, n)."""
        if self.head is None:
            return means
        return self.head.run(["probabilities"], {"means": np.ascontiguousarray(means, dtype=np.float32)})[0]

    def openset(self, means: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Means of window values (B, D) -> familiarity (B,), music probability (B,), verdict codes (B,) (`verdicts`);
        only for a graph with a detector."""
        return tuple(self.head.run(["familiarity", "music_probability", "verdict"],
                                   {"means": np.ascontiguousarray(means, dtype=np.float32)}))


def _wave(y: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(y, dtype=np.float32)[None]  # (1, samples)


def _session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
