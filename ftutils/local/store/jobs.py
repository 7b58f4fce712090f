"""The job service: every status a fine-tuning job can have, every move between them, and
all SQL on jobs, their events and checkpoints, and the model row a job makes when it succeeds
(listing and deleting fine-tuned models as models is `fine_tunes`; their files, `files`).

The API process (routes: create, cancel, pause, resume) and the worker process (validate,
run, finish, fail, recover) both change jobs, at the same moment if a user is quick. So a
status changes only through `_move`, one conditional UPDATE ("... WHERE status IN
(allowed)"): whoever comes second finds the job elsewhere and backs off.

    validating_files -> queued -> running -> succeeded
        any of those three -> paused -> queued (resume)
        any not final -> cancelled | failed
        running -> queued (a worker crashed or the server shut down: resume from a checkpoint)
"""
from __future__ import annotations

import random

from ftutils import openai_rules
from ftutils.local.store.db import Database, encode, new_id, now
from ftutils.openai_rules import JOB_STATUSES, TERMINAL_STATUSES

ACTIVE = ("validating_files", "queued", "running")
"""Statuses the worker still has work for; pause applies to these."""
NOT_FINAL = tuple(s for s in JOB_STATUSES if s not in TERMINAL_STATUSES)
RUNNABLE = ("validating_files", "queued")
"""What the worker picks up, oldest first."""
MAX_CRASH_RESTARTS = 3
"""A job that takes the worker down this often fails instead of looping."""


class JobStateError(Exception):
    """The job is not in a status the requested change starts from."""


def model_id(job: dict, org: str) -> str:
    """The `ft:` model a job makes (whether or not it has made it yet)."""
    return openai_rules.fine_tuned_model_id(job["model"], org, job["suffix"], job["id"])


class Jobs:
    def __init__(self, db: Database, org: str = "local"):
        self.db, self.org = db, org

    # -- reading -------------------------------------------------------------------------
    def get(self, job_id: str) -> dict | None:
        return self.db.get("jobs", job_id)

    def status(self, job_id: str) -> str:
        return self.db.conn.execute("SELECT status FROM jobs WHERE id = ?", (job_id,)).fetchone()["status"]

    def next_job(self) -> dict | None:
        marks = ", ".join("?" for _ in RUNNABLE)
        return self.db.conn.execute(f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY seq LIMIT 1",
                                    RUNNABLE).fetchone()

    def in_status(self, *statuses: str) -> list[dict]:
        marks = ", ".join("?" for _ in statuses)
        return self.db.conn.execute(f"SELECT * FROM jobs WHERE status IN ({marks}) ORDER BY seq", statuses).fetchall()

    def page(self, *, metadata: dict[str, str] | None = None, after: str | None = None,
             limit: int = 20) -> tuple[list[dict], bool]:
        """Newest first; `metadata` keeps jobs whose metadata has every one of these pairs."""
        where, args = "1", ()
        for key, value in (metadata or {}).items():
            where += " AND json_extract(metadata, ?) = ?"
            args += ('$."' + key.replace('"', '\\"') + '"', value)
        return self.db.page("jobs", where=where, args=args, after=after, limit=limit)

    def events(self, job_id: str, *, after: str | None = None, limit: int = 20) -> tuple[list[dict], bool]:
        return self.db.page("events", where="job_id = ?", args=(job_id,), after=after, limit=limit)

    def checkpoint_page(self, job_id: str, *, after: str | None = None, limit: int = 10) -> tuple[list[dict], bool]:
        return self.db.page("checkpoints", where="job_id = ?", args=(job_id,), after=after, limit=limit)

    def checkpoints(self, job_id: str) -> list[dict]:
        """Oldest step first."""
        return self.db.conn.execute("SELECT * FROM checkpoints WHERE job_id = ? ORDER BY step_number",
                                    (job_id,)).fetchall()

    def metrics_records(self, job_id: str) -> list[dict]:
        """The `data` of every metrics event, in the order they were written."""
        rows = self.db.conn.execute("SELECT data FROM events WHERE job_id = ? AND type = 'metrics' ORDER BY seq",
                                    (job_id,))
        return [row["data"] for row in rows]

    def event(self, job_id: str, message: str, *, level: str = "info", type: str = "message",
              data: dict | None = None) -> dict:
        """A fine_tuning.job.event; `level` is "info", "warn" or "error", `type` "message" or "metrics"."""
        return self.db.insert("events", {"id": new_id("ftevent-"), "job_id": job_id, "created_at": now(),
                                         "level": level, "message": message, "type": type, "data": data or {}})

    # -- the one way a status changes ------------------------------------------------------
    def _move(self, job_id: str, allowed: tuple[str, ...], **fields) -> bool:
        """Change a job only if it is still in one of `allowed`: the API and the worker race."""
        assert set(allowed) <= set(JOB_STATUSES) and fields["status"] in JOB_STATUSES, (allowed, fields)
        sets = ", ".join(f"{k} = ?" for k in fields)
        marks = ", ".join("?" for _ in allowed)
        cur = self.db.conn.execute(f"UPDATE jobs SET {sets} WHERE id = ? AND status IN ({marks})",
                                   [*map(encode, fields.values()), job_id, *allowed])
        return cur.rowcount > 0

    # -- the API's changes -----------------------------------------------------------------
    def create(self, *, model: str, training_file: str, validation_file: str | None, hyperparameters: dict,
               method_type: str, suffix: str | None, seed: int | None, metadata: dict | None,
               integrations: list | None = None) -> dict:
        row = {"id": new_id("ftjob-"), "created_at": now(), "model": model, "training_file": training_file,
               "validation_file": validation_file, "status": "validating_files", "hyperparameters": hyperparameters,
               "method": {"type": method_type, method_type: {"hyperparameters": hyperparameters}}, "suffix": suffix,
               "seed": seed if seed is not None else random.randint(0, 2**31 - 1),
               "metadata": metadata, "result_files": [], "integrations": integrations}
        with self.db.transaction():
            row = self.db.insert("jobs", row)
            self.event(row["id"], f"Created fine-tuning job: {row['id']}")
        return row

    def cancel(self, job_id: str) -> dict:
        # A running job stops at the worker's next should_stop(); its status is final right away,
        # and the worker writes the event once it has stopped.
        return self._stop(job_id, "cancelled", (*ACTIVE, "paused"), "cancelled", finished_at=now())

    def pause(self, job_id: str) -> dict:
        return self._stop(job_id, "paused", ACTIVE, "paused")

    def _stop(self, job_id: str, status: str, allowed: tuple[str, ...], verb: str, **fields) -> dict:
        """Cancel and pause: stop a job the worker may be training; the worker sees the new
        status at its next step. For a job not yet running there is nothing to stop, so the
        event is written here."""
        with self.db.transaction():
            before = self.status(job_id)
            running = before == "running"
            if status == "paused":  # the worker clears it once the checkpoint is written
                fields["stop_request"] = "pause" if running else None
            if not self._move(job_id, allowed, status=status, estimated_finish=None, **fields):
                raise JobStateError(f"Job {job_id} is {before} and cannot be {verb}.")
            if not running:
                self.event(job_id, f"Fine-tuning job {verb}")
        return self.get(job_id)

    def resume(self, job_id: str) -> dict:
        with self.db.transaction():
            if not self._move(job_id, ("paused",), status="queued"):
                raise JobStateError(f"Job {job_id} is {self.status(job_id)} and cannot be resumed; "
                                    "only paused jobs can.")
            self.event(job_id, "Fine-tuning job resumed")
        return self.get(job_id)

    # -- the worker's changes --------------------------------------------------------------
    def validated(self, job_id: str, hyperparameters: dict, method: dict) -> bool:
        """Files passed: store the resolved hyperparameters and queue the job. True when the
        job is queued, also when it was paused while validating and resumed since."""
        with self.db.transaction():
            self.db.update("jobs", job_id, hyperparameters=hyperparameters, method=method, validated=1)
            moved = self._move(job_id, ("validating_files",), status="queued")
        if moved:
            self.event(job_id, "Files validated, moving job to queued state")
        return moved or self.status(job_id) == "queued"

    def start(self, job_id: str) -> bool:
        if not self._move(job_id, ("queued",), status="running", stop_request=None, error=None):
            return False
        self.event(job_id, "Fine-tuning job started")
        return True

    def stop_requested(self, job_id: str) -> str | None:
        """Asked by the worker at every step: "cancel", "pause" or None to go on."""
        status = self.status(job_id)
        if status == "cancelled":
            return "cancel"
        if status == "paused":
            return "pause"
        if status == "queued":  # resumed before the pause took effect: just carry on
            self._move(job_id, ("queued",), status="running")
        return None

    def stopped(self, job_id: str, how: str, *, shutting_down: bool) -> None:
        """The trainer stopped early (`how` = "cancel" or "pause"), its last checkpoint written."""
        resume, at = self._resume_point(job_id)
        if how == "cancel":
            self.event(job_id, "Fine-tuning job cancelled")
        elif shutting_down and self._move(job_id, ("running",), status="queued", resume_from=resume,
                                          estimated_finish=None):
            self.event(job_id, f"The server is shutting down; the job will resume from {at} when it restarts.")
        else:
            self.db.update("jobs", job_id, stop_request=None, resume_from=resume, estimated_finish=None)
            self.event(job_id, f"Fine-tuning job paused; it will resume from {at}.")

    def _resume_point(self, job_id: str) -> tuple[str | None, str]:
        """(checkpoint folder to resume from, "step N"), or (None, "the start")."""
        ckpts = self.checkpoints(job_id)
        return (ckpts[-1]["path"], f"step {ckpts[-1]['step_number']}") if ckpts else (None, "the start")

    def fail(self, job_id: str, code: str, message: str, param: str | None = None) -> bool:
        """Final from any status that is not: bad files or a crash end the job whatever it was doing."""
        error = {"code": code, "message": message, "param": param}
        if not self._move(job_id, NOT_FINAL, status="failed", error=error, finished_at=now(), estimated_finish=None):
            return False
        self.event(job_id, message, level="error")
        return True

    def finish(self, job: dict, *, adapter_dir, trained_tokens: int, result_file: dict,
               base_model: str | None = None) -> bool:
        """Training completed: the model, the result file and the job's final fields in one
        transaction. False (and nothing written) when the job was cancelled in the last instant.
        `base_model` is the local base that trained (job["model"] may be an OpenAI alias of it)."""
        model = model_id(job, self.org)
        with self.db.transaction():
            if not self._move(job["id"], ("running", "queued"), status="succeeded", fine_tuned_model=model,
                              finished_at=now(), trained_tokens=int(trained_tokens), result_files=[result_file["id"]],
                              estimated_finish=None, stop_request=None):
                return False
            self.db.insert("files", result_file)
            self.db.conn.execute("DELETE FROM models WHERE id = ?", (model,))
            self.db.insert("models", {"id": model, "created": now(), "owned_by": self.org,
                                      "base_model": base_model or job["model"],
                                      "job_id": job["id"], "path": str(adapter_dir)})
            self.event(job["id"], f"New fine-tuned model created: {model}")
            self.event(job["id"], "The job has successfully completed")
        return True

    def recover(self) -> None:
        """Settle what a dead worker left: `running` jobs resume from their last checkpoint,
        unless they have taken the worker down MAX_CRASH_RESTARTS times already."""
        for job in self.in_status("running"):
            crashes = job["crashes"]
            if crashes >= MAX_CRASH_RESTARTS:
                self.fail(job["id"], "worker_crashed", f"The worker stopped unexpectedly {crashes + 1} times while "
                          "training this job; giving up. Checkpoints and events written so far are kept.")
                continue
            resume, at = self._resume_point(job["id"])
            where = f"from the checkpoint at {at}" if resume else "from the start (no checkpoint yet)"
            if self._move(job["id"], ("running",), status="queued", resume_from=resume, estimated_finish=None,
                          crashes=crashes + 1):
                self.event(job["id"], f"The worker stopped unexpectedly; the job will resume {where}.",
                                  level="warn")
        for job in self.in_status("paused"):
            if job["stop_request"]:  # died while pausing
                self.db.update("jobs", job["id"], stop_request=None, resume_from=self._resume_point(job["id"])[0])

    # -- what training reports ---------------------------------------------------------------
    def record_metrics(self, job_id: str, message: str, data: dict, estimated_finish: int) -> None:
        with self.db.transaction():
            self.event(job_id, message, type="metrics", data=data)
            self.db.update("jobs", job_id, estimated_finish=estimated_finish)

    def add_checkpoint(self, job: dict, step: int, path, metrics: dict) -> None:
        model = openai_rules.checkpoint_model_id(model_id(job, self.org), step)
        with self.db.transaction():
            # A checkpoint re-made after a crash replaces the row its first attempt left.
            self.db.conn.execute("DELETE FROM checkpoints WHERE fine_tuned_model_checkpoint = ?", (model,))
            self.db.insert("checkpoints", {"id": new_id("ftckpt-"), "job_id": job["id"], "created_at": now(),
                                           "step_number": step, "metrics": metrics,
                                           "fine_tuned_model_checkpoint": model, "path": str(path)})
            self.event(job["id"], f"Checkpoint created at step {step}")

    def prune_checkpoints(self, job_id: str, keep: int) -> list[str]:
        """Drop all but the newest `keep` checkpoint rows; their folders, for the caller to remove."""
        dropped = self.checkpoints(job_id)[:-keep]
        for row in dropped:
            self.db.delete("checkpoints", row["id"])
        return [row["path"] for row in dropped]
