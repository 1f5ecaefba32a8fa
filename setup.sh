#!/usr/bin/env bash
# Creates .venv beside this file and installs genre_cnn into it (editable), with the dev (tests, export), app (web page), beets (the genrecnn plugin), stream (LitData shards) and cluster (Ray Data) extras, LitData and the musicnn weights.
#   bash setup.sh            # idempotent: a second run only checks
# torch is pinned to 2.13.0 first, so that pip never swaps it for a newer (multi-GB CUDA) build.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,app,beets,stream,cluster]"
# LitData, for --data.streaming: --no-deps, since it declares torchvision (used only for images and video), whose
# wheels pull another torch build; the `stream` extra above installs what it does use
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "litdata==0.2.76"
# the pretrained musicnn weights (a TensorFlow checkpoint, ISC licence): --no-deps, since the wheel pins numpy<1.17
# and TensorFlow, neither of which genre_cnn uses (genre_cnn/models/tfbundle.py reads the checkpoint)
.venv/bin/python -m pip install -q --disable-pip-version-check --no-deps "musicnn==0.1.0"
