"""What `ftutils run` prints while a notebook runs, so a terminal is not silent for minutes.

Quick cells say nothing. A cell that runs longer than `every` seconds gets a line every
`every` seconds: which notebook, which cell of how many, how long it has run, its first
line, and, while a fine-tuning job started by this notebook is going, the job's step/total
and its last losses (read through the API, as the notebook's own monitor does):

    [demo/03_train] cell 9/14 (40s): monitor = JobMonitor(conn.client, job.id).start() · ftjob-… running, step 12/40, train loss 1.234 (last batch)

A line that would say nothing new (the same job step as the last line) is not printed.
"""
from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

HEAD_CHARS = 60


class CellProgress:
    """papermill's `on_cell_start` hook plus a ticker thread that reports long cells."""

    def __init__(self, label: str, notebook: Path, client=None, every: float = 10.0, out=None,
                 parameters: dict | None = None):
        import nbformat

        cells = nbformat.read(notebook, as_version=4).cells
        self.label, self.client, self.every = label, client, every
        self.out = out or sys.stdout
        self.n_code = sum(1 for c in cells if c.cell_type == "code" and c.source.strip())
        if parameters and any("parameters" in c.metadata.get("tags", []) for c in cells):
            self.n_code += 1  # papermill's injected-parameters cell
        self.index, self.head, self.cell_started = 0, "", None
        self._last_job = None  # what the last line said of the job, so a line with nothing new is skipped
        self.started = time.time()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._tick, name=f"progress-{label}", daemon=True)

    def on_cell_start(self, cell, cell_index):
        if cell.cell_type != "code" or not cell.source.strip():
            return
        self.index += 1
        lines = [line for line in cell.source.splitlines() if line.strip() and not line.lstrip().startswith("#")]
        head = lines[0].strip() if lines else cell.source.strip().splitlines()[0]
        self.head = head if len(head) <= HEAD_CHARS else head[: HEAD_CHARS - 1] + "…"
        self.cell_started = time.monotonic()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(5)

    def _tick(self):
        while not self._stop.wait(self.every):
            if self.cell_started is None or time.monotonic() - self.cell_started < self.every:
                continue
            line = self.line()
            if line is not None:
                print(line, file=self.out, flush=True)

    def line(self) -> str | None:
        """The progress line, or None when it would repeat the last one's job progress."""
        elapsed = time.monotonic() - self.cell_started if self.cell_started is not None else 0
        total = max(self.n_code, self.index)
        text = f"[{self.label}] cell {self.index}/{total} ({elapsed:.0f}s): {self.head}"
        job = self.job_progress()
        if job is not None and job == self._last_job:
            return None  # the job has not moved since the last line
        self._last_job = job
        return f"{text} · {job}" if job else text

    def job_progress(self) -> str | None:
        """The newest job created since this notebook started, while it runs (None: none)."""
        if self.client is None:
            return None
        try:
            page = self.client.fine_tuning.jobs.list(limit=1)
            job = next(iter(page.data), None)
            if job is None or job.created_at < self.started - 1 or job.status in ("succeeded", "failed", "cancelled"):
                return None
            text = f"{job.id} {job.status}"
            # The newest page only (newest first): iterating the list would page through them all.
            for event in self.client.fine_tuning.jobs.list_events(job.id, limit=20).data:
                data = event.data if isinstance(event.data, dict) else {}
                if event.type == "metrics" and data.get("step"):
                    text += f", step {data['step']}/{data.get('total_steps', '?')}"
                    if data.get("train_loss") is not None:
                        text += f", train loss {data['train_loss']:.3f} (last batch)"
                    break
            return text
        except Exception as exc:  # progress lines must never stop the run
            return f"(job progress unavailable: {type(exc).__name__})"


def execute(source: Path, output: Path, parameters: dict, cwd: Path, label: str, client=None,
            every: float = 10.0) -> None:
    """papermill's execute_notebook, reporting long cells (see CellProgress)."""
    import papermill as pm
    from traitlets.config import Config

    with CellProgress(label, source, client=client, every=every, parameters=parameters) as progress:
        pm.execute_notebook(str(source), str(output), parameters=parameters, kernel_name="python3", cwd=str(cwd),
                            progress_bar=False, on_cell_start=progress.on_cell_start,
                            # IPC: the kernel's sockets are files only this user can open, so
                            # it neither talks plain TCP nor warns about it once per notebook.
                            config=Config({"KernelManager": {"transport": "ipc"}}))
