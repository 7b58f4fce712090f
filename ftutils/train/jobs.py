"""Fine-tuning jobs through the `openai` client: upload files, launch a job (checked before
anything is sent), follow it to the end, and read its events and checkpoints as tables.

Works the same against OpenAI and the local backend; nothing here knows which it is.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path

import pandas as pd

from ftutils import openai_rules
from ftutils.train import availability, metrics

log = logging.getLogger(__name__)

TERMINAL = openai_rules.TERMINAL_STATUSES
MAX_CONSECUTIVE_ERRORS = 20  # transient failures tolerated in a row before watch gives up


def upload(client, path: str | Path, purpose: str = "fine-tune", wait: bool = True):
    """Upload a file; with `wait`, return once the API has processed it (raising if it failed)."""
    path = Path(path)
    with path.open("rb") as fh:
        uploaded = client.files.create(file=(path.name, fh), purpose=purpose)
    if wait:
        uploaded = client.files.wait_for_processing(uploaded.id, poll_interval=0.5, max_wait_seconds=600)
        if uploaded.status == "error":
            raise RuntimeError(f"{path.name} was rejected: {uploaded.status_details or 'no details given'}")
    log.info("uploaded %s as %s", path, uploaded.id)
    return uploaded


def launch(client, training_file: str, validation_file: str | None = None, model: str = "auto",
           n_epochs="auto", batch_size="auto", learning_rate_multiplier="auto", suffix: str | None = None,
           seed: int | None = None, metadata: dict | None = None, *, backend: str | None = None,
           check_model: bool = True):
    """Create a supervised fine-tuning job. Values are checked against OpenAI's rules first,
    so a mistake raises HyperparameterError here instead of costing a round trip.

    `model="auto"` picks one the service can still fine-tune (availability.pick_model). Before
    the job is created the service's `shutdown_date` for the model is read and explained
    (availability.check_model; `check_model=False` when the caller already did); on OpenAI a
    model past its date, or a refused request, raises FineTuningUnavailable with the reason.
    `backend="openai"` says the client talks to OpenAI (else its base URL tells)."""
    openai_rules.check(n_epochs, batch_size, learning_rate_multiplier)
    openai_rules.check_suffix(suffix)
    openai_rules.check_metadata(metadata)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise openai_rules.HyperparameterError("seed", f"seed must be an integer, got {seed!r}.")
    method = {"type": "supervised", "supervised": {"hyperparameters": {
        "n_epochs": n_epochs, "batch_size": batch_size, "learning_rate_multiplier": learning_rate_multiplier}}}
    extra = {k: v for k, v in (("validation_file", validation_file), ("suffix", suffix), ("seed", seed),
                               ("metadata", metadata)) if v is not None}
    return create(client, model, training_file, method, extra, backend=backend, check=check_model)


def create(client, model: str, training_file: str, method: dict, extra: dict, *, backend: str | None = None,
           check: bool = True):
    """jobs.create for `launch` and `preference.launch_dpo`: "auto" resolved, the model's
    shutdown date checked first, a refusal on OpenAI explained."""
    if model == "auto":
        model = availability.pick_model(client, method["type"], backend=backend)
    if check:
        availability.check_model(client, model, backend=backend)
    job = availability.create_job(client, backend=backend, model=model, training_file=training_file,
                                  method=method, **extra)
    log.info("launched %s job %s on %s", method["type"], job.id, model)
    return job


def follow(client, job_id: str, on_update=None, poll: float = 2.0, max_poll: float = 20.0,
           timeout: float | None = None, stop=None):
    """Poll a job until it reaches a terminal status and return it.

    The interval grows (x1.5, up to `max_poll`) while nothing changes and drops back to
    `poll` when something does. Network hiccups and 5xx/429 answers are retried with the
    same backoff; an unknown status is treated as "still going". `on_update(job)` is called
    after each successful poll and returns True when it saw progress (new events), which
    also resets the interval; `stop()` returning True ends the loop early.
    """
    import openai

    transient = (openai.APIConnectionError, openai.APITimeoutError, openai.InternalServerError,
                 openai.RateLimitError)
    deadline = None if timeout is None else time.monotonic() + timeout
    interval, errors, last_seen = poll, 0, None
    job = None
    while True:
        try:
            job = client.fine_tuning.jobs.retrieve(job_id)
            errors = 0
        except transient as exc:
            errors += 1
            if errors >= MAX_CONSECUTIVE_ERRORS:
                raise
            log.warning("polling %s failed (%s); retrying in %.0fs", job_id, type(exc).__name__, interval)
        else:
            news = on_update(job) if on_update is not None else False
            if job.status in TERMINAL:
                return job
            seen = (job.status, job.estimated_finish, job.trained_tokens)
            interval = poll if news or seen != last_seen else min(max_poll, interval * 1.5)
            last_seen = seen
        if stop is not None and stop():
            return job
        if deadline is not None and time.monotonic() + interval > deadline:
            raise TimeoutError(f"{job_id} had not finished after {timeout:.0f}s (status {job.status if job else '?'})")
        time.sleep(interval)


EVENT_COLUMNS = ["created_at", "level", "type", "message", "data", "id"]


def events_frame(items) -> pd.DataFrame:
    """Events (openai `FineTuningJobEvent`s, in the order given) as a table of EVENT_COLUMNS;
    an event without a type is a plain message."""
    rows = [{"created_at": pd.Timestamp(e.created_at, unit="s"), "level": e.level, "type": e.type or "message",
             "message": e.message, "data": e.data, "id": e.id} for e in items]
    return pd.DataFrame(rows, columns=EVENT_COLUMNS)


def events(client, job_id: str) -> pd.DataFrame:
    """All of a job's events, oldest first: created_at, level, type, message, data, id."""
    return events_frame(metrics.list_all_events(client, job_id))


CHECKPOINT_METRICS = ["train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy",
                      "full_valid_loss", "full_valid_mean_token_accuracy"]


def checkpoints(client, job_id: str) -> pd.DataFrame:
    """A job's checkpoints by step, with the model name to call and the metrics there."""
    items = list(client.fine_tuning.jobs.checkpoints.list(job_id, limit=100))
    rows = []
    for c in items:
        metrics = c.metrics.model_dump() if c.metrics is not None else {}
        rows.append({"step": c.step_number, "model": c.fine_tuned_model_checkpoint, "id": c.id,
                     "created_at": pd.Timestamp(c.created_at, unit="s"),
                     **{k: metrics.get(k) for k in CHECKPOINT_METRICS}})
    df = pd.DataFrame(rows, columns=["step", "model", "id", "created_at", *CHECKPOINT_METRICS])
    df[CHECKPOINT_METRICS] = df[CHECKPOINT_METRICS].apply(pd.to_numeric, errors="coerce")
    return df.sort_values("step").reset_index(drop=True)


def checkpoint_records(df: pd.DataFrame) -> list[dict]:
    """Checkpoints as the run manifest stores them: id, step, model, metrics (None if unmeasured)."""
    return [{"id": r["id"], "step": int(r["step"]), "model": r["model"],
             "metrics": {k: (None if pd.isna(r[k]) else float(r[k])) for k in CHECKPOINT_METRICS}}
            for r in df.to_dict("records")]


def cancel(client, job_id: str):
    return client.fine_tuning.jobs.cancel(job_id)


def files_table(client) -> pd.DataFrame:
    """Your uploaded files, newest first."""
    rows = [{"id": f.id, "filename": f.filename, "purpose": f.purpose, "bytes": f.bytes, "status": f.status,
             "created_at": pd.Timestamp(f.created_at, unit="s")} for f in client.files.list()]
    df = pd.DataFrame(rows, columns=["id", "filename", "purpose", "bytes", "status", "created_at"])
    return df.sort_values("created_at", ascending=False).reset_index(drop=True)


def jobs_table(client, limit: int = 20) -> pd.DataFrame:
    """Your most recent fine-tuning jobs."""
    rows = [{"id": j.id, "model": j.model, "status": j.status, "fine_tuned_model": j.fine_tuned_model,
             "created_at": pd.Timestamp(j.created_at, unit="s")} for j in client.fine_tuning.jobs.list(limit=limit)]
    return pd.DataFrame(rows, columns=["id", "model", "status", "fine_tuned_model", "created_at"])


def error_text(job) -> str | None:
    """One line saying why a job did not succeed (None when it did or is still going)."""
    if job.status == "failed":
        err = job.error
        if err is None or not (err.message or err.code):
            return "The job failed without saying why; look at its events."
        param = f" ({err.param})" if err.param else ""
        return f"The job failed{param}: {err.message} [{err.code}]"
    if job.status == "cancelled":
        return "The job was cancelled before it finished."
    return None


def resolved_hyperparameters(job) -> dict:
    """The hyperparameters the job really used (the API fills in "auto" once it starts)."""
    hp = None
    if job.method is not None and job.method.supervised is not None:
        hp = job.method.supervised.hyperparameters
    hp = hp or job.hyperparameters
    return {k: getattr(hp, k, None) for k in ("n_epochs", "batch_size", "learning_rate_multiplier")} if hp else {}
