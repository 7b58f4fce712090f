"""The job service on a real SQLite file: every transition, and every one it must refuse."""
from __future__ import annotations

import sqlite3

import pytest

from ftutils import openai_rules
from ftutils.local.store import jobs as job_service
from ftutils.local.store.db import Database
from ftutils.local.store.jobs import MAX_CRASH_RESTARTS, JobStateError, Jobs

HP = {"batch_size": 1, "learning_rate_multiplier": 2.0, "n_epochs": 1}


@pytest.fixture()
def jobs(tmp_path):
    return Jobs(Database(tmp_path / "db.sqlite"), org="acme")


def create(jobs: Jobs, **overrides) -> dict:
    args = {"model": "tiny-smollm2", "training_file": "file-t", "validation_file": None, "hyperparameters": HP,
            "method_type": "supervised", "suffix": "demo", "seed": 7, "metadata": None, **overrides}
    return jobs.create(**args)


def messages(jobs: Jobs, job_id: str) -> list[str]:
    return [e["message"] for e in reversed(jobs.events(job_id, limit=100)[0])]


def running(jobs: Jobs) -> dict:
    job = create(jobs)
    assert jobs.validated(job["id"], HP, job["method"])
    assert jobs.start(job["id"])
    return jobs.get(job["id"])


def test_a_job_goes_from_validating_to_succeeded(jobs, tmp_path):
    job = create(jobs)
    assert job["status"] == "validating_files" and job["seed"] == 7 and job["crashes"] == 0
    assert job["method"] == {"type": "supervised", "supervised": {"hyperparameters": HP}}
    assert jobs.next_job()["id"] == job["id"]
    assert jobs.validated(job["id"], HP, job["method"]) and jobs.status(job["id"]) == "queued"
    assert jobs.start(job["id"]) and jobs.status(job["id"]) == "running"
    assert jobs.next_job() is None  # a running job is not picked up twice
    result = {"id": "file-result", "bytes": 3, "created_at": 1, "filename": "step_metrics.csv",
              "purpose": "fine-tune-results", "status": "processed"}
    assert jobs.finish(jobs.get(job["id"]), adapter_dir=tmp_path / "final", trained_tokens=120, result_file=result)
    row = jobs.get(job["id"])
    model = f"ft:tiny-smollm2:acme:demo:{job['id'].removeprefix('ftjob-')[:8]}"
    assert (row["status"], row["fine_tuned_model"], row["trained_tokens"], row["result_files"]) == \
        ("succeeded", model, 120, ["file-result"])
    assert row["finished_at"] and row["estimated_finish"] is None
    assert jobs.db.get("models", model)["path"] == str(tmp_path / "final")
    assert jobs.db.get("files", "file-result")["purpose"] == "fine-tune-results"
    assert messages(jobs, job["id"]) == [
        f"Created fine-tuning job: {job['id']}", "Files validated, moving job to queued state",
        "Fine-tuning job started", f"New fine-tuned model created: {model}", "The job has successfully completed"]


def test_illegal_transitions_are_refused_and_change_nothing(jobs, tmp_path):
    job = create(jobs)
    with pytest.raises(JobStateError, match=f"^Job {job['id']} is validating_files and cannot be resumed; "
                                            "only paused jobs can.$"):
        jobs.resume(job["id"])
    assert not jobs.start(job["id"])  # not validated yet
    jobs.cancel(job["id"])
    before = jobs.get(job["id"])
    with pytest.raises(JobStateError, match=f"^Job {job['id']} is cancelled and cannot be cancelled.$"):
        jobs.cancel(job["id"])
    with pytest.raises(JobStateError, match=f"^Job {job['id']} is cancelled and cannot be paused.$"):
        jobs.pause(job["id"])
    assert not jobs.validated(job["id"], HP, job["method"])
    assert not jobs.start(job["id"])
    assert not jobs.fail(job["id"], "training_failed", "too late")
    assert not jobs.finish(job, adapter_dir=tmp_path, trained_tokens=1,
                           result_file={"id": "file-r", "bytes": 0, "created_at": 1, "filename": "x",
                                        "purpose": "fine-tune-results", "status": "processed"})
    after = jobs.get(job["id"])
    assert {k: v for k, v in after.items() if k != "validated"} == {k: v for k, v in before.items() if k != "validated"}
    assert jobs.db.get("files", "file-r") is None and jobs.db.all("models") == []
    assert messages(jobs, job["id"])[-1] == "Fine-tuning job cancelled"
    assert "too late" not in messages(jobs, job["id"])


def test_pause_and_cancel_of_a_running_job_leave_the_event_to_the_worker(jobs):
    job = running(jobs)
    paused = jobs.pause(job["id"])
    assert (paused["status"], paused["stop_request"]) == ("paused", "pause")
    assert jobs.stop_requested(job["id"]) == "pause"
    assert messages(jobs, job["id"])[-1] == "Fine-tuning job started"
    with pytest.raises(JobStateError, match="is paused and cannot be paused"):
        jobs.pause(job["id"])
    jobs.stopped(job["id"], "pause", shutting_down=False)
    assert jobs.get(job["id"])["stop_request"] is None
    assert messages(jobs, job["id"])[-1] == "Fine-tuning job paused; it will resume from the start."
    assert jobs.resume(job["id"])["status"] == "queued"
    assert jobs.stop_requested(job["id"]) is None and jobs.status(job["id"]) == "running"  # resumed in time
    cancelled = jobs.cancel(job["id"])
    assert cancelled["status"] == "cancelled" and cancelled["finished_at"]
    assert jobs.stop_requested(job["id"]) == "cancel"
    assert messages(jobs, job["id"])[-1] == "Fine-tuning job resumed"


def test_pause_before_running_is_immediate(jobs):
    job = create(jobs)
    paused = jobs.pause(job["id"])
    assert (paused["status"], paused["stop_request"]) == ("paused", None)
    assert messages(jobs, job["id"])[-1] == "Fine-tuning job paused"
    assert jobs.next_job() is None


def test_a_failure_is_final_and_written_once(jobs):
    job = running(jobs)
    assert jobs.fail(job["id"], "training_failed", "Training failed: boom", "training_file")
    row = jobs.get(job["id"])
    assert row["status"] == "failed" and row["error"] == {"code": "training_failed", "message": "Training failed: boom",
                                                          "param": "training_file"}
    assert not jobs.fail(job["id"], "internal_error", "again")
    assert jobs.get(job["id"])["error"]["code"] == "training_failed"
    assert [m for m in messages(jobs, job["id"]) if m.startswith("Training failed")] == ["Training failed: boom"]


def test_recover_counts_crashes_in_a_column_not_in_event_text(jobs):
    job = running(jobs)
    for n in range(1, MAX_CRASH_RESTARTS + 1):
        jobs.recover()
        row = jobs.get(job["id"])
        assert (row["status"], row["crashes"]) == ("queued", n)
        # Rewording or losing the event must not change the count: it is the column that counts.
        jobs.db.conn.execute("UPDATE events SET message = 'reworded' WHERE job_id = ?", (job["id"],))
        assert jobs.start(job["id"])
    jobs.recover()
    row = jobs.get(job["id"])
    assert row["status"] == "failed" and row["error"]["code"] == "worker_crashed"
    assert row["error"]["message"].startswith(f"The worker stopped unexpectedly {MAX_CRASH_RESTARTS + 1} times")


def test_shut_down_requeues_a_running_job_from_its_checkpoint(jobs, tmp_path):
    job = running(jobs)
    jobs.add_checkpoint(job, 4, tmp_path / "step-4", {"step": 4.0})
    jobs.stopped(job["id"], "pause", shutting_down=True)
    row = jobs.get(job["id"])
    assert (row["status"], row["resume_from"]) == ("queued", str(tmp_path / "step-4"))
    assert messages(jobs, job["id"])[-1] == "The server is shutting down; the job will resume from step 4 when it restarts."
    assert jobs.checkpoints(job["id"])[0]["fine_tuned_model_checkpoint"] == \
        openai_rules.checkpoint_model_id(job_service.model_id(job, "acme"), 4)


def test_an_existing_db_without_the_crash_column_gets_it(tmp_path):
    path = tmp_path / "db.sqlite"
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE jobs (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT UNIQUE NOT NULL, created_at INTEGER NOT NULL,
          model TEXT NOT NULL, training_file TEXT NOT NULL, validation_file TEXT, status TEXT NOT NULL,
          hyperparameters TEXT NOT NULL, method TEXT NOT NULL, suffix TEXT, seed INTEGER NOT NULL,
          metadata TEXT, error TEXT, fine_tuned_model TEXT, finished_at INTEGER, trained_tokens INTEGER,
          estimated_finish INTEGER, result_files TEXT NOT NULL DEFAULT '[]',
          stop_request TEXT, resume_from TEXT, validated INTEGER NOT NULL DEFAULT 0);
        INSERT INTO jobs (id, created_at, model, training_file, status, hyperparameters, method, seed)
          VALUES ('ftjob-old', 1, 'tiny-smollm2', 'file-t', 'running', '{}', '{"type": "supervised"}', 1);
    """)
    old.commit()
    old.close()
    jobs = Jobs(Database(path))
    assert jobs.get("ftjob-old")["crashes"] == 0
    jobs.recover()
    assert (jobs.get("ftjob-old")["status"], jobs.get("ftjob-old")["crashes"]) == ("queued", 1)
    Database(path)  # opening it again adds nothing twice
    assert [r["name"] for r in jobs.db.conn.execute("PRAGMA table_info(jobs)")].count("crashes") == 1


def test_status_names_have_one_home():
    from ftutils.local.api import schemas
    from ftutils.train import jobs as client_jobs
    from typing import get_args

    assert get_args(schemas.JobStatus) == openai_rules.JOB_STATUSES
    assert client_jobs.TERMINAL is openai_rules.TERMINAL_STATUSES
    assert set(job_service.ACTIVE) | {"paused"} == set(job_service.NOT_FINAL)
