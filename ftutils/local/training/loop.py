"""LoRA fine-tuning with OpenAI's semantics: `train(config, sink)`.

`n_epochs` passes over the training file, `batch_size` examples per optimizer step,
`learning_rate_multiplier` times our base LoRA rate, and `seed` fixing everything random.
What a step optimises is the job's Objective (`sft.Supervised` or `dpo.Dpo`); the loop is the
same for both. It knows nothing of HTTP or SQLite: the worker passes a sink that turns metrics
and checkpoints into job events and rows, and answers `should_stop()` from the job's
cancel/pause flags. With `config.processes` > 1 it runs in that many processes, each on its
share of every batch (`parallel`, torch's DDP: the loop meets the process group only through `Group`).
How a step is made fast is in `speed` and `sft`.
"""
from __future__ import annotations

import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Protocol

import ftutils.threads  # noqa: F401  (before torch loads)

import torch  # noqa: E402

from ftutils.local.models.loading import load_base  # noqa: E402
from ftutils.local.training import parallel, speed  # noqa: E402
from ftutils.local.training.config import STATE_FILE, TrainConfig, TrainResult, TrainSink  # noqa: E402
from ftutils.local.training.dpo import Dpo  # noqa: E402
from ftutils.local.training.sft import Supervised  # noqa: E402

WARMUP_FRACTION = 0.05
GRAD_CLIP = 1.0
MEGABATCH = 50  # batches sorted by length together; HF's LengthGroupedSampler uses 50 too


class Objective(Protocol):
    """What a training method optimises: `sft.Supervised` and `dpo.Dpo` implement it."""

    def load(self, path, tokenizer, max_length: int, sink: TrainSink, what: str) -> list:
        """The items of a training or validation file (each with `input_ids`, for batching)."""

    def prepare(self, model, items: list, pad_id: int) -> None:
        """Once, with the LoRA model built and before the speed tricks are installed."""

    def loss(self, model, share: list, batch: list, pad_id: int, backward: bool, passes=None) -> list[float]:
        """Sums over `share` (this process's part of `batch`) that add up across processes;
        with `backward`, the gradients of the whole batch's mean loss, each forward pass made
        as `passes(fn, *args, last=...)` = `fn(model, *args)` (`parallel.Passes`: through DDP)."""

    def metrics(self, sums: list[float]) -> dict:
        """The added-up sums as metrics, without their train_/valid_ prefix."""


def objective_for(config: TrainConfig) -> Objective:
    return Dpo(config.beta) if config.method == "dpo" else Supervised()


def train(config: TrainConfig, sink: TrainSink) -> TrainResult:
    processes = config.processes if config.batch_size > 1 else 1  # a batch of one cannot be shared
    threads = config.num_threads or (1 if config.one_thread or processes > 1 else None)
    saved_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with parallel.started(config, processes, run, lambda message: sink.on_message("warn", message)) as group:
            return run(config, sink, group)
    finally:
        torch.set_num_threads(saved_threads)


def run(config: TrainConfig, sink: TrainSink, group: parallel.Group | None = None) -> TrainResult:
    """The loop, in every process of `group` (default: the process group this process is in,
    if any); only rank 0 writes checkpoints and the model."""
    return _Training(config, sink, group or parallel.Group.joined()).run()


def epoch_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """One epoch's batches of example indices: shuffled, then length-grouped.

    Sorting within megabatches of 50 batches puts similar lengths together (little
    padding) while the shuffle still changes which examples meet each epoch; the batch
    order is shuffled again so long batches do not all come first.
    """
    generator = torch.Generator().manual_seed(seed * 100_003 + epoch)
    order = torch.randperm(len(lengths), generator=generator).tolist()
    span = batch_size * MEGABATCH
    batches = []
    for start in range(0, len(order), span):
        mega = sorted(order[start:start + span], key=lambda i: lengths[i], reverse=True)
        batches += [mega[i:i + batch_size] for i in range(0, len(mega), batch_size)]
    return [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]


class _Training:
    """One run of the loop: the model, its optimizer and where the loop stands."""

    def __init__(self, config: TrainConfig, sink: TrainSink, group: parallel.Group):
        torch.manual_seed(config.seed)
        self.config, self.sink, self.group = config, sink, group
        self.objective = objective_for(config)
        model, tokenizer = load_base(config.base_model, config.data_dir, config.extra_models)
        self.train_set = self.objective.load(config.train_file, tokenizer, config.max_length, sink, "training")
        self.valid_set = self.objective.load(config.validation_file, tokenizer, config.max_length, sink,
                                             "validation") if config.validation_file else []
        if not self.train_set:
            raise ValueError("no training example has an assistant message to learn from")
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.total_steps = math.ceil(len(self.train_set) / config.batch_size) * config.n_epochs
        self.model = _with_lora(model.to(group.device), config)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        group.start(self.model, self.params)
        self.optimizer = speed.adamw(self.params, config.base_learning_rate * config.learning_rate_multiplier)
        self.scheduler = _schedule(self.optimizer, self.total_steps)
        self.state = {"step": 0, "epoch": 0, "batch": 0, "trained_tokens": 0}
        if config.resume_from:
            self.state = _restore(Path(config.resume_from), self.optimizer, self.scheduler, len(self.train_set), config)
            sink.on_message("info", f"Resumed from step {self.state['step']} (epoch {self.state['epoch'] + 1}).")
        self.objective.prepare(self.model, self.train_set + self.valid_set, self.pad_id)
        self.bf16 = speed.want_bf16(config.use_bf16, self.model.device)
        speed.tune_for_speed(self.model, self.bf16, max(len(e.input_ids) for e in self.train_set + self.valid_set))
        self.record: dict = {}
        self.last_checkpoint: Path | None = None

    def autocast(self):
        return torch.autocast(self.model.device.type, dtype=torch.bfloat16, enabled=self.bf16)

    def run(self) -> TrainResult:
        config, state = self.config, self.state
        self._announce()
        lengths = [len(e.input_ids) for e in self.train_set]
        self.model.train()
        while state["epoch"] < config.n_epochs:
            batches = epoch_batches(lengths, config.batch_size, config.seed, state["epoch"])
            while state["batch"] < len(batches):
                stop = self.group.agree(self.sink.should_stop())
                if stop in ("cancel", "pause"):
                    return self._stopped(stop)
                self._step([self.train_set[i] for i in batches[state["batch"]]], len(batches))
            state["epoch"] += 1
            state["batch"] = 0
            self._checkpoint()
        return self._finished()

    def _announce(self) -> None:
        config, size = self.config, self.group.size
        self.sink.on_message("info", f"Fine-tuning {config.base_model} with LoRA r={config.lora_r} on all linear layers: "
                                     f"{len(self.train_set)} examples, {config.n_epochs} epochs, batch size "
                                     f"{config.batch_size}, peak learning rate {self.optimizer.defaults['lr']:.2g}"
                                     f"{', bf16 autocast' if self.bf16 else ''}"
                                     f"{f', each batch shared by {size} processes' if size > 1 else ''}.")
        self.sink.on_start(self.total_steps, config.n_epochs, len(self.train_set))

    def _step(self, batch: list, n_batches: int) -> None:
        config, state, valid = self.config, self.state, self.valid_set
        self.optimizer.zero_grad(set_to_none=True)
        passes = self.group.passes(self.model)
        with self.autocast():
            sums = self.objective.loss(self.model, self.group.shard(batch), batch, self.pad_id, backward=True,
                                       passes=passes)
            passes.finish()  # the gradients are the whole batch's now, in every process
        metrics = self.objective.metrics(self.group.sum(*sums))
        torch.nn.utils.clip_grad_norm_(self.params, GRAD_CLIP, foreach=True)
        self.optimizer.step()
        self.scheduler.step()
        state["step"] += 1
        state["batch"] += 1
        state["trained_tokens"] += sum(len(e.input_ids) for e in batch)
        self.record = record = {"step": state["step"], **{f"train_{k}": v for k, v in metrics.items()}}
        if valid and state["step"] % config.eval_every == 0:
            index = (state["step"] // config.eval_every) % math.ceil(len(valid) / config.batch_size)
            chunk = valid[index * config.batch_size:(index + 1) * config.batch_size]
            record.update({f"valid_{k}": v for k, v in self._evaluate(chunk).items()})
        if state["batch"] == n_batches and valid:
            full = self._evaluate(valid)
            record.update({f"full_valid_{k}": v for k, v in full.items()})
            # A job shorter than eval_every would report no valid_loss at all; the whole
            # set just measured is the best batch estimate there is, at no extra cost.
            for k, v in full.items():
                record.setdefault(f"valid_{k}", v)
        self.sink.on_metrics(record)

    @torch.no_grad()
    def _evaluate(self, items: list) -> dict:
        """The objective's metrics over `items`, in as few forward passes as fit."""
        self.model.eval()
        with self.autocast():
            sums = self.objective.loss(self.model, self.group.shard(items), items, self.pad_id, backward=False)
        self.model.train()
        return self.objective.metrics(self.group.sum(*sums))

    def _checkpoint(self) -> None:
        state = self.state
        if self.group.rank:
            return
        if self.last_checkpoint and self.last_checkpoint.name == f"step-{state['step']}":
            return  # a pause right after an epoch's checkpoint: that one is this state
        self.last_checkpoint = _save(self.model, Path(self.config.output_dir) / "checkpoints" / f"step-{state['step']}",
                                     {**state, "optimizer": self.optimizer.state_dict(),
                                      "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                                      "n_train": len(self.train_set), "batch_size": self.config.batch_size,
                                      "seed": self.config.seed})
        self.sink.on_checkpoint(state["step"], state["epoch"], self.last_checkpoint, self.record)

    def _stopped(self, stop: str) -> TrainResult:
        if stop == "pause":
            self._checkpoint()
        self.sink.on_message("info", f"Training {'paused' if stop == 'pause' else 'cancelled'} at step "
                                     f"{self.state['step']}.")
        return TrainResult(self.state["trained_tokens"], self.state["step"], self.last_checkpoint, stop, self.record)

    def _finished(self) -> TrainResult:
        state = self.state
        if self.group.rank:
            return TrainResult(state["trained_tokens"], state["step"], None, None, self.record)
        final = _save(self.model, Path(self.config.output_dir) / "final", None)
        self.sink.on_message("info", f"Training finished: {state['step']} steps, {state['trained_tokens']} tokens.")
        return TrainResult(state["trained_tokens"], state["step"], final, None, self.record)


def _schedule(optimizer, total_steps: int):
    """Linear warm-up over WARMUP_FRACTION of the steps, then linear decay to 0."""
    warmup = max(1, round(WARMUP_FRACTION * total_steps))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: (s + 1) / warmup if s < warmup else max(0.0, (total_steps - s) / (total_steps - warmup)))


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
