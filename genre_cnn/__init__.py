"""genre_cnn: music genre classification on GTZAN: a CNN on log-mel + chroma, a dense baseline, musicnn transfer.

Train with `python train.py`, predict with `genre-cnn predict FILE`. See README.md. From Python:

    from genre_cnn import load_model

    from genre_cnn import predict_file
    model = load_model()
    print(predict_file(model, "song.mp3")["top"][0])       # {"genre": ..., "probability": ...}

The names below are imported on first use (PEP 562), so `import genre_cnn` imports neither torch nor numpy.
"""

import importlib

__version__ = "0.1.0"

_LAZY = {"load_model": "genre_cnn.inference.api", "predict_file": "genre_cnn.inference.api",
         "predict_waveform": "genre_cnn.inference.api", "predict_files": "genre_cnn.inference.api",
         "default_checkpoint": "genre_cnn.models.checkpoint"}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'genre_cnn' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_LAZY])
