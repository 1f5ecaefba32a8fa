"""The ready model's open-set answer through PyTorch and through its shipped ONNX graphs: the same verdicts, and how far
apart the scores are, on real recordings as `predict` hears them.

    .venv/bin/python benchmarks/openset_onnx.py

The ready model (genre_cnn/ready/) carries its detector; `train.py --ship` exported it into both graphs (waveform ->
probabilities, window probabilities, window values, familiarity, music probability, verdict; and means -> the same
from the mean of the windows read). Each file goes through genre_cnn.inference.track.track_answer with a TorchRunner
and with an OnnxRunner: music clips, speech, animal sounds, a file shorter than one 3-s patch, a game track (54 s).
Prints each answer and the largest differences.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared"
FILES = [SHARED / "gtzan_unseen/genres/jazz/jazz.00070.flac", SHARED / "gtzan_mini/genres/metal/metal.00003.wav",
         Path("/usr/share/sounds/alsa/Front_Center.wav"),
         Path("/usr/share/tuxpaint/stamps/animals/birds/blackbird.ogg"),
         Path("/usr/share/tuxpaint/stamps/animals/mammals/dogs/dog.ogg"),
         Path("/usr/share/tuxpaint/stamps/animals/mammals/aquatic/whale.ogg"),
         Path("/usr/share/asterisk/sounds/en_US_f_Allison/agent-alreadyon.wav"),
         Path("/usr/share/games/etr/music/race1-jt.ogg")]


def main() -> None:
    from genre_cnn.inference.onnx_predict import OnnxRunner, answer_path, cached_onnx
    from genre_cnn.inference.predict import READY_MODEL, load_model
    from genre_cnn.inference.torch_runner import TorchRunner
    from genre_cnn.inference.track import track_answer

    model = load_model(READY_MODEL)
    graph = cached_onnx(READY_MODEL)
    print(f"load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}; graphs {graph.name} "
          f"({graph.stat().st_size / 1e6:.1f} MB) and {answer_path(graph).name} "
          f"({answer_path(graph).stat().st_size / 1e6:.2f} MB); detector: max distance "
          f"{model.detector.max_distance.item():.2f}, music floor {model.detector.music_floor.item():.3f}")
    engines = TorchRunner(model), OnnxRunner(graph, threads=1)
    worst, same = np.zeros(3), True
    for f in FILES:
        if not f.is_file():
            print(f"{f}: absent, skipped")
            continue
        a, b = (track_answer(r, f) for r in engines)
        diffs = [float(np.abs(a.probs - b.probs).max()), abs(a.music["familiarity"] - b.music["familiarity"]),
                 abs(a.music["music_probability"] - b.music["music_probability"])]
        worst = np.maximum(worst, diffs)
        same &= a.music["verdict"] == b.music["verdict"]
        top = int(np.argmax(a.probs))
        print(f"{f.name}: {model.genres[top]} {a.probs[top]:.2f}, familiarity {a.music['familiarity']:.3f}, music "
              f"probability {a.music['music_probability']:.3f}: {a.music['verdict']} (ONNX: {b.music['verdict']}); "
              f"|ONNX - torch| probabilities {diffs[0]:.1e}, familiarity {diffs[1]:.1e}, music {diffs[2]:.1e}")
    print(f"largest |ONNX - torch|: probabilities {worst[0]:.1e}, familiarity {worst[1]:.1e}, music probability "
          f"{worst[2]:.1e}; every verdict the same: {same}")


if __name__ == "__main__":
    main()
