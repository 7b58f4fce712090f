"""The worker's bookkeeping on a real SQLite file, without a server or a model: what a
restart does with a job a dead worker left `running`, checkpoint pruning, the result CSV."""
from __future__ import annotations

import csv
import io

import pytest

from ftutils.local.settings import Settings
from ftutils.local.store.db import Database, new_id, now
from ftutils.local.store.jobs import MAX_CRASH_RESTARTS
from ftutils.local.worker import loop as worker_module
from ftutils.local.worker import results
from ftutils.local.worker.loop import Worker
from ftutils.local.worker.sink import JobSink


@pytest.fixture()
def worker(tmp_path):
    return Worker(Settings.load(tmp_path / "data", api_key="unused", run_worker=False))


def add_job(db: Database, status: str = "running") -> dict:
    hp = {"batch_size": 1, "learning_rate_multiplier": 2.0, "n_epochs": 1}
    return db.insert("jobs", {"id": new_id("ftjob-"), "created_at": now(), "model": "tiny-smollm2",
                              "training_file": "file-x", "status": status, "hyperparameters": hp,
                              "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
                              "seed": 1, "result_files": [], "validated": 1})


def test_running_job_without_checkpoint_restarts_from_the_start(worker):
    job = add_job(worker.store.db)
    worker.recover()
    row = worker.store.db.get("jobs", job["id"])
    assert row["status"] == "queued" and row["resume_from"] is None
    assert worker.store.db.page("events", where="job_id = ?", args=(job["id"],))[0][0]["message"] == \
        "The worker stopped unexpectedly; the job will resume from the start (no checkpoint yet)."


def test_running_job_resumes_from_its_last_checkpoint_and_pruning_keeps_three(worker):
    job = add_job(worker.store.db)
    sink = JobSink(worker, job)
    paths = []
    for step in (3, 6, 9, 12, 15):
        path = worker.settings.jobs_dir / job["id"] / "checkpoints" / f"step-{step}"
        path.mkdir(parents=True)
        paths.append(path)
        sink.on_checkpoint(step, step // 3, path, {"train_loss": 1.0 / step, "valid_loss": float("nan")})
    kept = worker.jobs.checkpoints(job["id"])
    assert [c["step_number"] for c in kept] == [9, 12, 15]
    assert [p.exists() for p in paths] == [False, False, True, True, True]
    assert "valid_loss" not in kept[-1]["metrics"]  # NaN is not JSON: dropped, not sent
    assert kept[-1]["fine_tuned_model_checkpoint"] == f"{sink.model_id}:ckpt-step-15"
    worker.recover()
    row = worker.store.db.get("jobs", job["id"])
    assert row["status"] == "queued" and row["resume_from"] == str(paths[-1])


def test_a_job_that_keeps_killing_the_worker_fails_clearly(worker):
    job = add_job(worker.store.db)
    for _ in range(MAX_CRASH_RESTARTS):
        worker.store.db.update("jobs", job["id"], status="running")
        worker.recover()
    assert worker.store.db.get("jobs", job["id"])["status"] == "queued"
    worker.store.db.update("jobs", job["id"], status="running")
    worker.recover()
    row = worker.store.db.get("jobs", job["id"])
    assert row["status"] == "failed" and row["error"]["code"] == "worker_crashed" and row["finished_at"]


def test_result_csv_keeps_the_last_record_of_a_repeated_step(worker):
    job = add_job(worker.store.db)
    sink = JobSink(worker, job)
    sink.on_start(3, 1, 3)
    for step, loss in [(1, 3.0), (2, 2.0), (2, 1.5), (3, 1.0)]:  # step 2 redone after a resume
        sink.on_metrics({"step": step, "train_loss": loss, "train_mean_token_accuracy": 0.5})
    rows = list(csv.DictReader(io.StringIO(results.result_csv(worker.jobs.metrics_records(job["id"])))))
    assert [(r["step"], r["train_loss"], r["train_accuracy"], r["valid_loss"]) for r in rows] == \
        [("1", "3.0", "0.5", ""), ("2", "1.5", "0.5", ""), ("3", "1.0", "0.5", "")]
    assert worker.store.db.get("jobs", job["id"])["estimated_finish"] >= now()


def test_should_stop_follows_the_job_status(worker):
    job = add_job(worker.store.db)
    sink = JobSink(worker, job)
    assert sink.should_stop() is None
    worker.store.db.update("jobs", job["id"], status="paused")
    assert sink.should_stop() == "pause"
    worker.store.db.update("jobs", job["id"], status="queued")  # resumed before the pause took effect
    assert sink.should_stop() is None and worker.store.db.get("jobs", job["id"])["status"] == "running"
    worker.store.db.update("jobs", job["id"], status="cancelled")
    assert sink.should_stop() == "cancel"
    worker.store.db.update("jobs", job["id"], status="running")
    worker.shutting_down = True
    assert sink.should_stop() == "pause"


def test_the_idle_worker_prepares_the_models_it_is_asked_for(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("FTUTILS_PREPARE_MODELS", "tiny-smollm2, no-such-model")
    monkeypatch.setenv("FTUTILS_TORCH_THREADS", "2")
    settings = Settings.load(tmp_path)
    assert settings.prepare_models == ["tiny-smollm2", "no-such-model"] and settings.torch_threads == 2
    assert Settings.from_json(settings.to_json()).prepare_models == settings.prepare_models  # reaches the worker
    loaded = []
    real = __import__("ftutils.local.models.loading", fromlist=["load_base"]).load_base
    monkeypatch.setattr("ftutils.local.models.loading.load_base",
                        lambda model_id, *a: loaded.append(model_id) or real(model_id, *a))
    with caplog.at_level("INFO"):
        worker_module.prepare_models(settings)
    assert loaded == ["tiny-smollm2", "no-such-model"]
    assert "prepared tiny-smollm2" in caplog.text and "could not prepare no-such-model" in caplog.text


def test_jobs_on_smollm2_train_in_two_processes_where_there_are_two_cores(tmp_path, monkeypatch):
    monkeypatch.setattr("os.cpu_count", lambda: 2)
    settings = Settings.load(tmp_path)
    assert (settings.processes_for("smollm2-135m-instruct"), settings.processes_for("tiny-smollm2")) == (2, 1)
    assert settings.processes_for("smollm2-135m-instruct", "dpo") == 2  # DDP shares DPO's batches as well
    monkeypatch.setattr("os.cpu_count", lambda: 1)
    assert settings.processes_for("smollm2-135m-instruct") == 1
    monkeypatch.setenv("FTUTILS_TRAIN_PROCESSES", "3")
    chosen = Settings.load(tmp_path)
    assert chosen.processes_for("tiny-smollm2") == 3 and Settings.from_json(chosen.to_json()).train_processes == 3
    monkeypatch.setenv("FTUTILS_TRAIN_PROCESSES", "-1")
    with pytest.raises(ValueError, match="FTUTILS_TRAIN_PROCESSES"):
        Settings.load(tmp_path)
