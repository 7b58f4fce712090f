"""nbval in lax mode over the committed notebooks that hold checked cells: a cell tagged
`nbval-check-output` (cell metadata, nbval's own tag: nothing in the source a reader sees)
must reproduce its committed output (after tests/sanitize.cfg); the rest only must run.

Only the notebooks with a checked cell run here (01-03): that every notebook runs from its
committed source is the papermill chain's job (tests/notebooks/conftest.py), and running
04-06 a second time, 05 with a second training, would only repeat it. The committed notebooks
carry the canonical run's outputs and default parameters; to keep the suite fast they run here
with the same small parameters as the papermill chain, injected after the `parameters` cell
(papermill's way), so a checked cell must not depend on those parameters.
"""
from __future__ import annotations

import os
import subprocess
import sys

import nbformat
from papermill.iorw import load_notebook_node
from papermill.parameterize import parameterize_notebook

from tests.conftest import ROOT
from tests.notebooks.conftest import ORDER, TINY

CHECKED = "nbval-check-output"
NBVAL = ["01_access", "02_prepare", "03_train"]


def checked_cells(name: str) -> list:
    nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
    return [c for c in nb.cells if c.cell_type == "code" and CHECKED in c.metadata.get("tags", [])]


def test_no_marker_comments_in_the_visible_source_and_checked_cells_hold_outputs():
    for name in ORDER + ["06_preference"]:
        text = (ROOT / "notebooks" / f"{name}.ipynb").read_text()
        assert "NBVAL_" not in text, f"{name}: nbval markers belong in cell tags, not in the source"
        assert all(c.get("outputs") for c in checked_cells(name)), f"{name}: a checked cell has no committed output"
    assert [n for n in ORDER + ["06_preference"] if checked_cells(n)] == NBVAL



def test_committed_notebooks_reproduce_checked_outputs(local_server, tmp_path):
    run_dir = tmp_path / "run"
    prepared = []
    for name in NBVAL:
        # papermill's loader adds the metadata (tags, papermill) its parameterize expects.
        nb = parameterize_notebook(load_notebook_node(str(ROOT / "notebooks" / f"{name}.ipynb")),
                                   {"run_dir": str(run_dir), **TINY[name]})
        path = tmp_path / f"{name}.ipynb"
        nbformat.write(nb, path)
        prepared.append(str(path))

    env = {**os.environ, "FTUTILS_INTERACTIVE": "0", "MPLBACKEND": "Agg"}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval-lax",
         "--nbval-current-env", "--nbval-sanitize-with", str(ROOT / "tests" / "sanitize.cfg"),
         "--rootdir", str(tmp_path), *prepared],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=900,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert " passed" in result.stdout
