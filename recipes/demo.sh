#!/usr/bin/env bash
# The main job end to end on a fresh machine (as root): a Docker engine, the local base image, then
# build, run and verify a recipe.   Usage: bash recipes/demo.sh [RECIPE]   (default: digits-mlp)
set -euo pipefail
cd "$(dirname "$0")/.."
recipe="${1:-digits-mlp}"

bash .ci/docker-engine.sh
[ -x .venv/bin/repropack ] || { python3 -m venv .venv && .venv/bin/pip install -q -e .; }
export PATH="$PWD/.venv/bin:$PATH"

set -x
docker image inspect repropack/base:debian-bookworm >/dev/null 2>&1 || repropack base build debian-bookworm
tag=$(repropack build "recipes/$recipe/experiment.yaml" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["tag"])')
mkdir -p "out/$recipe"
docker run --rm -v "$PWD/out/$recipe:/output" "$tag" train
repropack verify "$tag"
