"""What `ftutils run` prints while a notebook runs: nothing for quick cells, a line per
interval for a long one (notebook, cell i/N, its first line), and no kernel warnings."""
import io

import nbformat

from ftutils.suite.progress import CellProgress, execute


def test_long_cells_report_themselves_and_the_kernel_stays_quiet(tmp_path, capfd):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("pause = 0")
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# a notebook"), params, nbformat.v4.new_code_cell("x = 1"),
                nbformat.v4.new_code_cell("# waits\nimport time\ntime.sleep(pause)")]
    source = tmp_path / "nb.ipynb"
    nbformat.write(nb, source)

    execute(source, tmp_path / "out.ipynb", {"pause": 2.5}, tmp_path, "run/nb", every=1.0)
    out, err = capfd.readouterr()
    lines = [line for line in out.splitlines() if line.startswith("[run/nb]")]
    # 4 code cells: the parameters, papermill's injected cell, x = 1 and the sleeping one.
    assert lines and all(line.startswith("[run/nb] cell 4/4 (") and line.endswith("): import time")
                         for line in lines), out
    assert 1 <= len(lines) <= 3
    assert "without encryption" not in err + out


def test_a_line_names_the_cell_without_a_client(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = " + "1 + " * 40 + "1")]
    nbformat.write(nb, tmp_path / "nb.ipynb")
    progress = CellProgress("r/nb", tmp_path / "nb.ipynb", out=io.StringIO())
    progress.on_cell_start(nb.cells[0], 0)
    line = progress.line()
    assert line.startswith("[r/nb] cell 1/1 (0s): x = 1 + ") and line.endswith("…") and progress.job_progress() is None
