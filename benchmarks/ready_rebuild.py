"""Does a rebuilt ready model answer as the shipped one? Both musicnn heads on the 190 clips of configs/ready.yaml.

    .venv/bin/python train.py --config configs/ready.yaml --ship /tmp/ready/m.ckpt
    .venv/bin/python benchmarks/ready_rebuild.py genre_cnn/ready/musicnn_gtzan_mini.ckpt /tmp/ready/m.ckpt

Both heads see the clips' cached embeddings (the frozen tagger is the same for both); printed: how often their top
genre agrees, how far their probabilities are apart, and each one's temperature and size on disk. (Both trained on
these clips: agreement, not accuracy, is the measure.)
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    import torch
    import yaml

    from genre_cnn.data.sources.folder import Folder
    from genre_cnn.data.store import FeatureStore
    from genre_cnn.inference.predict import load_model
    from genre_cnn.models.families.musicnn import MusicnnClassifier as M

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", type=Path, nargs=2)
    args = parser.parse_args()
    config = yaml.safe_load((REPO / "configs" / "ready.yaml").read_text())
    source, store = Folder(config["data"]["source"]["init_args"]["data_dir"]), FeatureStore()
    store.prepare(source, M.features(None))
    clips = store.clipset(source, M.features(None), M.cached, M.pool)
    x = torch.from_numpy(clips.features.astype(np.float32))  # (190, 250)
    probs = []
    for path in args.checkpoints:
        model = load_model(path)
        assert model.genres == clips.genres
        with torch.no_grad():
            probs.append(model.clip_probs(x)[0].numpy())  # (190, n)
        print(f"{path}: {path.stat().st_size / 1e6:.2f} MB, temperature {float(model.temperature):.2f}")
    a, b = probs
    unseen = np.array(["/gtzan_unseen/" in k for k in clips.keys])
    agree = a.argmax(1) == b.argmax(1)
    print(f"same top genre on {agree.mean():.1%} of {len(agree)} clips ({agree[unseen].mean():.1%} of the "
          f"{unseen.sum()} gtzan_unseen ones); probabilities apart by {np.abs(a - b).mean():.3f} on average, "
          f"{np.abs(a - b).max():.3f} at most; top probability {a.max(1).mean():.3f} vs {b.max(1).mean():.3f}")


if __name__ == "__main__":
    main()
