"""Data-parallel training on one machine: each process takes a share of every batch.

Why processes rather than threads: a step is thousands of small ops; threads must meet
after every one of them, processes once a step. Batch-8 steps of SmolLM2 on the
walkthrough's 160 training chats, 2 vCPUs, one run after another (`benchmarks/bench_train.py`
times it as "ours x2"):
  cores free:   one thread 1.39 s, two threads 1.03 s, two processes 0.85-0.88 s (each half
                timed as a batch of 4 in its own process)
  cores busier: one thread 1.33-1.39 s, two threads 1.14-1.24 s, two processes 1.21-1.28 s
  a real job through the server, a client polling: one thread 1.44 s, two threads 1.31 s,
                two processes 1.33 s
So on this VM the gain ranges from ~7 % to ~1.6x, depending on what else its host runs.

Every process holds the whole model. After each backward pass the LoRA gradients are
summed across processes (gloo over the loopback interface, meeting through a file in the
job folder), so every process takes the same optimizer step on the same numbers and the
weights stay equal without being sent. Rank 0 is the caller: it alone writes events and
checkpoints and decides when to stop; the others follow.

The seam with the training loop is `Group`, which the loop calls in four places: `start`
(the same initial weights everywhere), `agree` (stop or go on, before each step), `shard` and
`sum` (each process's share of a batch, and the share's sums added up), and `sum_grads`
(after backward). `started(config, size, loop)` runs `loop(config, sink, group)` in the
helper processes: the loop is passed in, so this module imports no training code.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import shutil
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import ftutils.threads  # noqa: F401  (before torch loads, in the helper processes too)

import torch

from ftutils.local.training.config import SilentSink

TIMEOUT = datetime.timedelta(minutes=10)  # a collective waits this long for a dead or stuck peer
STOPS = (None, "cancel", "pause")  # what rank 0 can tell the others before a step


@dataclass(frozen=True)
class Group:
    """Where this process stands among `size` training processes (size 1: alone, no calls)."""

    rank: int = 0
    size: int = 1

    def shard(self, examples: list) -> list:
        """This process's share: examples sorted by length, dealt out in turn, so each
        share has about the same tokens (and little padding)."""
        if self.size == 1:
            return examples
        ordered = sorted(examples, key=lambda e: len(e.input_ids), reverse=True)
        return ordered[self.rank::self.size]

    def start(self, tensors: list[torch.Tensor]) -> None:
        """Rank 0's values in every process (the LoRA weights at the start: the same seed
        gives the same ones, this makes sure of it)."""
        if self.size == 1:
            return
        flat = torch.cat([t.detach().reshape(-1) for t in tensors])
        torch.distributed.broadcast(flat, src=0)
        with torch.no_grad():
            for t, part in zip(tensors, flat.split([t.numel() for t in tensors])):
                t.copy_(part.view_as(t))

    def sum_grads(self, params: list[torch.Tensor]) -> None:
        """Each parameter's gradient becomes the sum over processes (a process whose share
        was empty adds zeros), in one message."""
        if self.size == 1:
            return
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1) for p in params])
        torch.distributed.all_reduce(flat)
        for p, part in zip(params, flat.split([p.numel() for p in params])):
            p.grad = part.view_as(p)

    def sum(self, *values: float) -> list[float]:
        if self.size == 1:
            return list(values)
        summed = torch.tensor(values, dtype=torch.float64)
        torch.distributed.all_reduce(summed)
        return summed.tolist()

    def agree(self, stop: str | None) -> str | None:
        """Rank 0's answer to "stop now?", for every process."""
        if self.size == 1:
            return stop
        code = torch.tensor([STOPS.index(stop) if self.rank == 0 else 0])
        torch.distributed.broadcast(code, src=0)
        return STOPS[int(code)]


@contextlib.contextmanager
def started(config, size: int, loop, warn=lambda message: None):
    """Rank 0's Group, with `size - 1` helper processes running `loop(config, sink, group)`
    beside it until the block ends; one process (and a `warn`ing) if the helpers cannot start
    or meet. `loop` must be a module-level function: the helpers are spawned and unpickle it."""
    if size == 1:
        yield Group()
        return
    _loopback()
    folder = Path(config.output_dir)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob(".parallel-*"):  # left by a worker that was killed
        shutil.rmtree(stale, ignore_errors=True)
    store = Path(tempfile.mkdtemp(prefix=".parallel-", dir=folder)) / "store"
    context = torch.multiprocessing.get_context("spawn")
    ready = [context.Event() for _ in range(1, size)]
    helpers = [context.Process(target=run_helper, args=(loop, config, rank, size, str(store), os.getpid(),
                                                     ready[rank - 1]), daemon=True) for rank in range(1, size)]
    try:
        for helper in helpers:
            helper.start()
        _meet(helpers, ready, store, size)
    except Exception as exc:  # noqa: BLE001  (training goes on in one process)
        warn(f"Training in one process: {size} processes could not start together ({exc}).")
        _end(helpers, store)
        helpers = None
    if helpers is None:
        yield Group()
        return
    try:
        yield Group(0, size)
    finally:
        with contextlib.suppress(Exception):
            torch.distributed.destroy_process_group()
        _end(helpers, store)


def _meet(helpers, ready, store: Path, size: int) -> None:
    """Rank 0 joins the group, once every helper got as far as meeting: one that died on the
    way would otherwise keep rank 0 waiting for the whole TIMEOUT."""
    for helper, event in zip(helpers, ready):
        while not event.wait(0.5):
            if not helper.is_alive():
                raise RuntimeError(f"a training helper process exited with code {helper.exitcode} before it started")
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=0, world_size=size,
                                         timeout=TIMEOUT)


def _end(helpers, store: Path) -> None:
    for helper in helpers:
        helper.join(timeout=10)
        if helper.is_alive():
            helper.kill()
            helper.join()
    shutil.rmtree(store.parent, ignore_errors=True)


def run_helper(loop, config, rank: int, size: int, store: str, parent: int, ready) -> None:
    """A helper process: the same training loop on its share, silent, until rank 0 ends it."""
    # A SIGKILLed worker cannot stop its helpers; they notice they were orphaned.
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    torch.set_num_threads(config.num_threads or 1)
    ready.set()
    torch.distributed.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=size,
                                         timeout=TIMEOUT)
    try:
        loop(config, SilentSink(), Group(rank, size))
    finally:
        torch.distributed.destroy_process_group()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _loopback() -> None:
    # Set before the helpers start, so they inherit it. gloo otherwise binds to the address the hostname resolves to; training never leaves the machine.
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
