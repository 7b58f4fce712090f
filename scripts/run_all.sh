#!/usr/bin/env bash
# The main job: set up, then run the four notebooks end to end on the local backend
# with their default parameters, into runs/<name>/ (the sources are never overwritten).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The main job is the offline one: local backend even if an OpenAI key is around
# (the notebooks themselves would pick OpenAI then; run them by hand for that).
FTUTILS_BACKEND=local .venv/bin/ftutils run "$@"
