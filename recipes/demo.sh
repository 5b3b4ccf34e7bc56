#!/usr/bin/env bash
# The main job end to end on a fresh machine (as root): a Docker engine, the local base image, then
# build, run and verify the digits-mlp recipe.   Usage: bash recipes/demo.sh
# The four commands after `set -x` are README's, word for word (tests/unit/test_readme.py keeps them so).
set -euo pipefail
cd "$(dirname "$0")/.."

bash .ci/docker-engine.sh
[ -x .venv/bin/repropack ] || { python3 -m venv .venv && .venv/bin/pip install -q -e .; }
export PATH="$PWD/.venv/bin:$PATH"

set -x
repropack base build debian-bookworm
repropack build recipes/digits-mlp/experiment.yaml --tag digits-mlp:demo
docker run --rm -v "$PWD/out:/output" digits-mlp:demo train
repropack verify digits-mlp:demo
