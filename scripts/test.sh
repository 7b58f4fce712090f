#!/usr/bin/env bash
# The whole test suite: package tests, papermill runs of every notebook, nbval of the
# committed notebooks. Sets up .venv first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PYTHONHASHSEED=0 MPLBACKEND=Agg
.venv/bin/python -m pytest tests "$@"
