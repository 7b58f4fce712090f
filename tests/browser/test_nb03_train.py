"""03_train in JupyterLab: the job monitor lives while the job trains, and its Cancel button
cancels a job from the notebook's own monitor cells while Run All is still going."""
from __future__ import annotations

import time

from tests.conftest import ROOT

# What the page shows of each monitor, read in one go (cheap enough to poll every ~0.3 s).
MONITORS_JS = """() => [...document.querySelectorAll('.jp-Notebook .jp-Cell')].map((cell, i) => {
  const bar = cell.querySelector('.widget-hprogress .progress-bar');
  if (!bar) return null;
  const img = cell.querySelector('.widget-output img');
  const pre = cell.querySelector('.widget-html pre');
  const html = [...cell.querySelectorAll('.widget-html')].map(e => e.innerText);
  return {cell: i, progress: parseFloat(bar.style.width || '0'), status: html[0] || '',
          plot: img ? img.src.length + ':' + img.src.slice(-48) : null,
          log_lines: pre ? pre.innerText.split('\\n').filter(Boolean).length : 0,
          checkpoint_rows: cell.querySelectorAll('.widget-html table tbody tr').length,
          cancel_enabled: [...cell.querySelectorAll('button')].some(b => /Cancel/.test(b.innerText) && !b.disabled)};
}).filter(Boolean)"""


def monitor_cells(source: str) -> list[str]:
    """The notebook's own cells from `JobMonitor(` to the one that waits for the job."""
    import nbformat

    cells = [c.source for c in nbformat.read(source, as_version=4).cells if c.cell_type == "code"]
    first = next(i for i, s in enumerate(cells) if "JobMonitor(" in s)
    last = next(i for i in range(first, len(cells)) if "monitor.finished(" in cells[i] or "monitor.wait(" in cells[i])
    return cells[first:last + 1]


SECOND_JOB = ("# Added by the browser test: a second, longer job to cancel from its monitor.\n"
              "job = jobs.launch(conn.client, train_file.id, validation_file.id, model=model, n_epochs=20,\n"
              "                  batch_size=1, seed=seed, suffix='cancel-me')")


def test_monitor_live_and_cancel(chain, open_notebook, screenshots, local_server):
    copied = monitor_cells(str(ROOT / "notebooks" / "03_train.ipynb"))
    nb = open_notebook(chain.prepare("03_train", [SECOND_JOB, *copied, "print('second job:', job.status)"]))
    history: dict[int, list[dict]] = {}  # notebook cell -> what its monitor showed, poll by poll
    clicked = {}

    def watch(page):
        for m in page.page.evaluate(MONITORS_JS):
            history.setdefault(m["cell"], []).append(m)
        second = sorted(history)[1:2]
        if second and not clicked:
            seen = history[second[0]]
            # Cancel once the second job visibly trains: its bar moved and its plot was redrawn.
            if (seen[-1]["cancel_enabled"] and seen[-1]["progress"] > 0
                    and len({s["plot"] for s in seen if s["plot"]}) >= 2):
                page.page.locator(".jp-Notebook .jp-Cell").nth(second[0]).locator(
                    "button", has_text="Cancel").click()
                clicked["at"] = time.monotonic()

    client = local_server.client()
    try:
        nb.run_all()
        state = nb.wait_done(timeout=150, poll=0.3, on_poll=watch)
    finally:
        for job in client.fine_tuning.jobs.list(limit=5):  # never leave a job training for 04
            if job.status in ("validating_files", "queued", "running"):
                client.fine_tuning.jobs.cancel(job.id)
    nb.screenshot(screenshots / "03_train.png")
    assert nb.cell_errors(state) == []
    chain.done.add("03_train")
    assert len(history) == 2, f"expected two monitors, saw {sorted(history)}"
    first_cell, second_cell = sorted(history)

    # The first job: the bar advanced while it ran, the plot was redrawn at least twice while
    # it ran, the event log filled, and the checkpoints table appeared.
    first = history[first_cell]
    running = [s for s in first if "running" in s["status"]]
    assert len({s["progress"] for s in running}) >= 2, [s["progress"] for s in first]
    assert len({s["plot"] for s in running if s["plot"]}) >= 2, "the loss plot was not redrawn while training"
    assert "succeeded" in first[-1]["status"] and first[-1]["progress"] == 100
    assert first[-1]["log_lines"] >= 5
    assert first[-1]["checkpoint_rows"] >= 1
    assert not first[-1]["cancel_enabled"]

    # The second job: cancelled by the click, while the notebook's waiting cell was running.
    assert clicked, "the second job never showed progress and plot redraws to cancel"
    second = history[second_cell]
    assert "cancelled" in second[-1]["status"]
    job_id = second[-1]["status"].split()[0]
    assert client.fine_tuning.jobs.retrieve(job_id).status == "cancelled"
    last = state["cells"][-1]["outputs"]
    assert "second job: cancelled" in "".join("".join(o.get("text", "")) for o in last)
    # The notebook's own figures and tables after the job.
    assert all(w > 300 for w in nb.images_loaded(nb.output_of("as_image(loss_curves(")))
    assert nb.widget_problems() == []
    assert nb.layout_problems() == []
    assert nb.console_errors == []
