"""A TrainSink that records what the trainer reports, for tests and benchmarks.

Standard library only, so benchmarks/ can import it without pulling in the test fixtures."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class RecordingSink:
    """A sink that keeps everything; `stop_at` = {step: "cancel"|"pause"} to interrupt."""

    stop_at: dict[int, str] = field(default_factory=dict)
    start: tuple | None = None
    messages: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[dict] = field(default_factory=list)
    checkpoints: list[tuple] = field(default_factory=list)

    def on_start(self, total_steps, n_epochs, n_train_examples):
        self.start = (total_steps, n_epochs, n_train_examples)

    def on_message(self, level, message):
        self.messages.append((level, message))

    def on_metrics(self, record):
        self.metrics.append(record)

    def on_checkpoint(self, step, epoch, path, metrics):
        self.checkpoints.append((step, epoch, Path(path), metrics))

    def should_stop(self):
        done = self.metrics[-1]["step"] if self.metrics else 0
        return self.stop_at.get(done)
