#!/usr/bin/env bash
# The main job: set up, then run the five notebooks end to end on the local backend
# with their default parameters, into runs/<name>/ (the sources are never overwritten);
# 05_iterate adds the run its evaluation recommends, runs/<name>-2/. Seeded: the same
# machine gives the same numbers. Prints its wall time (set-up not counted).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
start=$(date +%s)
# The main job is the offline one: local backend even if an OpenAI key is around
# (the notebooks themselves would pick OpenAI then; run them by hand for that).
FTUTILS_BACKEND=local .venv/bin/ftutils run "$@"
elapsed=$(( $(date +%s) - start ))
printf 'main job: %dm%02ds wall time (after set-up)\n' $((elapsed / 60)) $((elapsed % 60))
