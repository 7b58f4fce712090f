"""JobMonitor: follow a fine-tuning job to its end, live in a notebook or as progress lines.

Construct it with a job id at any time, including after a kernel restart: the first
refresh reads the job's whole event history, later ones only what is new.

In JupyterLab, `start()` shows the widget and returns; `await monitor.finished()` waits for
the end without blocking the kernel, so the Cancel button still works (a blocking `wait()`
would hold the button's click until the job had ended).
"""
from __future__ import annotations

import asyncio
import html
import threading
import time

import pandas as pd

from ftutils.train import jobs
from ftutils.train import metrics as metrics_mod
from ftutils.train.diagnose import diagnose
from ftutils.plots import as_image
from ftutils.plots.training import dpo_curves, loss_curves
from ftutils.widgets.base import Widget, interactive as is_interactive
from ftutils.widgets.checkpoints import checkpoints_html

LOG_LINES = 12
PLOT_EVERY = 1.0  # at most one live plot redraw a second (each costs ~0.2 s of CPU the training shares)


class JobMonitor(Widget):
    def __init__(self, client, job_id: str, poll: float = 2.0, interactive: bool | None = None):
        self.client, self.job_id, self.poll = client, job_id, poll
        self.interactive = is_interactive() if interactive is None else interactive
        self.job = None
        self._events: dict[str, object] = {}  # id -> event, in arrival order (oldest first)
        self._checkpoints = None
        self._final_metrics = None
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self._thread = None
        self._ui = None
        self.error = None  # an exception that ended the background thread

    # ---- plain data ---------------------------------------------------------------

    def refresh(self):
        """Fetch the job, its new events and its checkpoints; return the job."""
        job = self.client.fine_tuning.jobs.retrieve(self.job_id)
        self._absorb(job)
        return job

    def _absorb(self, job) -> bool:
        """Take in the job and its new events; True when there were any."""
        new = []
        # The API lists newest first; stop paging at the first event already seen.
        for event in self.client.fine_tuning.jobs.list_events(self.job_id, limit=100):
            if event.id in self._events:
                break
            new.append(event)
        # New checkpoints come with new events (and are final once the job has ended).
        fresh = None
        if new or self._checkpoints is None or job.status in jobs.TERMINAL:
            fresh = jobs.checkpoints(self.client, self.job_id)
        with self._lock:
            self.job = job
            for event in reversed(new):
                self._events[event.id] = event
            if fresh is not None:
                self._checkpoints = fresh
        return bool(new)

    def events(self) -> pd.DataFrame:
        with self._lock:
            items = list(self._events.values())
        return jobs.events_frame(items)

    def metrics(self) -> pd.DataFrame:
        """Metrics so far: from events while running, from the result file once finished."""
        with self._lock:
            if self._final_metrics is not None:
                return self._final_metrics
            job, items = self.job, list(self._events.values())
        if job is not None and job.status in jobs.TERMINAL and job.result_files:
            df = metrics_mod.job_metrics(self.client, job)
            with self._lock:
                self._final_metrics = df
            return df
        return metrics_mod.metrics_from_events(items)

    def checkpoints(self) -> pd.DataFrame:
        with self._lock:
            if self._checkpoints is not None:
                return self._checkpoints.copy()
        return jobs.checkpoints(self.client, self.job_id)

    def n_epochs(self) -> int | None:
        value = jobs.resolved_hyperparameters(self.job).get("n_epochs") if self.job is not None else None
        return value if isinstance(value, int) else None

    def diagnosis(self):
        return diagnose(self.metrics(), self.checkpoints(), n_epochs=self.n_epochs())

    def state(self) -> dict:
        """Where the job stands, as plain values."""
        with self._lock:
            job, items = self.job, list(self._events.values())
            n_checkpoints = 0 if self._checkpoints is None else len(self._checkpoints)
        last_metrics = next((e.data for e in reversed(items) if e.type == "metrics" and isinstance(e.data, dict)), {})
        step, total = last_metrics.get("step"), last_metrics.get("total_steps")
        n_epochs = self.n_epochs()
        status = job.status if job is not None else None
        progress = 1.0 if status == "succeeded" else (min(1.0, step / total) if step and total else 0.0)
        epoch = None if not (n_epochs and step and total) else min(n_epochs, step / total * n_epochs)
        return {
            "job_id": self.job_id, "status": status, "model": getattr(job, "model", None),
            "step": step, "total_steps": total, "epoch": epoch, "n_epochs": n_epochs, "progress": progress,
            "estimated_finish": getattr(job, "estimated_finish", None),
            "train_loss": last_metrics.get("train_loss"),
            # The full validation set when this step had it, else the step's validation batch.
            "valid_loss": _first(last_metrics.get("full_valid_loss"), last_metrics.get("valid_loss")),
            "valid_series": ("full set" if last_metrics.get("full_valid_loss") is not None
                             else "batch" if last_metrics.get("valid_loss") is not None else None),
            "fine_tuned_model": getattr(job, "fine_tuned_model", None),
            "error": jobs.error_text(job) if job is not None else None,
            "n_events": len(items), "last_message": items[-1].message if items else None,
            "n_checkpoints": n_checkpoints,
        }

    def cancel(self):
        return jobs.cancel(self.client, self.job_id)

    # ---- running ------------------------------------------------------------------

    def start(self):
        """Interactive: show the widget, follow the job in a background thread and return at
        once. Otherwise: print progress lines, show one final figure, return when it ends."""
        if not self.interactive:
            self.wait()
            return self
        if self._thread is None or not self._thread.is_alive():
            from IPython.display import display

            if self._ui is None:
                self.widget = self.build()
                display(self.widget)
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"monitor-{self.job_id}", daemon=True)
            self._thread.start()
        return self

    def wait(self, timeout: float | None = None, show: bool = True):
        """Block until the job ends and return it. In a notebook the kernel is busy meanwhile,
        so widgets (this one's Cancel button too) answer only afterwards: `await finished()`."""
        if self.interactive:
            self.start()
            try:
                self._thread.join(timeout)
            except KeyboardInterrupt:
                raise KeyboardInterrupt(f"stopped waiting; {self.job_id} goes on (monitor.cancel() cancels it)") from None
            if self._thread.is_alive():
                raise TimeoutError(f"{self.job_id} had not finished after {timeout:.0f}s")
            if self.error is not None:
                raise self.error
            return self.job
        if self.job is not None and self.job.status in jobs.TERMINAL:
            return self.job  # start() already followed it to the end
        return self._run_plain(timeout, show)

    async def finished(self, timeout: float | None = None, poll: float = 0.25):
        """The job once it has ended (starting the monitor if needed). Awaited in a notebook
        cell (`job = await monitor.finished()`), it leaves the kernel free meanwhile: widget
        clicks are handled while the cell waits. Not interactive: the same as `wait()`."""
        if not self.interactive:
            return self.wait(timeout)
        self.start()
        deadline = None if timeout is None else time.monotonic() + timeout
        while self._thread.is_alive():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(f"{self.job_id} had not finished after {timeout:.0f}s")
            await asyncio.sleep(poll)
        if self.error is not None:
            raise self.error
        return self.job

    def stop(self):
        """Stop following (the job itself goes on; see cancel())."""
        self._stop.set()

    def _update(self, job) -> bool:
        news = False
        try:
            news = self._absorb(job)
        except Exception as exc:  # events or checkpoints failing once must not end the watch
            self.job = job
            self._note(f"could not read events: {type(exc).__name__}")
        if self._ui is not None:
            self._render()
        return news

    def _run(self):
        try:
            jobs.follow(self.client, self.job_id, on_update=self._update, poll=self.poll, stop=self._stop.is_set)
        except Exception as exc:
            self.error = exc
            self._note(f"stopped following the job: {exc}")

    def _note(self, text: str):
        if self._ui is not None:
            self._ui["note"].value = html.escape(text)

    def _run_plain(self, timeout, show):
        # A line when the status changes and one at each epoch's end, nothing in between: in
        # a notebook every redraw of a progress bar is kept as output, so a bar leaves dozens.
        seen = {"status": None, "epoch_steps": set()}

        def update(job):
            news = self._update(job)
            for line in self._epoch_lines(seen["epoch_steps"]):  # before the status: the last epoch, then "succeeded"
                print(line, flush=True)
            s = self.state()
            if s["status"] != seen["status"]:
                seen["status"] = s["status"]
                print(f"{time.strftime('%H:%M:%S')} {self.job_id}: {s['status']}", flush=True)
            return news

        job = jobs.follow(self.client, self.job_id, on_update=update, poll=self.poll, timeout=timeout)
        if job.status == "succeeded":
            print(f"{self.job_id} succeeded: {job.fine_tuned_model}")
        else:
            print(jobs.error_text(job))
        if show:
            self._show_final()
        return job

    def _epoch_lines(self, printed: set) -> list[str]:
        """A line for each epoch end not printed yet: its step and the losses measured there."""
        with self._lock:
            records = [e.data for e in self._events.values() if e.type == "metrics" and isinstance(e.data, dict)]
        n_epochs = self.n_epochs()
        lines = []
        for record in sorted(records, key=lambda r: r.get("step") or 0):
            step, total = record.get("step"), record.get("total_steps")
            if not step or step in printed:
                continue
            per_epoch = total / n_epochs if total and n_epochs else None
            if per_epoch and round(step / per_epoch, 6) % 1 == 0:
                where = f"epoch {round(step / per_epoch)}/{n_epochs}, step {step}/{total}"
            elif per_epoch is None and record.get("full_valid_loss") is not None:
                where = f"step {step}"  # epochs unknown: the whole-file validation marks an epoch end
            else:
                continue
            printed.add(step)
            losses = [f"train loss {record['train_loss']:.3f} (last batch)"] if record.get("train_loss") is not None else []
            if record.get("full_valid_loss") is not None:
                losses.append(f"validation loss {record['full_valid_loss']:.3f} (whole validation file)")
            lines.append(f"{time.strftime('%H:%M:%S')} {where}" + (": " + ", ".join(losses) if losses else ""))
        return lines

    def _show_final(self):
        try:
            from IPython import get_ipython
        except ImportError:
            return
        if get_ipython() is None:
            return  # a terminal: the caller prints the diagnosis instead of a figure
        from IPython.display import display

        display(as_image(self.static()))

    # ---- showing ------------------------------------------------------------------

    @property
    def is_dpo(self) -> bool:
        method = getattr(self.job, "method", None)
        return getattr(method, "type", None) == "dpo"

    def _dpo_metrics(self) -> pd.DataFrame:
        """Every metric of the metrics events (DPO's reward accuracy and margin included), by step."""
        with self._lock:
            rows = [e.data for e in self._events.values() if e.type == "metrics" and isinstance(e.data, dict)]
        if not rows:
            return pd.DataFrame(columns=["step"])
        return pd.DataFrame(rows).drop_duplicates(subset="step", keep="last").sort_values("step").reset_index(drop=True)

    def static(self):
        if self.is_dpo:  # DPO's own numbers; the supervised diagnosis does not apply to them
            hp = getattr(getattr(self.job.method, "dpo", None), "hyperparameters", None)
            return dpo_curves(self._dpo_metrics(), getattr(hp, "beta", None))
        metrics_df = self.metrics()
        checkpoints = self.checkpoints()
        # The curves' shape only: whether a rise is more than noise is 03_train's per-item check.
        return loss_curves(metrics_df, checkpoints, diagnose(metrics_df, checkpoints, self.n_epochs()) if len(metrics_df) else None)

    def build(self):
        import ipywidgets as w

        ui = {
            # The bar keeps its width; the label beside it wraps instead of squeezing it.
            "status": w.HTML(), "bar": w.FloatProgress(min=0, max=1, layout=w.Layout(width="320px", flex="0 0 320px")),
            "bar_label": w.HTML(layout=w.Layout(flex="1 1 auto", margin="0 0 0 8px")), "plot": w.Output(),
            "log": w.HTML(), "checkpoints": w.HTML(layout=w.Layout(overflow="auto", max_width="100%")),
            "note": w.HTML(), "cancel": w.Button(description="Cancel job", button_style="danger", icon="stop"),
        }
        ui["cancel"].on_click(lambda _: self._on_cancel())
        self._ui = ui
        self._plotted, self._plotted_at = None, 0.0
        self._render()
        return w.VBox([ui["status"], w.HBox([ui["bar"], ui["bar_label"]]), ui["plot"],
                       w.HTML("<b>Events</b>"), ui["log"], w.HTML("<b>Checkpoints</b>"), ui["checkpoints"],
                       w.HBox([ui["cancel"], ui["note"]])])

    def _on_cancel(self):
        try:
            self.cancel()
            self._note("cancel requested")
        except Exception as exc:
            self._note(f"cancel failed: {exc}")

    def _render(self):
        ui, s = self._ui, self.state()
        colour = {"succeeded": "green", "failed": "#c62828", "cancelled": "grey"}.get(s["status"], "#1565c0")
        ui["status"].value = (f"<b>{html.escape(self.job_id)}</b> &middot; <span style='color:{colour}'>{s['status'] or 'starting…'}</span>"
                              + (f" &middot; {html.escape(s['fine_tuned_model'])}" if s["fine_tuned_model"] else "")
                              + (f"<br><span style='color:#c62828'>{html.escape(s['error'])}</span>" if s["error"] else ""))
        ui["bar"].value = s["progress"]
        eta = ""
        if s["estimated_finish"] and s["status"] not in jobs.TERMINAL:
            eta = ", " + _time_left(s["estimated_finish"] - time.time())
        epoch = f", epoch {s['epoch']:.1f}/{s['n_epochs']}" if s["epoch"] is not None else ""
        steps = f"step {s['step']}/{s['total_steps']}" if s["total_steps"] else "waiting for the first step"
        losses = _losses(s)
        ui["bar_label"].value = html.escape(f"{steps}{epoch}{eta}") + (f"<br>{html.escape(losses)}" if losses else "")
        ev = self.events().tail(LOG_LINES)
        ui["log"].value = "<pre style='font-size:90%'>" + "\n".join(
            html.escape(f"{r.created_at:%H:%M:%S} {r.level:5} {r.message}") for r in ev.itertuples()) + "</pre>"
        cps = self.checkpoints() if self._checkpoints is not None else pd.DataFrame()
        ui["checkpoints"].value = checkpoints_html(cps) if len(cps) else "<i>none yet</i>"
        self._redraw_plot(s)
        if s["status"] in jobs.TERMINAL:
            ui["cancel"].disabled = True

    def _redraw_plot(self, s):
        # Redrawn whenever a poll brought new events, so the curve grows as the log does; at
        # most every PLOT_EVERY seconds, and always for the final state.
        key = (s["n_events"], s["status"])
        final = s["status"] in jobs.TERMINAL
        if key == self._plotted or (not final and time.monotonic() - self._plotted_at < PLOT_EVERY):
            return
        self._plotted, self._plotted_at = key, time.monotonic()
        live = (lambda: dpo_curves(self._dpo_metrics())) if self.is_dpo else (lambda: loss_curves(self.metrics(), self.checkpoints()))
        fig = self.static() if s["status"] in jobs.TERMINAL else live()
        # From a background thread: replace the outputs rather than `with out:`, which
        # would capture whatever the main thread prints meanwhile.
        self._ui["plot"].outputs = ()
        self._ui["plot"].append_display_data(as_image(fig))


def _first(*values):
    return next((v for v in values if v is not None), None)


def _losses(s: dict) -> str:
    """The last step's losses, saying which series each is (the plot draws the same ones)."""
    parts = []
    if s["train_loss"] is not None:
        parts.append(f"train loss {s['train_loss']:.3f} (last batch, raw)")
    if s["valid_loss"] is not None:
        parts.append(f"valid loss {s['valid_loss']:.3f} ({s.get('valid_series') or 'batch'})")
    return ", ".join(parts)


def _time_left(seconds: float) -> str:
    if seconds < 60:
        return "under a minute left"
    minutes = round(seconds / 60)
    return f"about {minutes} min left"
