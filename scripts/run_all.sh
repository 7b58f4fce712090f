#!/usr/bin/env bash
# The main job: set up, then run the four notebooks end to end on the local backend
# with their default parameters, into runs/<name>/ (the sources are never overwritten).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ftutils run "$@"
