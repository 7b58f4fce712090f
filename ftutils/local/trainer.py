"""LoRA fine-tuning with OpenAI's semantics, reporting through a sink.

`n_epochs` passes over the training file, `batch_size` examples per optimizer step,
`learning_rate_multiplier` times our base LoRA rate, and `seed` fixing everything random.
The loop knows nothing of HTTP or SQLite: the worker passes a sink that turns metrics
and checkpoints into job events and rows, and answers `should_stop()` from the job's
cancel/pause flags.

What a step computes, and why it is about twice as fast as a plain transformers loop
on a CPU, is in `ftutils.local.steps`.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import ftutils.threads  # noqa: F401  (before torch loads)

import torch  # noqa: E402

from ftutils.local import chatdata, dpo, parallel, steps  # noqa: E402
from ftutils.local.base_models import TINY, load_base  # noqa: E402

STATE_FILE = "trainer_state.pt"
WARMUP_FRACTION = 0.05
GRAD_CLIP = 1.0


@dataclass(kw_only=True)
class TrainConfig:
    base_model: str
    """Base model id, e.g. "smollm2-135m-instruct" (see ftutils.local.base_models)."""
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
    replies) or "dpo" (preference files, ftutils.local.dpo's loss)."""
    beta: float = dpo.DEFAULT_BETA
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
    """Tokens kept per example; longer ones are cut (with a warning). None: the model's
    training limit in ftutils.data.tokens.MODEL_LIMITS, the number the validator checks
    against (1024 for a model it does not know)."""
    use_bf16: bool | str = "auto"
    """bf16 autocast: "auto" uses it where the hardware computes bf16 natively."""
    num_threads: int | None = None
    """CPU threads for the run (restored after). None: 1 for tiny-smollm2, whose matmuls
    are too small to split (and whose second thread, on a CPU shared with the API
    process, mostly waits: we measured tiny ops 100x slower that way), 1 per process when
    `processes` > 1, else torch's own."""
    processes: int = 1
    """Processes sharing each batch (`ftutils.local.parallel`), each with the whole model;
    supervised jobs with batches of 2 or more only (others train in one process)."""

    def __post_init__(self):
        if self.max_length is None:
            from ftutils.data.tokens import limits_for

            limits, guessed = limits_for(self.base_model)
            self.max_length = 1024 if guessed else limits.max_training_tokens
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
        if self.method not in ("supervised", "dpo"):
            raise ValueError(f"method must be 'supervised' or 'dpo', got {self.method!r}")
        if isinstance(self.beta, bool) or not isinstance(self.beta, (int, float)) or not 0 < self.beta <= 2:
            raise ValueError(f"beta must be a number in (0, 2], got {self.beta!r}")
        if self.use_bf16 not in (True, False, "auto"):
            raise ValueError(f"use_bf16 must be True, False or 'auto', got {self.use_bf16!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        if not Path(self.train_file).is_file():
            raise ValueError(f"train_file {self.train_file} does not exist")
        if self.validation_file is not None and not Path(self.validation_file).is_file():
            raise ValueError(f"validation_file {self.validation_file} does not exist")
        if self.resume_from is not None and not (Path(self.resume_from) / STATE_FILE).is_file():
            raise ValueError(f"resume_from {self.resume_from} is not a checkpoint (no {STATE_FILE})")


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


class SilentSink:
    """A sink that reports nothing and never stops (parallel helpers, benchmarks)."""

    def on_start(self, total_steps, n_epochs, n_train_examples): pass
    def on_message(self, level, message): pass
    def on_metrics(self, record): pass
    def on_checkpoint(self, step, epoch, path, metrics): pass
    def should_stop(self): return None


def train(config: TrainConfig, sink: TrainSink) -> TrainResult:
    processes = config.processes if config.method == "supervised" and config.batch_size > 1 else 1
    threads = config.num_threads or (1 if config.base_model == TINY or processes > 1 else None)
    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with parallel.started(config, processes, lambda message: sink.on_message("warn", message)) as group:
            return _train(config, sink, group)
    finally:
        torch.set_num_threads(saved_threads)


def _train(config: TrainConfig, sink: TrainSink, group: parallel.Group = parallel.Group()) -> TrainResult:
    """The loop, in every process of `group`; only rank 0 writes checkpoints and the model."""
    torch.manual_seed(config.seed)
    model, tokenizer = load_base(config.base_model, config.data_dir, config.extra_models)
    load = dpo.load_pairs if config.method == "dpo" else _load_examples
    train_set = load(config.train_file, tokenizer, config, sink, "training")
    valid_set = load(config.validation_file, tokenizer, config, sink, "validation") if config.validation_file else []
    if not train_set:
        raise ValueError("no training example has an assistant message to learn from")
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id

    steps_per_epoch = math.ceil(len(train_set) / config.batch_size)
    total_steps = steps_per_epoch * config.n_epochs
    model = _with_lora(model, config)
    params = [p for p in model.parameters() if p.requires_grad]
    group.same_as_rank0(params)
    optimizer = steps.adamw(params, config.base_learning_rate * config.learning_rate_multiplier)
    warmup = max(1, round(WARMUP_FRACTION * total_steps))
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total_steps - s) / (total_steps - warmup)))
    state = {"step": 0, "epoch": 0, "batch": 0, "trained_tokens": 0}
    if config.resume_from:
        state = _restore(Path(config.resume_from), optimizer, scheduler, len(train_set), config)
        sink.on_message("info", f"Resumed from step {state['step']} (epoch {state['epoch'] + 1}).")

    if config.method == "dpo":  # before tune_for_speed: its fused LoRA layers ignore disable_adapter()
        dpo.score_reference(model, train_set + valid_set, pad_id)
    bf16 = steps.want_bf16(config.use_bf16, model.device)
    steps.tune_for_speed(model, bf16, max(len(e.input_ids) for e in train_set + valid_set))
    autocast = lambda: torch.autocast(model.device.type, dtype=torch.bfloat16, enabled=bf16)  # noqa: E731
    sink.on_message("info", f"Fine-tuning {config.base_model} with LoRA r={config.lora_r} on all linear layers: "
                            f"{len(train_set)} examples, {config.n_epochs} epochs, batch size {config.batch_size}, "
                            f"peak learning rate {optimizer.defaults['lr']:.2g}{', bf16 autocast' if bf16 else ''}"
                            f"{f', each batch shared by {group.size} processes' if group.size > 1 else ''}.")
    sink.on_start(total_steps, config.n_epochs, len(train_set))
    output_dir = Path(config.output_dir)
    lengths = [len(e.input_ids) for e in train_set]
    record, last_checkpoint = {}, None

    def checkpoint(metrics):
        nonlocal last_checkpoint
        if group.rank:
            return
        if last_checkpoint and last_checkpoint.name == f"step-{state['step']}":
            return  # a pause right after an epoch's checkpoint: that one is this state
        last_checkpoint = _save(model, output_dir / "checkpoints" / f"step-{state['step']}",
                                {**state, "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                                 "torch_rng": torch.get_rng_state(), "n_train": len(train_set),
                                 "batch_size": config.batch_size, "seed": config.seed})
        sink.on_checkpoint(state["step"], state["epoch"], last_checkpoint, metrics)

    model.train()
    while state["epoch"] < config.n_epochs:
        batches = steps.epoch_batches(lengths, config.batch_size, config.seed, state["epoch"])
        while state["batch"] < len(batches):
            stop = group.agree(sink.should_stop())
            if stop in ("cancel", "pause"):
                if stop == "pause":
                    checkpoint(record)
                sink.on_message("info", f"Training {'paused' if stop == 'pause' else 'cancelled'} at step {state['step']}.")
                return TrainResult(state["trained_tokens"], state["step"], last_checkpoint, stop, record)
            batch = [train_set[i] for i in batches[state["batch"]]]
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                metrics = _batch_metrics(model, batch, pad_id, config, group)
            group.sum_grads(params)
            torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP, foreach=True)
            optimizer.step()
            scheduler.step()
            state["step"] += 1
            state["batch"] += 1
            state["trained_tokens"] += sum(len(e.input_ids) for e in batch)
            record = {"step": state["step"], **{f"train_{k}": v for k, v in metrics.items()}}
            if valid_set and state["step"] % config.eval_every == 0:
                index = (state["step"] // config.eval_every) % math.ceil(len(valid_set) / config.batch_size)
                chunk = valid_set[index * config.batch_size:(index + 1) * config.batch_size]
                record.update({f"valid_{k}": v for k, v in _evaluate(model, chunk, pad_id, autocast, config, group).items()})
            if state["batch"] == len(batches) and valid_set:
                full = _evaluate(model, valid_set, pad_id, autocast, config, group)
                record.update({f"full_valid_{k}": v for k, v in full.items()})
                # A job shorter than eval_every would report no valid_loss at all; the whole
                # set just measured is the best batch estimate there is, at no extra cost.
                for k, v in full.items():
                    record.setdefault(f"valid_{k}", v)
            sink.on_metrics(record)
        state["epoch"] += 1
        state["batch"] = 0
        checkpoint(record)

    if group.rank:
        return TrainResult(state["trained_tokens"], state["step"], None, None, record)
    final = _save(model, output_dir / "final", None)
    sink.on_message("info", f"Training finished: {state['step']} steps, {state['trained_tokens']} tokens.")
    return TrainResult(state["trained_tokens"], state["step"], final, None, record)


def _batch_metrics(model, batch, pad_id, config, group: parallel.Group) -> dict:
    """One step's loss (backward done on this process's share) and metrics over the whole
    batch, named without their train_ prefix."""
    if config.method == "dpo":
        return dpo.batch_metrics(model, batch, pad_id, config.beta, backward=True)
    n_labels = sum(e.n_trained for e in batch)
    loss_sum, correct, _ = steps.batch_loss(model, group.shard(batch), pad_id, backward=True, n_labels=n_labels)
    loss_sum, correct = group.sum(loss_sum, correct)
    return {"loss": loss_sum / n_labels, "mean_token_accuracy": correct / n_labels}


def _evaluate(model, examples, pad_id, autocast, config, group: parallel.Group) -> dict:
    if config.method == "dpo":
        return dpo.evaluate(model, examples, pad_id, config.beta, autocast)
    loss_sum, correct, n = group.sum(*steps.evaluate(model, group.shard(examples), pad_id, autocast))
    return {"loss": loss_sum / n, "mean_token_accuracy": correct / n}


def _load_examples(path, tokenizer, config, sink, what) -> list[chatdata.Encoded]:
    encoded, truncated, empty, with_tools = [], 0, 0, 0
    for row in chatdata.read_jsonl(path):
        with_tools += bool(row.get("tools") or row.get("functions"))
        try:
            example = chatdata.encode(tokenizer, row.get("messages") or [], config.max_length)
        except ValueError:
            example = None
        if example is None or example.n_trained == 0:
            empty += 1
            continue
        truncated += example.truncated
        encoded.append(example)
    chatdata.warn_dropped(sink, what, "examples", config.max_length, truncated, empty,
                          "have no assistant message with weight 1 (left after truncation)")
    if with_tools:
        sink.on_message("warn", f"{with_tools} {what} examples define tools; local models have no tool format, so "
                                f"tool definitions are ignored and tool calls are trained as JSON text.")
    return encoded


def _with_lora(model, config: TrainConfig):
    from peft import LoraConfig, PeftModel, get_peft_model

    model.config.use_cache = False
    if config.resume_from:
        return PeftModel.from_pretrained(model, str(config.resume_from), is_trainable=True)
    lora = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
                      target_modules="all-linear", task_type="CAUSAL_LM")
    return get_peft_model(model, lora)


def _restore(path: Path, optimizer, scheduler, n_train: int, config: TrainConfig) -> dict:
    saved = torch.load(path / STATE_FILE, weights_only=True)
    if (saved["n_train"], saved["batch_size"], saved["seed"]) != (n_train, config.batch_size, config.seed):
        raise ValueError(f"checkpoint {path} was made with another training file, batch size or seed")
    optimizer.load_state_dict(saved["optimizer"])
    scheduler.load_state_dict(saved["scheduler"])
    torch.set_rng_state(saved["torch_rng"])
    return {k: saved[k] for k in ("step", "epoch", "batch", "trained_tokens")}


def _save(model, target: Path, state: dict | None) -> Path:
    """The adapter (and trainer state) in `target`, which is whole whenever it exists."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{target.name}-", dir=target.parent))
    try:
        model.save_pretrained(tmp)
        if state is not None:
            torch.save(state, tmp / STATE_FILE)
        if target.exists():  # left by an earlier attempt at this job: ours is the current state
            stale = Path(tempfile.mkdtemp(prefix=f".old-{target.name}-", dir=target.parent))
            os.rename(target, stale / target.name)
            os.rename(tmp, target)
            shutil.rmtree(stale, ignore_errors=True)
        else:
            os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


