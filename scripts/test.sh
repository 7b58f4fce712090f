#!/usr/bin/env bash
# The whole test suite: package tests, papermill runs of every notebook, nbval of the
# committed notebooks. Sets up .venv first (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# PASSIVE: spinning OpenMP waits slow torch badly when processes share the 2 cores.
export PYTHONHASHSEED=0 MPLBACKEND=Agg OMP_WAIT_POLICY=PASSIVE
.venv/bin/python -m pytest tests "$@"
