"""JupyterLab in headless Chromium, driven the way a person drives it: open a notebook, wait
for its kernel, Run All, look at what is on the page.

Used by the browser tests and by scripts/screenshots.py. Nothing here knows about ftutils'
notebooks beyond how to give them parameters (papermill's own injected cell).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx

from ftutils.local.server_process import free_port

HOW_TO_GET_A_BROWSER = (
    "The browser tests need Playwright's Python package and a Chromium it can drive. "
    "`bash scripts/setup.sh` installs both (as root on Debian/Ubuntu it runs "
    "`apt-get install chromium fonts-dejavu-core`; elsewhere `python -m playwright install chromium`). "
    "Or point FTUTILS_CHROMIUM at a Chromium or Chrome binary.")

# Flags: root in a container needs --no-sandbox; /dev/shm is often tiny; nothing may phone home.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-default-apps",
                 "--disable-features=Translate,MediaRouter,OptimizationHints"]

# Settings a newcomer would not notice but a test must: every cell in the DOM (JupyterLab
# virtualises long notebooks, so off-screen outputs could not be asserted on or screenshotted),
# and no "news" question covering the page.
LAB_SETTINGS = {
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false",
                                                                       "checkForUpdates": False},
}


class BrowserMissing(RuntimeError):
    pass


def find_chromium() -> str | None:
    """A Chromium binary to give Playwright, or None to let Playwright use its own download."""
    for candidate in (os.environ.get("FTUTILS_CHROMIUM"), "/usr/lib/chromium/chromium",
                      shutil.which("chromium"), shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and Path(candidate).is_file() and os.access(candidate, os.X_OK):
            return candidate
    return None


def launch_browser(playwright):
    """Headless Chromium, or BrowserMissing saying how to get one."""
    executable = find_chromium()
    try:
        return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
    except Exception as exc:  # Playwright raises its own Error for a missing or broken browser
        found = f"tried {executable}" if executable else "found no chromium on this machine"
        raise BrowserMissing(f"Chromium could not be started ({found}: {str(exc).splitlines()[0]}). "
                             + HOW_TO_GET_A_BROWSER) from exc


def parameterized_copy(source: Path, target: Path, parameters: dict, extra_cells: list[str] = ()) -> Path:
    """`source` with papermill's injected-parameters cell (the same cell papermill runs), and
    optional code cells appended, written to `target`."""
    import nbformat
    from papermill.iorw import load_notebook_node
    from papermill.parameterize import parameterize_notebook

    nb = parameterize_notebook(load_notebook_node(str(source)), parameters, kernel_name="python3")
    for code in extra_cells:
        nb.cells.append(nbformat.v4.new_code_cell(code))
    nb.metadata.pop("papermill", None)
    target.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, target)
    return target


class Lab:
    """A JupyterLab server on 127.0.0.1 with a token, its config, runtime and settings in `home`."""

    def __init__(self, root: Path, home: Path, env: dict | None = None):
        self.root, self.home = Path(root), Path(home)
        self.token = os.urandom(12).hex()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **(env or {})}
        self.process = None
        self.log = self.home / "jupyterlab.log"

    def start(self, timeout: float = 60) -> "Lab":
        dirs = {name: self.home / name for name in ("config", "runtime", "settings", "workspaces", "data")}
        for path in dirs.values():
            path.mkdir(parents=True, exist_ok=True)
        # No terminals: the notebooks do not use them. (jupyter_lsp stays: the page asks it for its status.)
        (dirs["config"] / "jupyter_server_config.json").write_text(json.dumps(
            {"ServerApp": {"jpserver_extensions": {"jupyter_server_terminals": False}, "terminals_enabled": False}}))
        for rel, values in LAB_SETTINGS.items():
            path = dirs["settings"] / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(values))
        env = {**self.env, "JUPYTER_CONFIG_DIR": str(dirs["config"]), "JUPYTER_RUNTIME_DIR": str(dirs["runtime"]),
               "JUPYTERLAB_SETTINGS_DIR": str(dirs["settings"]),
               "JUPYTERLAB_WORKSPACES_DIR": str(dirs["workspaces"]), "JUPYTER_DATA_DIR": str(dirs["data"])}
        cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
               f"--port={self.port}", f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={self.root}",
               "--LabApp.expose_app_in_browser=True", "--ServerApp.open_browser=False"]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                            env=env, cwd=self.root)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}: {self.log_tail()}")
            try:
                if self.api("get", "/api/status").status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"JupyterLab did not answer within {timeout:.0f}s: {self.log_tail()}")

    def api(self, method: str, path: str, **kwargs) -> httpx.Response:
        return httpx.request(method, self.url + path, headers={"Authorization": f"token {self.token}"},
                             timeout=10, **kwargs)

    def log_tail(self, n: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-n:] if self.log.exists() else "(no log)"

    def close_sessions(self):
        """Shut down every kernel (what closing the notebooks and their kernels does)."""
        for session in self.api("get", "/api/sessions").json():
            self.api("delete", f"/api/sessions/{session['id']}")

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.close_sessions()
            self.api("post", "/api/shutdown")
            self.process.wait(timeout=15)
        except (httpx.HTTPError, subprocess.TimeoutExpired):
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


# What the page says about the notebook, read from JupyterLab's own models.
NOTEBOOK_STATE_JS = """() => {
  const w = window.jupyterapp && window.jupyterapp.shell.currentWidget;
  if (!w || !w.content || !w.content.model || !w.sessionContext) return null;
  const cells = [];
  const model = w.content.model.cells;
  for (let i = 0; i < model.length; i++) {
    const c = model.get(i);
    if (c.type !== 'code') continue;
    cells.push({index: i, count: c.executionCount, outputs: c.outputs.toJSON(),
                source: c.sharedModel.getSource()});
  }
  const kernel = w.sessionContext.session && w.sessionContext.session.kernel;
  return {kernel: kernel ? kernel.status : null, cells: cells,
          busy: document.querySelectorAll('.jp-InputPrompt').length
                && [...document.querySelectorAll('.jp-InputPrompt')].some(p => p.textContent.includes('*'))};
}"""


class NotebookPage:
    """One notebook open in its own browser page, with the page's console errors collected."""

    def __init__(self, browser, lab: Lab, name: str, width: int = 1280, height: int = 1000):
        self.lab, self.name = lab, name
        self.page = browser.new_page(viewport={"width": width, "height": height})
        self.console_errors: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(
            f"{m.text} ({m.location.get('url', '')})"))
        self.page.on("pageerror", lambda e: self.console_errors.append(f"page error: {e}"))

    def open(self, timeout: float = 60) -> "NotebookPage":
        # reset: a fresh workspace, so tabs of notebooks opened before do not come back (with kernels).
        self.page.goto(f"{self.lab.url}/lab/tree/{self.name}?reset&token={self.lab.token}")
        self.page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                                    " && window.jupyterapp.shell.currentWidget.sessionContext",
                                    timeout=timeout * 1000)
        self.wait_idle(timeout)
        return self

    def wait_idle(self, timeout: float = 60):
        # The toolbar's indicator says idle before a kernel exists; the status bar only once it does.
        self.page.wait_for_selector(".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=timeout * 1000)
        self.page.wait_for_function(
            "() => [...document.querySelectorAll('.jp-StatusBar-TextItem')].some(e => /Idle/.test(e.textContent))"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel"
            " && window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status === 'idle'",
            timeout=timeout * 1000)

    def run_all(self):
        # Not awaited: the command's promise settles only when the last cell has run.
        self.page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")

    def state(self) -> dict:
        return self.page.evaluate(NOTEBOOK_STATE_JS)

    def wait_done(self, timeout: float, poll: float = 0.5, on_poll=None) -> dict:
        """Wait until every code cell ran (or one failed and Run All stopped); `on_poll(self)`
        is called meanwhile, for tests that watch something change while cells run."""
        deadline = time.monotonic() + timeout
        seen_busy = False
        while True:
            if on_poll is not None:
                on_poll(self)
            state = self.state()
            cells = state["cells"]
            seen_busy = seen_busy or state["kernel"] == "busy" or any(c["count"] for c in cells)
            failed = any(o.get("output_type") == "error" for c in cells for o in c["outputs"])
            if seen_busy and state["kernel"] == "idle" and not state["busy"] and (
                    failed or all(c["count"] for c in cells)):
                return state
            if time.monotonic() > deadline:
                pending = [c["index"] for c in cells if not c["count"]]
                raise TimeoutError(f"{self.name}: cells {pending} had not run after {timeout:.0f}s "
                                   f"(kernel {state['kernel']})")
            self.page.wait_for_timeout(poll * 1000)

    def cell_errors(self, state: dict | None = None) -> list[str]:
        state = state or self.state()
        found = []
        for cell in state["cells"]:
            for out in cell["outputs"]:
                if out.get("output_type") == "error":
                    found.append(f"cell {cell['index']}: {out.get('ename')}: {out.get('evalue')}")
                elif out.get("name") == "stderr" and "Traceback" in "".join(out.get("text", "")):
                    found.append(f"cell {cell['index']} printed a traceback: {''.join(out['text'])[-500:]}")
        return found

    def widget_problems(self) -> list[str]:
        text = self.page.inner_text(".jp-Notebook")
        return [phrase for phrase in ("Error displaying widget", "Loading widget", "Failed to load model class")
                if phrase in text]

    def layout_problems(self, min_scale: float = 0.8) -> list[str]:
        """What a person would have to scroll sideways or squint at: an output wider than its
        box that does not scroll inside it, and an image shown below `min_scale` of its size."""
        return self.page.evaluate("""(minScale) => {
          const found = [];
          const panel = window.jupyterapp.shell.currentWidget.node.querySelector('.jp-WindowedPanel-outer');
          if (panel.scrollWidth > panel.clientWidth + 1) found.push('the notebook scrolls sideways');
          for (const o of document.querySelectorAll('.jp-Notebook .jp-OutputArea-output')) {
            const scrolls = ['auto', 'scroll'].includes(getComputedStyle(o).overflowX);
            if (o.scrollWidth > o.clientWidth + 1 && !scrolls)
              found.push('runs off its box: ' + o.innerText.slice(0, 60).replace(/\\s+/g, ' '));
          }
          for (const img of document.querySelectorAll('.jp-Notebook .jp-OutputArea-output img')) {
            if (img.naturalWidth && img.clientWidth < minScale * img.naturalWidth)
              found.push(`image ${img.naturalWidth}px shown at ${img.clientWidth}px`);
          }
          return found;
        }""", min_scale)

    def output_of(self, code: str):
        """The output area of the one code cell whose source contains `code` (a locator).
        Found through the notebook's model: an editor off screen need not render its text."""
        found = [c["index"] for c in self.state()["cells"] if code in c["source"]]
        assert len(found) == 1, f"{len(found)} cells contain {code!r}"
        return self.page.locator(".jp-Notebook .jp-Cell").nth(found[0]).locator(".jp-Cell-outputArea")

    def images_loaded(self, locator) -> list[int]:
        """Natural widths of the images under `locator` (0: broken or not loaded)."""
        return locator.locator("img").evaluate_all("imgs => imgs.map(i => i.complete ? i.naturalWidth : 0)")

    def screenshot(self, path: Path, max_height: int = 16000) -> Path:
        """The whole notebook: JupyterLab fills one screen and scrolls inside, so the file
        browser is folded away and the window made as tall as the notebook first."""
        self.page.evaluate("window.jupyterapp.shell.collapseLeft()")
        self.page.wait_for_timeout(300)
        scroller = "window.jupyterapp.shell.currentWidget.node.querySelector('.jp-WindowedPanel-outer')"
        height = self.page.evaluate(f"() => {scroller}.scrollHeight")
        size = self.page.viewport_size
        self.page.set_viewport_size({"width": size["width"], "height": min(max_height, int(height) + 140)})
        self.page.wait_for_timeout(300)
        self.page.evaluate(f"() => {{ {scroller}.scrollTop = 0; }}")
        self.page.wait_for_timeout(300)
        path.parent.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(path=str(path), full_page=True)
        self.page.set_viewport_size(size)
        return path

    def close(self):
        self.page.close()
