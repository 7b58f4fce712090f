"""The threading environment of every process that runs torch, set in one place.

OpenMP threads that spin while waiting make every op crawl when the CPU is shared (API
process, worker, tests): we measured small matmuls 100x and SmolLM2 decoding 7x slower on
2 threads than on 1; sleeping waits cost nothing measurable when the CPU is free. The
variable only takes effect if set before torch loads, so every module that imports torch
imports this first (`import ftutils.threads  # noqa: F401`).
"""
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
