"""Jobs past one machine: each job as a Ray Train `TorchTrainer` run of the same training loop.

With `ftutils serve --ray auto|ADDRESS` (FTUTILS_RAY_ADDRESS) the worker process connects to a
Ray cluster as its driver and hands each job to `RayEngine.train(config, sink)` instead of
`training.loop.train`: same arguments, same result. The API server and SQLite stay where they
are; Ray starts FTUTILS_TRAIN_WORKERS workers (one CPU each, or one GPU each where the cluster
has GPUs), makes their torch process group (gloo or NCCL) and runs `_train_fn` in each, which
is `training.loop.run` over `Group.joined()`: the DDP of the embedded worker's processes.

What travels where: the job's files, the converted base model and the job folder are read and
written through the data dir, which the Ray workers must see at the same path (one machine, or
storage the cluster shares: the checked-in assumption, `_check_paths`); the adapter and
checkpoints land in the job folder as the embedded worker writes them. Rank 0's sink calls go
to a `Relay` actor that this driver drains several times a second onto the job's `JobSink`, so
events, metrics and checkpoints reach the job service in the order the embedded worker writes
them; cancel and pause go the other way (the relay's stop flag, read by rank 0 before each step
and broadcast by the loop's `agree`). A Ray worker that dies fails the attempt; Ray restarts
the group (`FailureConfig`) and `_train_fn` resumes from the last checkpoint the relay saw,
replaying the steps after it, as the embedded worker does after a crash.

Measured on the 2-core box (2026-12-08, under the shared CPU lock): `ray.init` of a local head
12 s, once; the test model's 12-step job as a 2-worker run 42-49 s against 7.9 s on the embedded
worker (8.7 s in two DDP processes), ~21 s of it starting the worker group (new Python processes
importing ray and torch). The embedded worker pays none of it.
"""
from __future__ import annotations

import dataclasses
import threading
from pathlib import Path

from ftutils.local.training.config import SilentSink, TrainConfig, TrainResult

DRAIN_SECONDS = 0.1  # how often the driver moves rank 0's reports to the job service
MAX_FAILURES = 2  # restarts of a job's worker group before the job fails


def connect(address: str) -> None:
    """Join the Ray cluster at `address` ("auto": the one running on this machine) as its driver."""
    import ray

    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=False, configure_logging=False)


class RayEngine:
    """`train(config, sink)` as a Ray Train run on `workers` workers."""

    def __init__(self, workers: int):
        self.workers = workers

    def train(self, config: TrainConfig, sink) -> TrainResult:
        import ray
        from ray.train import FailureConfig, RunConfig, ScalingConfig
        from ray.train.torch import TorchTrainer

        relay = ray.remote(num_cpus=0)(Relay).remote()
        gpus = ray.cluster_resources().get("GPU", 0) > 0
        trainer = TorchTrainer(
            _train_fn, train_loop_config={"config": dataclasses.replace(config, processes=1), "relay": relay},
            scaling_config=ScalingConfig(num_workers=self.workers, use_gpu=gpus,
                                         resources_per_worker={"GPU": 1} if gpus else {"CPU": 1}),
            run_config=RunConfig(name="ray", storage_path=str(Path(config.output_dir).resolve()),
                                 failure_config=FailureConfig(max_failures=MAX_FAILURES)))
        outcome: dict = {}
        run = threading.Thread(target=_fit, args=(trainer, outcome), name="ray-fit", daemon=True)
        run.start()
        try:
            while run.is_alive():
                _deliver(ray.get(relay.drain.remote()), sink)
                relay.set_stop.remote(sink.should_stop())
                run.join(DRAIN_SECONDS)
            _deliver(ray.get(relay.drain.remote()), sink)
            if "error" in outcome:
                raise outcome["error"]
            result = ray.get(relay.result.remote())
            if result is None:
                raise RuntimeError("the Ray run ended without a result from its rank 0")
            return result
        finally:
            ray.kill(relay)


def _fit(trainer, outcome: dict) -> None:
    try:
        trainer.fit()
    except Exception as exc:  # noqa: BLE001  (the driver's thread raises it)
        outcome["error"] = _root(exc)


def _root(exc: BaseException) -> BaseException:
    """The training code's own error inside Ray's wrappers, which a job error shows."""
    seen = exc
    while seen.__cause__ is not None:
        seen = seen.__cause__
    return seen if isinstance(seen, Exception) else exc


def _deliver(calls: list, sink) -> None:
    for name, args in calls:
        getattr(sink, name)(*args)


class Relay:
    """Between the driver and rank 0 of one run: sink calls out, the stop flag in, and what a
    restarted attempt needs (the last checkpoint, how many attempts began)."""

    def __init__(self):
        self.calls, self.stop, self.checkpoint, self.attempts, self.outcome = [], None, None, 0, None

    def push(self, name: str, args: tuple) -> None:
        self.calls.append((name, args))
        if name == "on_checkpoint":
            self.checkpoint = (args[0], str(args[2]))

    def drain(self) -> list:
        calls, self.calls = self.calls, []
        return calls

    def set_stop(self, stop) -> None:
        self.stop = stop

    def get_stop(self):
        return self.stop

    def begin(self) -> tuple[int, tuple | None]:
        """(attempts before this one, (step, folder) of the last checkpoint or None)."""
        self.attempts += 1
        return self.attempts - 1, self.checkpoint

    def last_checkpoint(self):
        return self.checkpoint

    def finish(self, result) -> None:
        self.outcome = result

    def result(self):
        return self.outcome


class RelaySink:
    """Rank 0's TrainSink on a Ray worker: every call goes to the relay, in order."""

    def __init__(self, relay):
        self.relay = relay

    def _push(self, name, *args):
        self.relay.push.remote(name, args)

    def on_start(self, total_steps, n_epochs, n_train_examples):
        self._push("on_start", total_steps, n_epochs, n_train_examples)

    def on_message(self, level, message):
        self._push("on_message", level, message)

    def on_metrics(self, record):
        self._push("on_metrics", record)

    def on_checkpoint(self, step, epoch, path, metrics):
        import ray

        ray.get(self.relay.push.remote("on_checkpoint", (step, epoch, str(path), metrics)))  # before going on

    def should_stop(self):
        import ray

        return ray.get(self.relay.get_stop.remote())


def _train_fn(arguments: dict) -> None:
    """One Ray Train worker: the loop on its share of every batch, resumed after a restart."""
    import ray
    import torch

    from ftutils.local.training import loop, parallel

    config, relay = arguments["config"], arguments["relay"]
    group = parallel.Group.joined()
    torch.set_num_threads(config.num_threads or 1)
    _check_paths(config)
    if group.rank == 0:
        attempt, checkpoint = ray.get(relay.begin.remote())
    else:
        checkpoint = ray.get(relay.last_checkpoint.remote())
        attempt = 0
    sink = RelaySink(relay) if group.rank == 0 else SilentSink()
    if checkpoint is not None:
        config = dataclasses.replace(config, resume_from=checkpoint[1])
    if attempt:
        where = f"the checkpoint at step {checkpoint[0]}" if checkpoint else "the start"
        sink.on_message("warn", f"A Ray worker of this job stopped; the run restarted and resumes from {where}.")
    result = loop.run(config, sink, group)  # nothing is reported to Ray itself: the job service has it all
    if group.rank == 0:
        ray.get(relay.finish.remote(result))


def _check_paths(config: TrainConfig) -> None:
    for path in (config.train_file, config.data_dir):
        if not Path(path).exists():
            raise FileNotFoundError(f"{path} is not visible on this Ray node: the data dir must be at the same "
                                    "path on every node (one machine, or storage the cluster shares)")
