"""Jobs on the real local server through the openai client: launched, followed to the end
non-interactively, failed on a bad file, cancelled, and driven from the `ftutils` command."""
import json
import os
import random
import subprocess
import sys

import pytest

from ftutils.train import jobs, metrics, runs
from ftutils.train.diagnose import diagnose
from ftutils.widgets.monitor import JobMonitor
from ftutils.openai_rules import HyperparameterError
from ftutils.local.server_process import free_port
from tests.conftest import ROOT, TEST_KEY

LABELS = ["billing", "refund", "shipping", "account"]


def write_tiny(directory, n_train=16, n_valid=8, seed=0):
    """A small classification set in chat format: the model must learn to answer a label."""
    rng = random.Random(seed)
    words = {"billing": "charged invoice card", "refund": "money back return", "shipping": "parcel tracking late",
             "account": "password login locked"}
    rows = []
    for i in range(n_train + n_valid):
        label = LABELS[i % len(LABELS)]
        text = f"ticket {i}: {' '.join(rng.sample(words[label].split(), 2))}"
        rows.append({"messages": [{"role": "system", "content": "Label the ticket."},
                                  {"role": "user", "content": text}, {"role": "assistant", "content": label}]})
    directory.mkdir(parents=True, exist_ok=True)
    train, valid = directory / "train.jsonl", directory / "validation.jsonl"
    train.write_text("".join(json.dumps(r) + "\n" for r in rows[:n_train]))
    valid.write_text("".join(json.dumps(r) + "\n" for r in rows[n_train:]))
    return train, valid


def test_launch_checks_before_sending(tmp_path):
    import openai

    # Nothing listens here: reaching the network would raise APIConnectionError instead.
    dead = openai.OpenAI(api_key=TEST_KEY, base_url=f"http://127.0.0.1:{free_port()}/v1", max_retries=0)
    cases = [({"n_epochs": 0}, "hyperparameters.n_epochs"), ({"batch_size": 300}, "hyperparameters.batch_size"),
             ({"learning_rate_multiplier": -1.0}, "hyperparameters.learning_rate_multiplier"),
             ({"suffix": "has:colon"}, "suffix"), ({"suffix": "x" * 65}, "suffix"),
             ({"metadata": {str(i): "v" for i in range(17)}}, "metadata"), ({"seed": "42"}, "seed")]
    for kwargs, param in cases:
        with pytest.raises(HyperparameterError) as info:
            jobs.launch(dead, "file-x", model="tiny-smollm2", **kwargs)
        assert info.value.param == param, kwargs
    with pytest.raises(openai.APIConnectionError):
        jobs.launch(dead, "file-x", model="tiny-smollm2", suffix="fine", metadata={"k": "v"})


@pytest.mark.slow
def test_bad_file_fails_the_job_with_its_error(client, tmp_path, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    train_path, _ = write_tiny(tmp_path, n_train=12, n_valid=0)
    lines = train_path.read_text().splitlines()
    lines[2] = json.dumps({"messages": [{"role": "user", "content": "no answer to learn"}]})
    train_path.write_text("\n".join(lines) + "\n")
    train = jobs.upload(client, train_path)
    job = JobMonitor(client, jobs.launch(client, train.id, model="tiny-smollm2").id, poll=0.5).wait(timeout=120)
    assert job.status == "failed"
    assert job.error.param == "training_file" and "line 3" in job.error.message
    text = jobs.error_text(job)
    assert text.startswith("The job failed (training_file):") and job.error.code in text


@pytest.mark.slow
def test_cancelled_job(client, tmp_path, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    train_path, _ = write_tiny(tmp_path, n_train=32, n_valid=0)
    train = jobs.upload(client, train_path)
    job = jobs.launch(client, train.id, model="tiny-smollm2", n_epochs=20, batch_size=1)
    jobs.cancel(client, job.id)
    job = JobMonitor(client, job.id, poll=0.5).wait(timeout=120)
    assert job.status == "cancelled" and job.fine_tuned_model is None
    assert jobs.error_text(job) == "The job was cancelled before it finished."


@pytest.mark.slow
def test_train_and_watch_commands_then_read_the_job(local_server, client, tmp_path):
    """`ftutils train` runs a job to the end; then its events, metrics, checkpoints and the
    manifest built from them are read back through the client."""
    train_path, valid_path = write_tiny(tmp_path, seed=3)
    env = {**os.environ, "FTUTILS_INTERACTIVE": "0"}
    cmd = [sys.executable, "-m", "ftutils", "train", str(train_path), "--validation", str(valid_path),
           "--model", "tiny-smollm2", "--epochs", "2", "--batch-size", "4", "--backend", "local", "--suffix", "cli",
           "--seed", "7"]
    out = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "succeeded: ft:tiny-smollm2:local:cli:" in out.stdout and "Verdict:" in out.stdout
    assert "epoch 2/2, step 8/8" in out.stdout and "checkpoints:" in out.stdout  # the monitor's line at each epoch end
    assert TEST_KEY not in out.stdout + out.stderr
    job_id = next(w for w in out.stdout.split() if w.startswith("ftjob-"))
    again = subprocess.run([sys.executable, "-m", "ftutils", "watch", job_id], env=env, cwd=ROOT,
                           capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert again.returncode == 0 and f"{job_id} succeeded" in again.stdout
    bad = subprocess.run(cmd[:5] + ["--epochs", "0"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "hyperparameters.n_epochs" in bad.stderr

    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.seed == 7 and job.fine_tuned_model.startswith("ft:tiny-smollm2:local:cli:")
    assert jobs.resolved_hyperparameters(job) == {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 2.0}
    ev = jobs.events(client, job_id)
    assert ev["created_at"].is_monotonic_increasing
    total = ev[ev.type == "metrics"].iloc[-1]["data"]["total_steps"]
    assert total == 2 * 16 // 4
    df = metrics.job_metrics(client, job)
    assert df["step"].tolist() == list(range(1, total + 1))
    assert df["full_valid_loss"].notna().any()
    cps = jobs.checkpoints(client, job_id)
    assert len(cps) >= 1 and cps["step"].is_monotonic_increasing
    assert all(m.startswith(job.fine_tuned_model + ":ckpt-step-") for m in cps["model"])
    assert cps["train_loss"].notna().all()

    d = diagnose(df, cps, n_epochs=2)
    summary = metrics.summary(df)
    runs.write_manifest(tmp_path / "run", backend="local", base_model="tiny-smollm2", job_id=job.id,
                        files={"train": {"id": job.training_file, "path": str(train_path)}},
                        hyperparameters=jobs.resolved_hyperparameters(job), status=job.status,
                        fine_tuned_model=job.fine_tuned_model, checkpoints=jobs.checkpoint_records(cps),
                        final_metrics=summary, diagnosis=d.to_dict())
    manifest = runs.read_manifest(tmp_path / "run")
    assert manifest["job_id"] == job.id and manifest["diagnosis"]["verdict"] == d.verdict
    assert manifest["final_metrics"]["step"] == total
    assert manifest["checkpoints"][0]["metrics"]["train_loss"] == pytest.approx(cps["train_loss"].iloc[0])
    assert TEST_KEY not in (tmp_path / "run" / "run.json").read_text()
    with pytest.raises(ValueError, match="never go on disk"):
        runs.write_manifest(tmp_path / "run", backend="openai", client={"api_key": "sk-x"})


@pytest.mark.slow
def test_follow_rides_out_a_server_restart(tmp_path, caplog):
    """The API goes away mid-watch (connection refused) and comes back on the same port:
    follow() keeps polling with backoff and returns the finished job."""
    import logging
    import threading
    import time

    from tests.conftest import start_server, stop_server

    port = free_port()
    server = start_server(tmp_path / "data", port=port)
    client = server.client(max_retries=0)
    train_path, _ = write_tiny(tmp_path, n_train=16, n_valid=0)
    job = jobs.launch(client, jobs.upload(client, train_path).id, model="tiny-smollm2", n_epochs=1, batch_size=8)
    stop_server(server)

    caplog.set_level(logging.WARNING, logger="ftutils.train.jobs")
    result = {}
    watcher = threading.Thread(target=lambda: result.update(job=jobs.follow(client, job.id, poll=0.2, max_poll=1.0,
                                                                             timeout=180)))
    watcher.start()
    time.sleep(1.5)
    assert watcher.is_alive()  # still waiting out the outage
    server = start_server(tmp_path / "data", port=port)
    try:
        watcher.join(180)
    finally:
        stop_server(server)
    assert result["job"].status == "succeeded"
    assert "failed (APIConnectionError); retrying" in caplog.text


def test_events_frame_is_the_one_event_table():
    """jobs.events and the JobMonitor both build their table here: order kept, an untyped
    event is a plain message, data and ids carried through."""
    from openai.types.fine_tuning import FineTuningJobEvent

    items = [FineTuningJobEvent(id="ftevent-1", created_at=1_700_000_000, level="info", message="Job started",
                                object="fine_tuning.job.event"),
             FineTuningJobEvent(id="ftevent-2", created_at=1_700_000_005, level="info", message="Step 1/4",
                                object="fine_tuning.job.event", type="metrics", data={"step": 1, "train_loss": 0.5})]
    df = jobs.events_frame(items)
    assert list(df.columns) == jobs.EVENT_COLUMNS
    assert df["id"].tolist() == ["ftevent-1", "ftevent-2"]
    assert df["type"].tolist() == ["message", "metrics"]
    assert df["data"].iloc[1] == {"step": 1, "train_loss": 0.5}
    assert str(df["created_at"].iloc[1]) == "2023-11-14 22:13:25"
    assert jobs.events_frame([]).empty and list(jobs.events_frame([]).columns) == jobs.EVENT_COLUMNS
