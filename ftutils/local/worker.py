"""The worker process: takes queued jobs from SQLite one at a time and trains them.

Run as `python -m ftutils.local.worker` by `WorkerProcess` (the API's lifespan), with the
settings in FTUTILS_WORKER_SETTINGS. Everything it learns goes straight to SQLite and
disk, so a crash at any moment loses nothing already written; on start it settles what
the previous worker left `running`. Cancel and pause reach it as a job status the API
wrote, read by `JobSink.should_stop` once per training step.
"""
from __future__ import annotations

import base64
import contextlib
import csv
import io
import logging
import math
import os
import shutil
import signal
import sys
import time
from pathlib import Path

from ftutils.openai_rules import AUTO_BETA, Hyperparameters
from ftutils.local import integrations
from ftutils.local.base_models import local_base
from ftutils.local.db import Database, new_id, now
from ftutils.local.jobs import Jobs, model_id
from ftutils.local.settings import Settings

ENV = "FTUTILS_WORKER_SETTINGS"
# OpenAI's result-file columns; the full-validation pair is filled at epoch ends only.
RESULT_COLUMNS = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy",
                  "full_valid_loss", "full_valid_mean_token_accuracy"]
RESULT_DECIMALS = 5  # as OpenAI writes them (1.52347)
LEVELS = {"warning": "warn", "warn": "warn", "error": "error"}
log = logging.getLogger("ftutils.local.worker")


def _finite(record: dict) -> dict:
    # NaN/inf are not JSON; a diverged loss is reported as missing rather than breaking clients.
    return {k: v for k, v in record.items()
            if v is not None and not (isinstance(v, float) and not math.isfinite(v))}


class JobSink:
    """What the trainer reports, turned into events, checkpoints and job fields."""

    def __init__(self, worker: "Worker", job: dict):
        self.worker, self.jobs, self.job = worker, worker.jobs, job
        self.model_id = model_id(job, worker.settings.org)
        self.total_steps = 0
        self.started = time.monotonic()
        self.first_step: int | None = None
        self.last_step = 0
        self.reporters: list = []  # the job's integrations (ftutils.local.integrations)

    def on_start(self, total_steps: int, n_epochs: int, n_train_examples: int) -> None:
        self.total_steps = total_steps
        self.started = time.monotonic()

    def on_message(self, level: str, message: str) -> None:
        self.jobs.event(self.job["id"], message, level=LEVELS.get(level, "info"))

    def on_metrics(self, record: dict) -> None:
        step = int(record["step"])
        data = {**_finite(record), "step": step, "total_steps": self.total_steps}
        message = f"Step {step}/{self.total_steps}: training loss={record.get('train_loss', float('nan')):.4f}"
        if data.get("valid_loss") is not None:
            message += f", validation loss={data['valid_loss']:.4f}"
        if self.first_step is None:
            self.first_step, self.started = step - 1, time.monotonic() - 1e-6
        per_step = (time.monotonic() - self.started) / max(1, step - self.first_step)
        self.last_step = step
        self.jobs.record_metrics(self.job["id"], message, data,
                                 estimated_finish=int(time.time() + per_step * max(0, self.total_steps - step)))
        for reporter in self.reporters:
            reporter.log(data)

    def on_checkpoint(self, step: int, epoch: int, path, metrics: dict) -> None:
        self.jobs.add_checkpoint(self.job, step, path, {**_finite(metrics or {}), "step": float(step)})
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


class Worker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.db = Database(settings.db_path)
        self.jobs = Jobs(self.db, settings.org)
        self.parent = os.getppid()
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
            row = self.db.get("files", file_id)
            try:
                if row is None:
                    raise FileNotFoundError(file_id)
                report = validate_file(self.settings.files_dir / file_id, model=job["model"], method=method)
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
        given = dict(job["hyperparameters"])
        beta = given.pop("beta", None)  # DPO's; Hyperparameters resolves the three shared ones
        hp = Hyperparameters(**given).resolve(n_examples).to_dict()
        hp = {k: hp[k] for k in ("batch_size", "learning_rate_multiplier", "n_epochs")}
        if method == "dpo":
            hp = {"beta": AUTO_BETA if beta in (None, "auto") else beta, **hp}
        return self.jobs.validated(job["id"], hp, {**job["method"], method: {"hyperparameters": hp}})

    def run(self, job: dict) -> None:
        if not job["validated"]:
            if not self.validate(job):
                return
        job = self.jobs.get(job["id"])
        if not self.jobs.start(job["id"]):
            return
        gone = next((p for p in ("training_file", "validation_file")
                     if job[p] and not (self.settings.files_dir / job[p]).exists()), None)
        if gone:  # deleted after validation, e.g. while the job was paused
            self.jobs.fail(job["id"], "file_not_found", f"{job[gone]}: the file was deleted before training read it.",
                           gone)
            return
        sink = JobSink(self, job)
        base = local_base(job["model"], self.settings.model_aliases)
        if base != job["model"] and not job["resume_from"]:
            self.jobs.event(job["id"], f"{job['model']} is trained locally as {base} (its alias on this server)")
        try:
            from ftutils.local.trainer import TrainConfig, train

            hp = job["hyperparameters"]
            config = TrainConfig(
                base_model=base, data_dir=self.settings.data_dir,
                train_file=self.settings.files_dir / job["training_file"],
                validation_file=self.settings.files_dir / job["validation_file"] if job["validation_file"] else None,
                output_dir=self.settings.jobs_dir / job["id"], n_epochs=hp["n_epochs"], batch_size=hp["batch_size"],
                learning_rate_multiplier=hp["learning_rate_multiplier"], seed=job["seed"],
                method=job["method"]["type"], beta=hp.get("beta", AUTO_BETA),
                resume_from=job["resume_from"], extra_models=self.settings.extra_models or None,
                processes=self.settings.processes_for(base))
            sink.reporters = integrations.start(job, lambda m, level: self.jobs.event(job["id"], m, level=level),
                                                self.settings.jobs_dir / job["id"])
            result = train(config, sink)
        except Exception as exc:
            log.exception("job %s failed", job["id"])
            self.jobs.fail(job["id"], "training_failed", f"Training failed: {self.public(exc)}")
            return
        finally:
            for reporter in sink.reporters:
                reporter.close()
        if result.stopped is None:
            self.finish(job, result)
        else:
            self.jobs.stopped(job["id"], result.stopped, shutting_down=self.shutting_down)

    def finish(self, job: dict, result) -> None:
        # OpenAI serves the result file base64-encoded; readers written for it b64decode it.
        content = base64.b64encode(self.result_csv(job["id"]).encode())
        file_id = new_id("file-")
        path = self.settings.files_dir / file_id
        tmp = path.with_name(f".upload-{file_id}.tmp")
        tmp.write_bytes(content)
        os.replace(tmp, path)
        row = {"id": file_id, "bytes": len(content), "created_at": now(), "filename": "step_metrics.csv",
               "purpose": "fine-tune-results", "status": "processed"}
        if not self.jobs.finish(job, adapter_dir=result.adapter_dir, trained_tokens=result.trained_tokens,
                                result_file=row, base_model=local_base(job["model"], self.settings.model_aliases)):
            path.unlink(missing_ok=True)  # cancelled in the last instant: cancel wins

    def result_csv(self, job_id: str) -> str:
        """OpenAI's step-metrics CSV, from the metrics events (the last record of a step wins,
        since a resumed job repeats the steps after its checkpoint)."""
        rows = {}
        for data in self.jobs.metrics_records(job_id):
            rows[int(data["step"])] = {"step": int(data["step"]), "train_loss": data.get("train_loss"),
                                       "train_accuracy": data.get("train_mean_token_accuracy"),
                                       **{k: data.get(k) for k in RESULT_COLUMNS[3:]}}
        out = io.StringIO()
        writer = csv.DictWriter(out, RESULT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for step in sorted(rows):
            writer.writerow({k: "" if v is None else round(v, RESULT_DECIMALS) if isinstance(v, float) else v
                             for k, v in rows[step].items()})
        return out.getvalue()

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
    import ftutils.local.trainer  # noqa: F401

    for name in ("AutoModelForCausalLM", "AutoTokenizer", "LlamaForCausalLM", "LlamaConfig", "PreTrainedTokenizerFast"):
        getattr(transformers, name)
    for name in ("LoraConfig", "PeftModel", "get_peft_model"):
        getattr(peft, name)


def _prepare(settings: Settings) -> None:
    """Convert and load the base models asked for while no job waits (a job that arrives
    meanwhile starts right after); a model that cannot be prepared is the job's to report."""
    from ftutils.local.base_models import load_base

    for model_id in settings.prepare_models:
        try:
            load_base(model_id, settings.data_dir, settings.extra_models)
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
            torch.set_num_threads(settings.torch_threads or max(1, (os.cpu_count() or 2) - 1))
            _warm_up()
            _prepare(settings)
            worker.loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
