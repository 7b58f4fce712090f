"""What `train(config, sink)` takes and gives back: its config, the sink it reports to, its result.

Light to import (no torch): the worker builds a TrainConfig before training starts, and
`trainable` reads its LoRA defaults to count what the trainer's LoRA trains.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Protocol

from ftutils import openai_rules
from ftutils.local.models import catalog

STATE_FILE = "trainer_state.pt"
"""In a checkpoint folder beside the adapter: the optimizer, scheduler, RNG and loop position."""
METHODS = ("supervised", "dpo")


@dataclass(kw_only=True)
class TrainConfig:
    base_model: str
    """Base model id, a row of ftutils.local.models.catalog (or an extra model's id)."""
    data_dir: str | Path
    """The backend's DATA_DIR, where converted base models are cached."""
    train_file: str | Path
    """JSONL of chat examples ({"messages": [...]}) in OpenAI's format."""
    validation_file: str | Path | None = None
    """Optional JSONL in the same format; adds valid_* and full_valid_* metrics."""
    output_dir: str | Path
    """Job folder: checkpoints/step-N/ and final/ are written here."""
    n_epochs: int
    """Passes over the training file."""
    batch_size: int
    """Examples per optimizer step."""
    learning_rate_multiplier: float
    """Multiplies base_learning_rate, as OpenAI's hyperparameter does."""
    seed: int
    """Fixes LoRA init, data order and dropout: same seed, same losses."""
    method: str = "supervised"
    """OpenAI's method.type: "supervised" (chat files, cross-entropy on the assistant's
    replies, `training.sft`) or "dpo" (preference files, `training.dpo`'s loss)."""
    beta: float = openai_rules.AUTO_BETA
    """DPO's beta (method "dpo"): how strongly the policy is held to the reference."""
    resume_from: str | Path | None = None
    """A checkpoint folder (checkpoints/step-N/) to continue from exactly."""
    extra_models: dict[str, str] | None = None
    """Extra base models (id -> local Hugging Face folder) the backend was started with."""
    lora_r: int = 16
    """LoRA rank."""
    lora_alpha: int = 32
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA input; 0 keeps runs cheap and exactly resumable."""
    base_learning_rate: float = 2e-4
    """Peak AdamW rate at multiplier 1. OpenAI's auto multiplier is 2 for small batches,
    so a small job peaks at 4e-4, a common LoRA rate that makes a 60-300 example
    classification set learn within 3 epochs."""
    eval_every: int = 10
    """Steps between valid_loss evaluations on one validation batch."""
    max_length: int | None = None
    """Tokens kept per example; longer ones are cut (with a warning). None: the base's
    training limit in the catalog, the number the validator checks against."""
    use_bf16: bool | str = "auto"
    """bf16 autocast: "auto" uses it where the hardware computes bf16 natively."""
    num_threads: int | None = None
    """CPU threads for the run (restored after). None: 1 for a base the catalog runs on one
    thread (`BaseModel.one_thread`), 1 per process when `processes` > 1, else torch's own."""
    processes: int = 1
    """Processes sharing each batch (`training.parallel`), each with the whole model; a
    batch of one trains in one process."""

    def __post_init__(self):
        if self.max_length is None:
            self.max_length = catalog.training_tokens(openai_rules.base_of(self.base_model))
        for name in ("n_epochs", "batch_size", "lora_r", "lora_alpha", "eval_every", "max_length", "processes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        for name in ("learning_rate_multiplier", "base_learning_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
                raise ValueError(f"{name} must be a positive number, got {value!r}")
        if not 0 <= self.lora_dropout < 1:
            raise ValueError(f"lora_dropout must be in [0, 1), got {self.lora_dropout!r}")
        if self.num_threads is not None and (isinstance(self.num_threads, bool) or not isinstance(self.num_threads, int)
                                             or self.num_threads < 1):
            raise ValueError(f"num_threads must be a positive integer or None, got {self.num_threads!r}")
        if self.method not in METHODS:
            raise ValueError(f"method must be 'supervised' or 'dpo', got {self.method!r}")
        if isinstance(self.beta, str):
            raise ValueError(f"beta must be a number, got {self.beta!r}")
        openai_rules.check_beta(self.beta)  # OpenAI's range, one rule for the API and the trainer
        if self.use_bf16 not in (True, False, "auto"):
            raise ValueError(f"use_bf16 must be True, False or 'auto', got {self.use_bf16!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        self._check_paths()

    def _check_paths(self) -> None:
        if not Path(self.train_file).is_file():
            raise ValueError(f"train_file {self.train_file} does not exist")
        if self.validation_file is not None and not Path(self.validation_file).is_file():
            raise ValueError(f"validation_file {self.validation_file} does not exist")
        if self.resume_from is not None and not (Path(self.resume_from) / STATE_FILE).is_file():
            raise ValueError(f"resume_from {self.resume_from} is not a checkpoint (no {STATE_FILE})")

    @property
    def one_thread(self) -> bool:
        """The base is small enough to train on one thread (and in one process)."""
        entry = catalog.base_model(self.base_model)
        return entry is not None and entry.one_thread


def lora_defaults() -> dict:
    """The LoRA fields of TrainConfig, with their defaults."""
    return {f.name: f.default for f in fields(TrainConfig) if f.name.startswith("lora_")}


class TrainSink(Protocol):
    def on_start(self, total_steps: int, n_epochs: int, n_train_examples: int) -> None: ...

    def on_message(self, level: str, message: str) -> None:
        """level is "info" or "warn", as OpenAI's job events have them."""

    def on_metrics(self, record: dict) -> None:
        """After every step: step, train_loss, train_mean_token_accuracy; valid_loss and
        valid_mean_token_accuracy every eval_every steps; full_valid_loss and
        full_valid_mean_token_accuracy on an epoch's last step (with a validation file)."""

    def on_checkpoint(self, step: int, epoch: int, path: Path, metrics: dict) -> None:
        """At each epoch end and on pause; `epoch` counts the epochs completed, `path`
        (checkpoints/step-N/) holds the adapter and the state to resume from."""

    def should_stop(self) -> str | None:
        """Asked before every step: None to go on, "cancel" or "pause" to stop."""


class SilentSink:
    """A sink that reports nothing and never stops (parallel helpers, benchmarks)."""

    def on_start(self, total_steps, n_epochs, n_train_examples): pass
    def on_message(self, level, message): pass
    def on_metrics(self, record): pass
    def on_checkpoint(self, step, epoch, path, metrics): pass
    def should_stop(self): return None


@dataclass
class TrainResult:
    trained_tokens: int
    """Tokens of the training examples processed, counted once per epoch, as OpenAI's
    `trained_tokens` (and its bill) counts them; prompts included, padding not."""
    steps: int
    adapter_dir: Path | None
    """final/ when the job completed, else the last checkpoint written (or None)."""
    stopped: str | None
    """None when all epochs ran, else "cancel" or "pause"."""
    final_metrics: dict
