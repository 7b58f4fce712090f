"""The worker process: takes queued jobs from SQLite one at a time and trains them.

Run as `python -m ftutils.local.worker` by `WorkerProcess` (the API's lifespan), with the
settings in FTUTILS_WORKER_SETTINGS. Everything it learns goes straight to SQLite and
disk, so a crash at any moment loses nothing already written; on start it settles what
the previous worker left `running`. Cancel and pause reach it as a job status the API
wrote, read by `JobSink.should_stop` once per training step.
"""
from __future__ import annotations

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

from ftutils import openai_rules
from ftutils.openai_rules import Hyperparameters
from ftutils.local.db import Database, new_id, now
from ftutils.local.settings import Settings

ENV = "FTUTILS_WORKER_SETTINGS"
MAX_CRASH_RESTARTS = 3  # a job that takes the worker down this often fails instead of looping
RESULT_COLUMNS = ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy"]
LEVELS = {"warning": "warn", "warn": "warn", "error": "error"}
log = logging.getLogger("ftutils.local.worker")


def model_name(job: dict, org: str) -> str:
    return openai_rules.fine_tuned_model_id(job["model"], org, job["suffix"], job["id"])


def _finite(record: dict) -> dict:
    # NaN/inf are not JSON; a diverged loss is reported as missing rather than breaking clients.
    return {k: v for k, v in record.items()
            if v is not None and not (isinstance(v, float) and not math.isfinite(v))}


class JobSink:
    """What the trainer reports, turned into events, checkpoints and job fields."""

    def __init__(self, worker: "Worker", job: dict):
        self.worker, self.db, self.job = worker, worker.db, job
        self.model_id = model_name(job, worker.settings.org)
        self.total_steps = 0
        self.started = time.monotonic()
        self.first_step: int | None = None
        self.last_step = 0

    def on_start(self, total_steps: int, n_epochs: int, n_train_examples: int) -> None:
        self.total_steps = total_steps
        self.started = time.monotonic()

    def on_message(self, level: str, message: str) -> None:
        self.db.add_event(self.job["id"], message, level=LEVELS.get(level, "info"))

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
        with self.db.transaction():
            self.db.add_event(self.job["id"], message, type="metrics", data=data)
            self.db.update("jobs", self.job["id"],
                           estimated_finish=int(time.time() + per_step * max(0, self.total_steps - step)))

    def on_checkpoint(self, step: int, epoch: int, path, metrics: dict) -> None:
        model = openai_rules.checkpoint_model_id(self.model_id, step)
        metrics = {**_finite(metrics or {}), "step": float(step)}
        with self.db.transaction():
            # A checkpoint re-made after a crash replaces the row its first attempt left.
            self.db.conn.execute("DELETE FROM checkpoints WHERE fine_tuned_model_checkpoint = ?", (model,))
            self.db.insert("checkpoints", {"id": new_id("ftckpt-"), "job_id": self.job["id"], "created_at": now(),
                                           "step_number": step, "metrics": metrics,
                                           "fine_tuned_model_checkpoint": model, "path": str(path)})
            self.db.add_event(self.job["id"], f"Checkpoint created at step {step}")
        self.prune()

    def prune(self) -> None:
        """Keep the newest `keep_checkpoints`, as OpenAI does: older rows first, then their folders."""
        rows = self.db.checkpoints(self.job["id"])
        for row in rows[:-self.worker.settings.keep_checkpoints]:
            self.db.delete("checkpoints", row["id"])
            self.worker.remove_tree(row["path"])

    def should_stop(self):
        self.worker.exit_if_orphaned()
        if self.worker.shutting_down:
            return "pause"
        status = self.db.conn.execute("SELECT status FROM jobs WHERE id = ?", (self.job["id"],)).fetchone()["status"]
        if status == "cancelled":
            return "cancel"
        if status == "paused":
            return "pause"
        if status == "queued":  # resumed before the pause took effect: just carry on
            self.db.transition(self.job["id"], ("queued",), status="running")
        return None


class Worker:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.db = Database(settings.db_path)
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

    # -- job life cycle ----------------------------------------------------------------
    def fail(self, job_id: str, code: str, message: str, param: str | None, allowed=("validating_files", "running")):
        error = {"code": code, "message": message, "param": param}
        if self.db.transition(job_id, allowed, status="failed", error=error, finished_at=now(), estimated_finish=None):
            self.db.add_event(job_id, message, level="error")

    def recover(self) -> None:
        """Settle what a dead worker left: `running` jobs resume from their last checkpoint."""
        for job in self.db.jobs_in("running"):
            crashes = self.db.conn.execute("SELECT COUNT(*) AS n FROM events WHERE job_id = ? AND message LIKE ?",
                                           (job["id"], "The worker stopped unexpectedly%")).fetchone()["n"]
            if crashes >= MAX_CRASH_RESTARTS:
                self.fail(job["id"], "worker_crashed", f"The worker stopped unexpectedly {crashes + 1} times while "
                          "training this job; giving up. Checkpoints and events written so far are kept.", None)
                continue
            ckpts = self.db.checkpoints(job["id"])
            resume = ckpts[-1]["path"] if ckpts else None
            where = f"from the checkpoint at step {ckpts[-1]['step_number']}" if ckpts else "from the start (no checkpoint yet)"
            if self.db.transition(job["id"], ("running",), status="queued", resume_from=resume, estimated_finish=None):
                self.db.add_event(job["id"], f"The worker stopped unexpectedly; the job will resume {where}.", level="warn")
        for job in self.db.jobs_in("paused"):
            if job["stop_request"]:  # died while pausing
                ckpts = self.db.checkpoints(job["id"])
                self.db.update("jobs", job["id"], stop_request=None, resume_from=ckpts[-1]["path"] if ckpts else None)

    def validate(self, job: dict) -> bool:
        from ftutils.data.validate import validate_file

        n_examples = 0
        for param in ("training_file", "validation_file"):
            file_id = job[param]
            if not file_id:
                continue
            self.db.add_event(job["id"], f"Validating {param.replace('_', ' ')}: {file_id}")
            row = self.db.get("files", file_id)
            path = self.settings.files_dir / file_id
            if row is None or not path.exists():
                self.fail(job["id"], "file_not_found", f"{file_id}: the file was deleted before it was validated.", param)
                return False
            report = validate_file(path, job["model"])
            # OpenAI's 10-example minimum is for training data; a small validation file is fine.
            problems = [f for f in report.errors if not (param == "validation_file" and f.code == "too_few_examples")]
            if problems:
                f = problems[0]
                where = ", ".join(p for p in (f"line {f.line}" if f.line else "", f"field {f.field}" if f.field else "") if p)
                self.fail(job["id"], f.code, f"{row['filename']}: {where + ': ' if where else ''}{f.message}", param)
                return False
            if param == "training_file":
                n_examples = report.n_examples
        hp = Hyperparameters(**job["hyperparameters"]).resolve(n_examples).to_dict()
        hp = {k: hp[k] for k in ("batch_size", "learning_rate_multiplier", "n_epochs")}
        method = {**job["method"], "supervised": {"hyperparameters": hp}}
        with self.db.transaction():
            self.db.update("jobs", job["id"], hyperparameters=hp, method=method, validated=1)
            moved = self.db.transition(job["id"], ("validating_files",), status="queued")
        if moved:
            self.db.add_event(job["id"], "Files validated, moving job to queued state")
        # Paused while validating and resumed since: validated now, and queued already.
        return moved or self.db.get("jobs", job["id"])["status"] == "queued"

    def run(self, job: dict) -> None:
        if not job["validated"]:
            if not self.validate(job):
                return
        job = self.db.get("jobs", job["id"])
        if not self.db.transition(job["id"], ("queued",), status="running", stop_request=None, error=None):
            return
        self.db.add_event(job["id"], "Fine-tuning job started")
        sink = JobSink(self, job)
        try:
            from ftutils.local.trainer import TrainConfig, train

            hp = job["hyperparameters"]
            config = TrainConfig(
                base_model=job["model"], data_dir=self.settings.data_dir,
                train_file=self.settings.files_dir / job["training_file"],
                validation_file=self.settings.files_dir / job["validation_file"] if job["validation_file"] else None,
                output_dir=self.settings.jobs_dir / job["id"], n_epochs=hp["n_epochs"], batch_size=hp["batch_size"],
                learning_rate_multiplier=hp["learning_rate_multiplier"], seed=job["seed"],
                resume_from=job["resume_from"], extra_models=self.settings.extra_models or None)
            result = train(config, sink)
        except Exception as exc:
            log.exception("job %s failed", job["id"])
            self.fail(job["id"], "training_failed", f"Training failed: {type(exc).__name__}: {exc}", None,
                      allowed=("running", "queued", "paused"))
            return
        if result.stopped is None:
            self.finish(job, result, sink)
        else:
            self.stopped(job, result.stopped, sink)

    def stopped(self, job: dict, how: str, sink: JobSink) -> None:
        ckpts = self.db.checkpoints(job["id"])
        resume = ckpts[-1]["path"] if ckpts else None
        at = f"step {ckpts[-1]['step_number']}" if ckpts else "the start"
        if how == "cancel":
            self.db.add_event(job["id"], "Fine-tuning job cancelled")
        elif self.shutting_down and self.db.transition(job["id"], ("running",), status="queued", resume_from=resume,
                                                        estimated_finish=None):
            self.db.add_event(job["id"], f"The server is shutting down; the job will resume from {at} when it restarts.")
        else:
            self.db.update("jobs", job["id"], stop_request=None, resume_from=resume, estimated_finish=None)
            self.db.add_event(job["id"], f"Fine-tuning job paused; it will resume from {at}.")

    def finish(self, job: dict, result, sink: JobSink) -> None:
        text = self.result_csv(job["id"])
        file_id = new_id("file-")
        path = self.settings.files_dir / file_id
        tmp = path.with_name(f".upload-{file_id}.tmp")
        tmp.write_text(text)
        os.replace(tmp, path)
        with self.db.transaction():
            if self.db.get("jobs", job["id"])["status"] not in ("running", "queued"):
                path.unlink(missing_ok=True)  # cancelled in the last instant: cancel wins
                return
            self.db.insert("files", {"id": file_id, "bytes": len(text.encode()), "created_at": now(),
                                     "filename": "step_metrics.csv", "purpose": "fine-tune-results",
                                     "status": "processed"})
            self.db.conn.execute("DELETE FROM models WHERE id = ?", (sink.model_id,))
            self.db.insert("models", {"id": sink.model_id, "created": now(), "owned_by": self.settings.org,
                                      "base_model": job["model"], "job_id": job["id"], "path": str(result.adapter_dir)})
            self.db.update("jobs", job["id"], status="succeeded", fine_tuned_model=sink.model_id, finished_at=now(),
                           trained_tokens=int(result.trained_tokens), result_files=[file_id], estimated_finish=None,
                           stop_request=None)
            self.db.add_event(job["id"], f"New fine-tuned model created: {sink.model_id}")
            self.db.add_event(job["id"], "The job has successfully completed")

    def result_csv(self, job_id: str) -> str:
        """OpenAI's step-metrics CSV, from the metrics events (the last record of a step wins,
        since a resumed job repeats the steps after its checkpoint)."""
        rows = {}
        for event in self.db.conn.execute("SELECT data FROM events WHERE job_id = ? AND type = 'metrics' ORDER BY seq",
                                          (job_id,)):
            data = event["data"]
            rows[int(data["step"])] = {"step": int(data["step"]), "train_loss": data.get("train_loss"),
                                       "train_accuracy": data.get("train_mean_token_accuracy"),
                                       "valid_loss": data.get("valid_loss"),
                                       "valid_mean_token_accuracy": data.get("valid_mean_token_accuracy")}
        out = io.StringIO()
        writer = csv.DictWriter(out, RESULT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for step in sorted(rows):
            writer.writerow({k: "" if v is None else v for k, v in rows[step].items()})
        return out.getvalue()

    def loop(self) -> None:
        while not self.shutting_down:
            self.exit_if_orphaned()
            job = self.db.next_job()
            if job is None:
                time.sleep(self.settings.poll_seconds)
                continue
            try:
                self.run(job)
            except Exception as exc:  # a bug here must not leave the job running forever
                log.exception("worker error on %s", job["id"])
                self.fail(job["id"], "internal_error", f"Internal error: {type(exc).__name__}: {exc}", None,
                          allowed=("validating_files", "queued", "running"))


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
            worker.loop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
