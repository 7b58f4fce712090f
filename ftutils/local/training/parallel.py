"""Data parallelism by torch's DDP: each process takes a share of every batch.

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

Every process holds the whole model. `DistributedDataParallel` wraps a `Replica` holding only
the LoRA parameters (so it broadcasts and buckets 4.9M numbers, not SmolLM2's 135M frozen
ones) and sums their gradients during the backward pass of each process's last forward pass
of a step; the earlier micro-batches run under `no_sync()`. Summed, not averaged (a comm hook):
each share's loss is already divided by the whole batch's count, so the sum is the batch's
gradient and every process takes the same optimizer step. Rank 0 alone writes events and
checkpoints and decides when to stop; the others follow.

The seam with the training loop is `Group`: `start` (DDP built, rank 0's initial LoRA weights
everywhere), `agree` (stop or go on, before each step), `shard` and `sum` (each process's
share of a batch, and the share's sums added up), `passes` (how the objective runs its forward
passes: through DDP) and `device`. On one machine `started(config, size, loop)` starts the
helper processes as `torch.distributed.run` does (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE,
LOCAL_RANK in each one's environment, `init_method="env://"`; gloo on CPU, NCCL on CUDA) and
runs `loop(config, sink, group)` in them: the loop is passed in, so this module imports no
training code. Where something else made the process group (a Ray Train worker),
`Group.joined()` is this process's place in it.
"""
from __future__ import annotations

import contextlib
import datetime
import os
import socket
import sys
import threading
import time

import ftutils.threads  # noqa: F401  (before torch loads, in the helper processes too)

import torch
import torch.distributed as dist

from ftutils.local.training.config import SilentSink

TIMEOUT = datetime.timedelta(minutes=10)  # a collective waits this long for a dead or stuck peer
STOPS = (None, "cancel", "pause")  # what rank 0 can tell the others before a step


def backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


class Replica(torch.nn.Module):
    """What DDP wraps: the trainable parameters alone; `forward(fn, *args)` is `fn(model, *args)`,
    so every forward pass an objective makes goes through DDP (its reducer expects gradients
    only after a DDP forward) while the model stays the one the objective knows."""

    def __init__(self, model, params: list[torch.Tensor]):
        super().__init__()
        self.trainable = torch.nn.ParameterList(params)
        object.__setattr__(self, "model", model)  # not a submodule: DDP must not see the frozen weights

    def forward(self, fn, *args):
        return fn(self.model, *args)


def _sum(state, bucket):
    """DDP's all-reduce, summing (its default hook divides by the number of processes)."""
    return dist.all_reduce(bucket.buffer(), async_op=True).get_future().then(lambda done: done.value()[0])


def _zero(model):
    return sum(p.sum() for p in model.parameters() if p.requires_grad) * 0.0


class Passes:
    """The forward passes of one step's objective: `passes(fn, *args, last=...)` is
    `fn(model, *args)`, through DDP when there are several processes; `last` marks the pass
    whose backward sums the gradients (the others accumulate under `no_sync`)."""

    def __init__(self, model, ddp=None):
        self.model, self.ddp, self.synced = model, ddp, False

    def __call__(self, fn, *args, last: bool = True):
        if self.ddp is None or not torch.is_grad_enabled():
            return fn(self.model, *args)
        if last:
            self.synced = True
            return self.ddp(fn, *args)
        with self.ddp.no_sync():
            return self.ddp(fn, *args)

    def finish(self) -> None:
        """A process that made no synced pass (its share was empty) still takes part in the
        step's gradient sum, adding zeros."""
        if self.ddp is not None and not self.synced:
            self.ddp(_zero).backward()


class Group:
    """Where this process stands among `size` training processes (size 1: alone, no calls)."""

    def __init__(self, rank: int = 0, size: int = 1, local_rank: int | None = None):
        self.rank, self.size = rank, size
        self.local_rank = rank if local_rank is None else local_rank
        self.ddp = None

    @classmethod
    def joined(cls) -> "Group":
        """This process's place in a process group something else initialised (Ray Train)."""
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return cls()
        return cls(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)))

    @property
    def device(self) -> torch.device:
        """This process's device: its own GPU where there are GPUs, else the CPU."""
        if not torch.cuda.is_available():
            return torch.device("cpu")
        # A Ray worker sees its own GPU alone (CUDA_VISIBLE_DEVICES), as device 0.
        return torch.device("cuda", self.local_rank % torch.cuda.device_count())

    def shard(self, examples: list) -> list:
        """This process's share: examples sorted by length, dealt out in turn, so each
        share has about the same tokens (and little padding)."""
        if self.size == 1:
            return examples
        ordered = sorted(examples, key=lambda e: len(e.input_ids), reverse=True)
        return ordered[self.rank::self.size]

    def start(self, model, params: list[torch.Tensor]) -> None:
        """DDP over `params` (the LoRA weights), which makes rank 0's values everyone's (the same
        seed gives the same ones; this makes sure of it)."""
        if self.size == 1:
            return
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.ddp = torch.nn.parallel.DistributedDataParallel(Replica(model, params), device_ids=ids)
        self.ddp.register_comm_hook(None, _sum)

    def passes(self, model) -> Passes:
        """How one step's objective runs its forward passes (call `finish()` after them)."""
        return Passes(model, self.ddp)

    def sum(self, *values: float) -> list[float]:
        if self.size == 1:
            return list(values)
        summed = torch.tensor(values, dtype=torch.float64, device=self.device)
        dist.all_reduce(summed)
        return summed.tolist()

    def agree(self, stop: str | None) -> str | None:
        """Rank 0's answer to "stop now?", for every process."""
        if self.size == 1:
            return stop
        code = torch.tensor([STOPS.index(stop) if self.rank == 0 else 0], device=self.device)
        dist.broadcast(code, src=0)
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
    port = _free_port()
    context = torch.multiprocessing.get_context("spawn")
    ready = [context.Event() for _ in range(1, size)]
    helpers = [context.Process(target=run_helper, args=(loop, config, rank, size, port, os.getpid(),
                                                     ready[rank - 1]), daemon=True) for rank in range(1, size)]
    try:
        for helper in helpers:
            helper.start()
        _meet(helpers, ready, port, size)
    except Exception as exc:  # noqa: BLE001  (training goes on in one process)
        warn(f"Training in one process: {size} processes could not start together ({exc}).")
        _end(helpers)
        helpers = None
    if helpers is None:
        yield Group()
        return
    try:
        yield Group(0, size)
    finally:
        with contextlib.suppress(Exception):
            dist.destroy_process_group()
        _end(helpers)


def rendezvous(rank: int, size: int, port: int) -> dict[str, str]:
    """The variables `torch.distributed.run` gives each process it starts (all on this machine)."""
    return {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": str(rank), "WORLD_SIZE": str(size),
            "LOCAL_RANK": str(rank)}


def _join(rank: int, size: int, port: int) -> None:
    os.environ.update(rendezvous(rank, size, port))
    if torch.cuda.is_available():
        torch.cuda.set_device(rank % torch.cuda.device_count())
    dist.init_process_group(backend(), init_method="env://", timeout=TIMEOUT)


def _meet(helpers, ready, port: int, size: int) -> None:
    """Rank 0 joins the group, once every helper got as far as meeting: one that died on the
    way would otherwise keep rank 0 waiting for the whole TIMEOUT."""
    for helper, event in zip(helpers, ready):
        while not event.wait(0.5):
            if not helper.is_alive():
                raise RuntimeError(f"a training helper process exited with code {helper.exitcode} before it started")
    saved = {k: os.environ.get(k) for k in rendezvous(0, size, port)}
    try:
        _join(0, size, port)
    finally:  # the worker process trains other jobs later, alone or with another port
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _end(helpers) -> None:
    for helper in helpers:
        helper.join(timeout=10)
        if helper.is_alive():
            helper.kill()
            helper.join()


def run_helper(loop, config, rank: int, size: int, port: int, parent: int, ready) -> None:
    """A helper process: the same training loop on its share, silent, until rank 0 ends it."""
    # A SIGKILLed worker cannot stop its helpers; they notice they were orphaned.
    threading.Thread(target=_exit_when_orphaned, args=(parent,), daemon=True).start()
    torch.set_num_threads(config.num_threads or 1)
    ready.set()
    _join(rank, size, port)
    try:
        loop(config, SilentSink(), Group(rank, size))
    finally:
        dist.destroy_process_group()


def _exit_when_orphaned(parent: int) -> None:
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(1)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _loopback() -> None:
    # Set before the helpers start, so they inherit it. gloo otherwise binds to the address the hostname resolves to; training never leaves the machine.
    if sys.platform.startswith("linux"):
        os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
