"""01_access in JupyterLab: the connection and what the API offers, as a person sees them."""
from __future__ import annotations

from tests.conftest import TEST_KEY


def test_connection_and_models(run_notebook):
    nb = run_notebook("01_access", timeout=60)

    text = nb.page.inner_text(".jp-Notebook")
    # The connection table: local backend, the key masked to its last four characters only.
    table = nb.page.locator(".jp-OutputArea-output table", has_text="key from").first
    rows = dict(line.split("\t", 1) for line in table.inner_text().splitlines() if "\t" in line)
    assert rows["backend"] == "local"
    assert rows["key"].endswith(TEST_KEY[-4:]) and "…" in rows["key"]
    assert TEST_KEY not in text and TEST_KEY[:-4] not in text
    # The check's verdict and the models that can be fine-tuned, tiny-smollm2 among them.
    assert "OK:" in text
    assert "tiny-smollm2" in text
    assert "What works where today" in text and "2027-01-06" in text
    assert nb.widget_problems() == []
    assert nb.layout_problems() == []
    assert nb.console_errors == []
