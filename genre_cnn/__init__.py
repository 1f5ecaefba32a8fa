"""genre_cnn: music genre classification on GTZAN with a 1-D CNN on log-mel + chroma.

Train with `python train.py`, predict with `genre-cnn predict FILE`. See README.md.
"""

__version__ = "0.1.0"
