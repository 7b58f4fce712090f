#!/usr/bin/env bash
# One command to check a machine with a GPU: trains the walkthrough's job (and a 1B-class model from
# a local Hugging Face folder, if given) through a real local server, serves it, and prints training
# and generation tokens/s and the GPU's memory. Needs a CUDA build of torch (setup.sh installs the
# CPU wheel: on a GPU box, `pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128`
# or the build for its CUDA first).
#   bash scripts/gpu_check.sh [MODEL_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup.sh
exec .venv/bin/python scripts/gpu_check.py "$@"
