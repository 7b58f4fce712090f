"""The browser tests' shared pieces: one JupyterLab server and one headless Chromium per
session, and the four notebooks chained in one run folder (01 -> 02 -> 03 -> 04) with the
same small parameters as the papermill tests.

A test that runs alone (`-k nb04`) gets the notebooks before its own run through papermill
first, so each test stands on its own; in the usual order every notebook runs in the browser.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.lab import HOW_TO_GET_A_BROWSER, BrowserMissing, Lab, launch_browser, parameterized_copy
from tests.conftest import ROOT
from tests.notebooks.conftest import ORDER, TINY


def pytest_collection_modifyitems(items):
    for item in items:
        if Path(str(item.fspath)).parent == Path(__file__).parent:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("Playwright is not installed. " + HOW_TO_GET_A_BROWSER, pytrace=False)
    playwright = sync_playwright().start()
    try:
        browser = launch_browser(playwright)
    except BrowserMissing as exc:
        playwright.stop()
        pytest.fail(str(exc), pytrace=False)
    yield browser
    browser.close()
    playwright.stop()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    """Where each test leaves its full-page screenshot for a person to look at."""
    path = Path(os.environ.get("FTUTILS_SCREENSHOTS") or ROOT / "runs" / "screenshots")
    path.mkdir(parents=True, exist_ok=True)
    return path


class Chain:
    """The four notebooks sharing one run folder, as a person runs them one after another."""

    def __init__(self, lab: Lab, run_dir: Path, executed: Path):
        self.lab, self.run_dir, self.executed = lab, run_dir, executed
        self.done: set[str] = set()

    def parameters(self, name: str) -> dict:
        return {"run_dir": str(self.run_dir), **TINY[name], **LIVE.get(name, {})}

    def prepare(self, name: str, extra_cells: list[str] = ()) -> str:
        """Write `name`'s copy into JupyterLab's folder (after running, through papermill,
        whatever before it has not run yet) and return its file name."""
        import papermill as pm

        for earlier in ORDER[: ORDER.index(name)]:
            if earlier not in self.done:
                pm.execute_notebook(str(ROOT / "notebooks" / f"{earlier}.ipynb"),
                                    str(self.executed / f"{earlier}.ipynb"), parameters=self.parameters(earlier),
                                    kernel_name="python3", cwd=str(ROOT), progress_bar=False)
                self.done.add(earlier)
        target = parameterized_copy(ROOT / "notebooks" / f"{name}.ipynb", self.lab.root / f"{name}.ipynb",
                                    self.parameters(name), extra_cells)
        return target.name


# The papermill chain's 03 job (2 epochs of 8) ends within a second on a quiet machine, before
# the monitor can show it running; a person watching needs a job that lasts a few polls.
LIVE = {"03_train": {"n_epochs": 6, "batch_size": 1}}


@pytest.fixture(scope="session")
def lab(local_server, tmp_path_factory):
    """JupyterLab whose kernels reach the session's local server with live widgets."""
    root = tmp_path_factory.mktemp("lab-notebooks")
    env = {"FTUTILS_INTERACTIVE": "1", "FTUTILS_BACKEND": "local"}
    server = Lab(root, tmp_path_factory.mktemp("lab-home"), env=env)
    # A person's kernel has matplotlib's inline backend, not the test run's Agg.
    server.env.pop("MPLBACKEND", None)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def chain(lab, tmp_path_factory) -> Chain:
    return Chain(lab, tmp_path_factory.mktemp("run"), tmp_path_factory.mktemp("executed"))


@pytest.fixture()
def open_notebook(chromium, lab):
    """`open_notebook(file_name)` -> a NotebookPage with its kernel idle; closed (and its
    kernel shut down) after the test."""
    from tests.browser.lab import NotebookPage

    pages = []

    def opener(name: str, **kwargs) -> NotebookPage:
        page = NotebookPage(chromium, lab, name, **kwargs).open()
        pages.append(page)
        return page

    yield opener
    for page in pages:
        page.close()
    lab.close_sessions()


@pytest.fixture()
def run_notebook(chain, open_notebook, screenshots):
    """`run_notebook(name, timeout)`: the chain's copy of `name` opened, run all to the end,
    screenshot taken (before any assertion, so a failed run is seen too), no cell error;
    returns the NotebookPage."""
    def run(name: str, timeout: float):
        nb = open_notebook(chain.prepare(name))
        nb.run_all()
        state = nb.wait_done(timeout=timeout)
        nb.screenshot(screenshots / f"{name}.png")
        assert nb.cell_errors(state) == []
        chain.done.add(name)
        return nb

    return run
