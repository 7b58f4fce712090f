"""Regenerate docs/images/*.png: the four notebooks in JupyterLab as a person sees them
(live widgets, local backend), and the job monitor mid-training.

    .venv/bin/python scripts/screenshots.py          # the notebooks' own parameters: the canonical run
    .venv/bin/python scripts/screenshots.py --tiny   # tiny model, small data: a quick look, not for the README

The run goes to runs/screenshots-run/ (or --run-dir); full-page screenshots of each notebook
go to runs/screenshots/ beside the README's images. Needs what the browser tests need
(`bash scripts/setup.sh`). Look at every image before committing it.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.lab import Lab, NotebookPage, launch_browser, parameterized_copy  # noqa: E402

ORDER = ["01_access", "02_prepare", "03_train", "04_evaluate"]
# The cell each README image opens at (its source contains this).
HIGHLIGHT = {"01_access": "conn = connect(", "02_prepare": "DatasetBrowser(examples", "03_train": "JobMonitor(",
             "04_evaluate": "ConfusionWidget.from_evaluation("}
MONITOR_JS = """() => { const bar = document.querySelector('.jp-Notebook .widget-hprogress .progress-bar');
  const img = document.querySelector('.jp-Notebook .widget-output img');
  return bar && img ? parseFloat(bar.style.width || '0') : null; }"""


def save_png(page_or_element, path: Path, **kwargs) -> Path:
    """A screenshot, reduced to a 256-colour palette (UI text stays sharp, the file ~3x smaller)."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    page_or_element.screenshot(path=str(path), **kwargs)
    Image.open(path).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(path, optimize=True)
    return path


def show_at(nb: NotebookPage, code: str):
    """Scroll the notebook so the cell whose source contains `code` is at the top."""
    nb.output_of(code).evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")
    nb.page.wait_for_timeout(500)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model and small data (the browser tests' sizes)")
    parser.add_argument("--run-dir", default="runs/screenshots-run")
    parser.add_argument("--images", default=str(ROOT / "docs" / "images"))
    parser.add_argument("--pages", default=str(ROOT / "runs" / "screenshots"), help="full-page screenshots")
    args = parser.parse_args(argv)
    images, pages = Path(args.images), Path(args.pages)

    os.environ.update(FTUTILS_BACKEND="local", FTUTILS_INTERACTIVE="1")
    os.environ.setdefault("FTUTILS_KEEP_CHECKPOINTS", "all")  # as `ftutils run` has it (a server started here)
    os.environ.pop("MPLBACKEND", None)  # a person's kernel draws with the inline backend
    from ftutils.train.connect import connect
    from ftutils.train.runs import project_path

    conn = connect("local")  # started (or found) once here; every kernel finds it through server.json
    print(f"local backend at {conn.base_url}; run in {project_path(args.run_dir)}", flush=True)
    small = {}
    if args.tiny:
        from tests.notebooks.conftest import TINY
        small = TINY

    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as playwright:
        lab = Lab(Path(tmp) / "notebooks", Path(tmp) / "home")
        lab.root.mkdir()
        lab.start()
        browser = launch_browser(playwright)
        try:
            for name in ORDER:
                started = time.monotonic()
                parameterized_copy(ROOT / "notebooks" / f"{name}.ipynb", lab.root / f"{name}.ipynb",
                                   {"run_dir": args.run_dir, **small.get(name, {})})
                nb = NotebookPage(browser, lab, f"{name}.ipynb", height=960).open()
                nb.page.evaluate("window.jupyterapp.shell.collapseLeft()")
                shot = {}

                def mid_training(page):
                    progress = page.page.evaluate(MONITOR_JS)
                    if progress is not None and 25 <= progress <= 75 and not shot:
                        monitor = page.output_of(HIGHLIGHT["03_train"])
                        monitor.evaluate("e => e.closest('.jp-Cell').scrollIntoView({block: 'start'})")
                        shot["at"] = progress
                        save_png(page.page, images / "03_monitor_live.png")

                nb.run_all()
                state = nb.wait_done(timeout=3600, poll=1.0, on_poll=mid_training if name == "03_train" else None)
                errors = nb.cell_errors(state) + nb.widget_problems() + nb.console_errors
                if errors:
                    print(f"{name}: {errors}", file=sys.stderr)
                    return 1
                if name == "04_evaluate":  # show what a click on the matrix does
                    grid = nb.output_of(HIGHLIGHT[name])
                    grid.locator("button:not([disabled])").last.click()
                    grid.locator(".widget-output li").first.wait_for()
                show_at(nb, HIGHLIGHT[name])
                save_png(nb.page, images / f"{name}.png")
                nb.screenshot(pages / f"{name}.png")
                print(f"{name}: {time.monotonic() - started:.0f}s"
                      + (f", monitor caught at {shot['at']:.0f}%" if shot else ""), flush=True)
                nb.close()
                lab.close_sessions()
        finally:
            browser.close()
            lab.stop()
    print(f"images in {images}; full pages in {pages}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
