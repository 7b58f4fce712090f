"""The worker process: takes queued jobs from SQLite one at a time and trains them.

Run as `python -m ftutils.local.worker.loop` by `WorkerProcess` (the API's lifespan), with the
settings in FTUTILS_WORKER_SETTINGS. Everything it learns goes straight to SQLite and
disk, so a crash at any moment loses nothing already written; on start it settles what
the previous worker left `running`. Cancel and pause reach it as a job status the API
wrote, read by `JobSink.should_stop` once per training step.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from ftutils import openai_rules
from ftutils.local.models import aliases
from ftutils.local.settings import Settings
from ftutils.local.store import Store
from ftutils.local.worker import integrations, results
from ftutils.local.worker.process import ENV, PARENT_ENV
from ftutils.local.worker.sink import JobSink

log = logging.getLogger("ftutils.local.worker")


class Worker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.store = Store.open(settings.db_path, settings.files_dir, settings.jobs_dir, settings.org)
        self.jobs = self.store.jobs
        self.parent = int(os.environ.get(PARENT_ENV) or os.getppid())
        self.shutting_down = False

    # -- process hygiene ---------------------------------------------------------------
    def exit_if_orphaned(self) -> None:
        # The API process was killed: stop as abruptly as it did, so the next server's
        # worker sees the job `running` and recovers it; nothing committed is lost.
        if os.getppid() != self.parent:
            os._exit(3)

    def remove_tree(self, path) -> None:
        path = Path(path).resolve()
        if path.is_relative_to(self.settings.jobs_dir):  # never delete outside our own tree
            shutil.rmtree(path, ignore_errors=True)

    @contextlib.contextmanager
    def exclusive(self):
        """One worker per data dir: a new one waits until an orphaned one has died."""
        import fcntl
        with open(self.settings.data_dir / "worker.lock", "a") as handle:
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    self.exit_if_orphaned()
                    if self.shutting_down:
                        break  # told to stop before our turn came: main() sees the flag
                    time.sleep(0.2)
            yield

    def public(self, exc: BaseException) -> str:
        """An exception as a job error may show it: paths inside the data dir made relative
        (`files/file-…`), since the server's layout is none of the client's business."""
        return f"{type(exc).__name__}: {exc}".replace(f"{self.settings.data_dir}{os.sep}", "")

    # -- job life cycle ----------------------------------------------------------------
    def recover(self) -> None:
        self.jobs.recover()

    def validate(self, job: dict) -> bool:
        """Each file through the one validator, for the job's model and method; the first error
        fails the job at `validating_files`, naming the file, line and field."""
        from ftutils.data.validate import validate_file

        method = job["method"]["type"]
        n_examples = 0
        for param in ("training_file", "validation_file"):
            file_id = job[param]
            if not file_id:
                continue
            self.jobs.event(job["id"], f"Validating {param.replace('_', ' ')}: {file_id}")
            row = self.store.files.get(file_id)
            try:
                if row is None:
                    raise FileNotFoundError(file_id)
                report = validate_file(self.store.files.path(file_id), model=job["model"], method=method)
            except FileNotFoundError:
                self.jobs.fail(job["id"], "file_not_found", f"{file_id}: the file was deleted before it was validated.",
                               param)
                return False
            # OpenAI's 10-example minimum is for training data; a small validation file is fine.
            problems = [f for f in report.errors if not (param == "validation_file" and f.code == "too_few_examples")]
            if problems:
                self.jobs.fail(job["id"], problems[0].code, problems[0].describe(row["filename"]), param)
                return False
            if param == "training_file":
                n_examples = report.n_examples
        hp = openai_rules.resolved_hyperparameters(method, job["hyperparameters"], n_examples)
        return self.jobs.validated(job["id"], hp, {**job["method"], method: {"hyperparameters": hp}})

    def run(self, job: dict) -> None:
        if not job["validated"]:
            if not self.validate(job):
                return
        job = self.jobs.get(job["id"])
        if not self.jobs.start(job["id"]):
            return
        files = self.store.files
        gone = next((p for p in ("training_file", "validation_file") if job[p] and not files.path(job[p]).exists()), None)
        if gone:  # deleted after validation, e.g. while the job was paused
            self.jobs.fail(job["id"], "file_not_found", f"{job[gone]}: the file was deleted before training read it.",
                           gone)
            return
        base = aliases.local_base(job["model"], self.settings.model_aliases)
        if base != job["model"] and not job["resume_from"]:
            self.jobs.event(job["id"], f"{job['model']} is trained locally as {base} (its alias on this server)")
        sink = JobSink(self, job)
        try:
            config = self.train_config(job, base)
            sink.reporters = integrations.start(job, lambda m, level: self.jobs.event(job["id"], m, level=level),
                                                self.settings.jobs_dir / job["id"])
            result = self.engine()(config, sink)
        except Exception as exc:
            log.exception("job %s failed", job["id"])
            self.jobs.fail(job["id"], "training_failed", f"Training failed: {self.public(exc)}")
            return
        finally:
            for reporter in sink.reporters:
                reporter.close()
        if result.stopped is None:
            self.finish(job, result, base)
        else:
            self.jobs.stopped(job["id"], result.stopped, shutting_down=self.shutting_down)

    def engine(self):
        """What trains a job: `train(config, sink)` here, or the same loop as a Ray Train run."""
        if self.settings.ray_address:
            from ftutils.local.worker.ray_engine import RayEngine
            return RayEngine(self.settings.train_workers).train
        from ftutils.local.training.loop import train
        return train

    def train_config(self, job: dict, base: str):
        """The trainer's config for `job` on the local base `base`, its hyperparameters as resolved."""
        from ftutils.local.training.config import TrainConfig

        hp, method, files = job["hyperparameters"], job["method"]["type"], self.store.files
        return TrainConfig(
            base_model=base, data_dir=self.settings.data_dir, train_file=files.path(job["training_file"]),
            validation_file=files.path(job["validation_file"]) if job["validation_file"] else None,
            output_dir=self.settings.jobs_dir / job["id"], n_epochs=hp["n_epochs"], batch_size=hp["batch_size"],
            learning_rate_multiplier=hp["learning_rate_multiplier"], seed=job["seed"], method=method,
            beta=hp.get("beta", openai_rules.AUTO_BETA), resume_from=job["resume_from"],
            extra_models=self.settings.extra_models or None, processes=self.settings.processes_for(base, method))

    def finish(self, job: dict, result, base: str) -> None:
        row = self.store.files.write_result(results.result_file(self.jobs.metrics_records(job["id"])), results.FILENAME)
        if not self.jobs.finish(job, adapter_dir=result.adapter_dir, trained_tokens=result.trained_tokens,
                                result_file=row, base_model=base):
            self.store.files.path(row["id"]).unlink(missing_ok=True)  # cancelled in the last instant: cancel wins

    def loop(self) -> None:
        while not self.shutting_down:
            self.exit_if_orphaned()
            job = self.jobs.next_job()
            if job is None:
                time.sleep(self.settings.poll_seconds)
                continue
            try:
                self.run(job)
            except Exception as exc:  # a bug here must not leave the job running forever
                log.exception("worker error on %s", job["id"])
                self.jobs.fail(job["id"], "internal_error", f"Internal error: {self.public(exc)}")


def _warm_up() -> None:
    """Pay the heavy imports while idle, not inside the first job: transformers and peft load
    their modules lazily, on first attribute access, which costs seconds on a busy CPU."""
    import peft
    import transformers

    import ftutils.data.validate  # noqa: F401
    import ftutils.local.training.loop  # noqa: F401

    for name in ("AutoModelForCausalLM", "AutoTokenizer", "LlamaForCausalLM", "LlamaConfig", "PreTrainedTokenizerFast"):
        getattr(transformers, name)
    for name in ("LoraConfig", "PeftModel", "get_peft_model"):
        getattr(peft, name)


def prepare_models(settings: Settings) -> None:
    """Convert and load the base models asked for while no job waits (a job that arrives
    meanwhile starts right after); a model that cannot be prepared is the job's to report."""
    from ftutils.local.models import loading

    for model_id in settings.prepare_models:
        try:
            loading.load_base(model_id, settings.data_dir, settings.extra_models)
            log.info("prepared %s", model_id)
        except Exception as exc:  # noqa: BLE001
            log.warning("could not prepare %s: %s", model_id, exc)


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s worker %(levelname)s %(message)s")
    settings = Settings.from_json(os.environ.pop(ENV))
    worker = Worker(settings)

    def shut_down(signum, frame):
        worker.shutting_down = True

    signal.signal(signal.SIGTERM, shut_down)
    # Ctrl-C reaches the whole process group; the API process decides when we stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # Training is background work: let the API process (and the notebook) win the CPU.
    with contextlib.suppress(OSError):
        os.nice(5)
    with worker.exclusive():
        if not worker.shutting_down:
            worker.recover()
            import torch
            torch.set_num_threads(settings.worker_threads())
            _warm_up()
            prepare_models(settings)
            if settings.ray_address:
                from ftutils.local.worker import ray_engine
                ray_engine.connect(settings.ray_address)
            worker.loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
