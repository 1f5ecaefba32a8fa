"""Train and compare genre_cnn's models: `python train.py --help` lists every option.

    python train.py                               # CNN + dense baseline on GTZAN
    python train.py --config configs/demo.yaml    # synthetic demo, under a minute, no download
"""

from genre_cnn.train import cli

if __name__ == "__main__":
    cli()
