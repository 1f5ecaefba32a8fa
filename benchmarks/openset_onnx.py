"""The open-set detector inside the ready model's ONNX graph: extra outputs beside the probabilities, torch = ONNX.

    .venv/bin/python benchmarks/openset_onnx.py                 # after benchmarks/openset.py (its caches under --work)

Fits the detector of genre_cnn.models.openset as chosen in BENCHMARKS.md (Mahalanobis familiarity and the music
probability, both gating, fitted on the ready model's 190 clips and the tune sets of benchmarks/openset_sources.py),
exports waveform -> (probabilities, window_probabilities, familiarity, music_probability, verdict) as one graph
through torch.onnx (as genre_cnn.inference.export does), and compares PyTorch with ONNX Runtime on real recordings:
music clips, speech, animal sounds, a file shorter than one 3-s patch. Prints each answer.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
SHARED = REPO.parent / "shared"


class WithDetector(nn.Module):
    """waveform (1, samples) -> probabilities (1, n), window probabilities (K, n), familiarity (1,), music
    probability (1,), verdict (1,) int64: the export wrapper's computation plus the detector on the same embedding."""

    def __init__(self, model: nn.Module, detector: nn.Module):
        super().__init__()
        self.model, self.detector = model, detector

    def forward(self, waveform: torch.Tensor):
        emb = self.model.track_inputs(waveform[0])[None]  # (1, 250): the clip-mean embedding the head sees
        probs, window_probs = self.model.clip_probs(emb)  # (1, n), (1, 1, n)
        familiarity, music, verdict = self.detector(emb)
        return probs, window_probs[0], familiarity, music, verdict


def main() -> None:
    import onnxruntime as ort
    from genre_cnn.training.make_ready import clip_embeddings, link_sources, load_config
    from openset import load_sets
    from torch.export import Dim

    from genre_cnn.audio.decode import PREDICT_MIN_SECONDS, load_audio
    from genre_cnn.inference.predict import load_model
    from genre_cnn.models.checkpoint import READY_MODEL
    from genre_cnn.models.openset import fit_detector, verdict_names
    from genre_cnn.paths import home

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("/tmp/openset"))
    args = parser.parse_args()
    _, y, x, _ = clip_embeddings(link_sources(load_config()["sources"], home() / "data" / "ready_clips"))
    sets = load_sets(args.work)
    tune = np.concatenate([e for s, e, _ in sets.values() if s.role == "tune"])
    detector = fit_detector(x, y, tune, music_gate=True)
    model = load_model(READY_MODEL)
    wrapper = WithDetector(model, detector).eval()
    example = 0.1 * torch.randn(1, 16000 * 30)  # (1, samples)
    graph = Path(tempfile.mkdtemp()) / "ready_with_detector.onnx"
    program = torch.onnx.export(wrapper, (example,), dynamo=True, verbose=False, input_names=["waveform"],
                                output_names=["probabilities", "window_probabilities", "familiarity",
                                              "music_probability", "verdict"],
                                dynamic_shapes={"waveform": {1: Dim("samples", min=4096, max=16000 * 3600)}})
    program.save(str(graph))
    session = ort.InferenceSession(str(graph))
    files = [SHARED / "gtzan_unseen/genres/jazz/jazz.00070.flac", SHARED / "gtzan_mini/genres/metal/metal.00003.wav",
             Path("/usr/share/sounds/alsa/Front_Center.wav"),
             Path("/usr/share/tuxpaint/stamps/animals/birds/blackbird.ogg"),
             Path("/usr/share/tuxpaint/stamps/animals/mammals/dogs/dog.ogg"),
             Path("/usr/share/tuxpaint/stamps/animals/mammals/aquatic/whale.ogg"),
             args.work / "audio/synthesised_speech/espeak_000.wav"]
    print(f"graph: {graph} ({graph.stat().st_size / 1e6:.1f} MB); detector: max distance "
          f"{detector.max_distance.item():.3f}, music floor {detector.music_floor.item():.4f}")
    worst = np.zeros(4)
    for f in files:
        if not f.is_file():
            print(f"{f}: absent, skipped")
            continue
        wave = load_audio(f, 16000, min_seconds=PREDICT_MIN_SECONDS)[None]  # (1, samples)
        with torch.no_grad():
            want = [t.numpy() for t in wrapper(torch.from_numpy(wave))]
        got = session.run(None, {"waveform": wave})
        diffs = [float(np.abs(np.asarray(g, np.float64) - w).max()) for g, w in zip(got[:4], want[:4])]
        worst = np.maximum(worst, diffs)
        same = bool((got[4] == want[4]).all())
        print(f"{f.name} ({wave.shape[1] / 16000:.1f} s): top {model.genres[int(want[0].argmax())]} "
              f"{want[0].max():.2f}, familiarity {want[2][0]:.3f}, music {want[3][0]:.3f}, verdict "
              f"{verdict_names(want[4])[0]}; ONNX - torch: probabilities {diffs[0]:.1e}, familiarity {diffs[2]:.1e}, "
              f"music {diffs[3]:.1e}, verdict the same: {same}")
    print(f"largest |ONNX - torch|: probabilities {worst[0]:.1e}, window probabilities {worst[1]:.1e}, familiarity "
          f"{worst[2]:.1e}, music probability {worst[3]:.1e}")


if __name__ == "__main__":
    main()
