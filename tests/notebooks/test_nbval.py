"""nbval in lax mode over the committed notebooks: cells marked `# NBVAL_CHECK_OUTPUT`
must reproduce their committed output (after tests/sanitize.cfg); the rest only must run.

The committed notebooks carry the canonical run's outputs and default parameters; to keep
the suite fast they run here with the same small parameters as the papermill chain,
injected after the `parameters` cell (papermill's way), so a checked cell must not depend
on those parameters.
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

NBVAL = ORDER + ["06_preference"]  # 06 stands alone; it runs after the chain


def test_committed_notebooks_reproduce_checked_outputs(local_server, tmp_path):
    run_dir = tmp_path / "run"
    prepared = []
    for name in NBVAL:
        nb = nbformat.read(ROOT / "notebooks" / f"{name}.ipynb", as_version=4)
        checked = [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("# NBVAL_CHECK_OUTPUT")]
        assert all(c.get("outputs") for c in checked), f"{name}: a checked cell has no committed output"
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
