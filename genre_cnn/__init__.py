"""genre_cnn: music genre classification on GTZAN: a CNN on log-mel + chroma, a dense baseline, musicnn transfer.

Train with `python train.py`, predict with `genre-cnn predict FILE`. See README.md.
"""

__version__ = "0.1.0"
