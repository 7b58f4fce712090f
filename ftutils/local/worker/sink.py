"""What the trainer reports, turned into a job's events, checkpoints and fields (`JobSink`).

Cancel and pause reach the trainer as a job status the API wrote, read by `should_stop`
once per training step.
"""
from __future__ import annotations

import time

from ftutils.local.store.jobs import model_id
from ftutils.local.worker.results import finite

LEVELS = {"warning": "warn", "warn": "warn", "error": "error"}


class JobSink:
    """The trainer's TrainSink for one job of `worker`."""

    def __init__(self, worker, job: dict):
        self.worker, self.jobs, self.job = worker, worker.jobs, job
        self.model_id = model_id(job, worker.settings.org)
        self.total_steps = 0
        self.started = time.monotonic()
        self.first_step: int | None = None
        self.reporters: list = []  # the job's integrations (`integrations.start`)

    def on_start(self, total_steps: int, n_epochs: int, n_train_examples: int) -> None:
        self.total_steps = total_steps
        self.started = time.monotonic()

    def on_message(self, level: str, message: str) -> None:
        self.jobs.event(self.job["id"], message, level=LEVELS.get(level, "info"))

    def on_metrics(self, record: dict) -> None:
        step = int(record["step"])
        data = {**finite(record), "step": step, "total_steps": self.total_steps}
        message = f"Step {step}/{self.total_steps}: training loss={record.get('train_loss', float('nan')):.4f}"
        if data.get("valid_loss") is not None:
            message += f", validation loss={data['valid_loss']:.4f}"
        if self.first_step is None:
            self.first_step, self.started = step - 1, time.monotonic() - 1e-6
        per_step = (time.monotonic() - self.started) / max(1, step - self.first_step)
        self.jobs.record_metrics(self.job["id"], message, data,
                                 estimated_finish=int(time.time() + per_step * max(0, self.total_steps - step)))
        for reporter in self.reporters:
            reporter.log(data)

    def on_checkpoint(self, step: int, epoch: int, path, metrics: dict) -> None:
        self.jobs.add_checkpoint(self.job, step, path, {**finite(metrics or {}), "step": float(step)})
        self.prune()

    def prune(self) -> None:
        """Keep the newest `keep_checkpoints`, as OpenAI does: older rows first, then their folders."""
        for path in self.jobs.prune_checkpoints(self.job["id"], self.worker.settings.keep_checkpoints):
            self.worker.remove_tree(path)

    def should_stop(self):
        self.worker.exit_if_orphaned()
        if self.worker.shutting_down:
            return "pause"
        return self.jobs.stop_requested(self.job["id"])
