"""Train and compare genre_cnn's models: `python train.py --help` lists every option.

    python train.py                               # the three model families on GTZAN
    python train.py --config configs/demo.yaml    # synthetic demo clips, no download
"""

if __name__ == "__main__":  # not at import: the feature cache's worker processes import this file too
    from genre_cnn.training.train import cli

    cli()
