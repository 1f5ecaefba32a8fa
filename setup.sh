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
# mutagen's own test files (about 100 real files with broken and unusual tags and streams) for tests/test_tag_mutagen.py,
# into data/mutagen-tests/ (git-ignored; tests never use the network and skip, saying so, without them)
if [ ! -d data/mutagen-tests ]; then
    tmp=$(mktemp -d)
    if .venv/bin/python -m pip download -q --disable-pip-version-check --no-deps --no-binary :all: "mutagen==1.48.1" -d "$tmp" &&
        tar -xzf "$tmp"/mutagen-1.48.1.tar.gz -C "$tmp" mutagen-1.48.1/tests/data; then
        mv "$tmp"/mutagen-1.48.1/tests/data data/mutagen-tests
    else
        echo "warning: mutagen's test files could not be fetched: tests/test_tag_mutagen.py will be skipped" >&2
    fi
    rm -rf "$tmp"
fi
