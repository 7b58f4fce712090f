#!/usr/bin/env bash
# The committed outputs, in one command: the main job on the code as committed (a clean
# working tree is required, so the outputs belong to one commit) on a fresh local backend
# (01_access lists the account's files and jobs: a used data dir would show its history), its
# outputs copied into the committed notebooks, the README's screenshots regenerated, and the
# README told which commit the outputs come from. Then look at every notebook and image, and commit.
#
#     bash scripts/canonical.sh     # refreshes notebooks/*.ipynb (outputs), docs/images/*.png, README.md
#                                   # (the runs themselves stay in runs/demo, runs/demo-2)
#     flock /tmp/ftutils-cpu.lock bash scripts/canonical.sh   # on a machine shared with other heavy runs
#
# FTUTILS_DATA_DIR, if set, must name a folder that does not exist yet (or is empty); by default
# a new one, ~/.ftutils/canonical-<commit>, which the connection table shows as such.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "canonical.sh: commit your changes first: the outputs must come from one commit" >&2
    exit 1
fi
commit=$(git rev-parse --short HEAD)
export FTUTILS_DATA_DIR="${FTUTILS_DATA_DIR:-$HOME/.ftutils/canonical-$commit}"
if [ -e "$FTUTILS_DATA_DIR" ] && [ -n "$(ls -A "$FTUTILS_DATA_DIR")" ]; then
    echo "canonical.sh: $FTUTILS_DATA_DIR is not empty: the canonical run starts from a fresh local backend" >&2
    exit 1
fi
export PYTHONHASHSEED=0 MPLBACKEND=Agg OMP_WAIT_POLICY=PASSIVE
rm -rf runs/demo runs/demo-2
bash scripts/run_all.sh --name demo
.venv/bin/python scripts/refresh_notebook_outputs.py runs/demo
start=$(date +%s)
.venv/bin/python scripts/screenshots.py
echo "screenshots: $(( $(date +%s) - start ))s"
# The README names the commit the outputs come from (between its two markers).
.venv/bin/python - "$commit" <<'PY'
import re, sys
from pathlib import Path
readme = Path("README.md")
text = readme.read_text()
line = (f"The committed notebooks' outputs and the screenshots come from one seeded run of the main job "
        f"(`bash scripts/canonical.sh`) on commit `{sys.argv[1]}`.")
new, n = re.subn(r"(<!-- canonical-run -->\n).*?(\n<!-- /canonical-run -->)", lambda m: m[1] + line + m[2], text, flags=re.S)
if n != 1:
    raise SystemExit("README.md: the <!-- canonical-run --> markers are missing")
readme.write_text(new)
PY
echo "canonical outputs from $commit, refreshed (look at each, then commit them):"
git status --short -- notebooks docs/images README.md
