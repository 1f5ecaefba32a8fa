#!/usr/bin/env bash
# Creates .venv beside this file and installs genre_cnn into it (editable), with the test and export extras.
#   bash setup.sh            # idempotent: a second run only checks
# torch is pinned to 2.13.0 first, so that pip never swaps it for a newer (multi-GB CUDA) build.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==${TORCH_VERSION:-2.13.0}"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[dev,app]"
