"""JobMonitor without a browser: the live widget (FTUTILS_INTERACTIVE=1) updated from its
background thread while the same job is followed with plain progress lines, its data
methods, re-attaching by id and cancelling (its loss plot: tests/plots/test_training.py)."""
import time

import pytest

from ftutils.train import jobs
from ftutils.widgets.monitor import JobMonitor
from tests.train.test_jobs import write_tiny


@pytest.mark.slow
def test_job_followed_live_and_plain_to_success(client, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "1")
    train_path, valid_path = write_tiny(tmp_path, seed=1)
    train, valid = jobs.upload(client, train_path), jobs.upload(client, valid_path)
    job = jobs.launch(client, train.id, valid.id, model="tiny-smollm2", n_epochs=2, batch_size=4)

    monitor = JobMonitor(client, job.id, poll=0.3)
    assert monitor.interactive
    started = time.monotonic()
    assert monitor.start() is monitor
    assert time.monotonic() - started < 5  # returns while the job runs in the background
    assert monitor._thread.is_alive() and monitor.widget is not None

    # Meanwhile the same job, followed the non-interactive way in the foreground.
    plain = JobMonitor(client, job.id, poll=0.5, interactive=False).wait(timeout=300)
    assert plain.status == "succeeded"
    out = capsys.readouterr().out
    # Which intermediate statuses a poll catches depends on timing (a tiny job can finish
    # between two polls), so only the first line's form and the end are certain.
    assert any(f"{job.id}: {status}" in out for status in ("validating_files", "queued", "running")), out
    assert f"{job.id} succeeded: {plain.fine_tuned_model}" in out
    # One line per epoch end (2 epochs of 4 steps) with the losses measured there, no progress bar.
    epoch_lines = [line for line in out.splitlines() if " epoch " in line]
    assert [line.split(" ", 1)[1].split(":")[0] for line in epoch_lines] == ["epoch 1/2, step 4/8", "epoch 2/2, step 8/8"]
    assert all("(whole validation file)" in line and "train loss" in line for line in epoch_lines)
    assert "steps:" not in out and "%|" not in out

    job = monitor.wait(timeout=60)
    assert job.status == "succeeded"

    s = monitor.state()
    assert s["status"] == "succeeded" and s["progress"] == 1.0
    assert s["step"] == s["total_steps"] == 8 and s["epoch"] == 2 and s["n_epochs"] == 2
    assert s["fine_tuned_model"] == job.fine_tuned_model and s["error"] is None
    assert s["n_checkpoints"] >= 1 and s["train_loss"] > 0
    ui = monitor._ui
    assert "succeeded" in ui["status"].value and ui["bar"].value == 1.0 and ui["cancel"].disabled
    assert "step 8/8" in ui["bar_label"].value
    assert "The job has successfully completed" in ui["log"].value or "Training finished" in ui["log"].value
    assert "ckpt-step-" in ui["checkpoints"].value
    assert len(ui["plot"].outputs) == 1 and "image/png" in ui["plot"].outputs[0]["data"]

    m = monitor.metrics()
    assert m["step"].tolist() == list(range(1, 9)) and m["train_loss"].notna().all()
    assert monitor.events()["message"].str.contains("Fine-tuning job started").any()

    # After a kernel restart: a new monitor on the same id sees the same history.
    again = JobMonitor(client, job.id, interactive=False)
    assert again.refresh().status == "succeeded"
    assert again.state()["n_events"] == s["n_events"]
    assert again.metrics().equals(m)
    assert again.diagnosis().verdict in ("good", "overfitting", "underfitting", "unusable")


@pytest.mark.slow
def test_cancel_from_the_monitor(client, tmp_path, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    train_path, _ = write_tiny(tmp_path, n_train=32, n_valid=0, seed=2)
    job = jobs.launch(client, jobs.upload(client, train_path).id, model="tiny-smollm2", n_epochs=20, batch_size=1)
    monitor = JobMonitor(client, job.id, poll=0.3)
    monitor.cancel()
    job = monitor.wait(timeout=120, show=False)
    assert job.status == "cancelled"
    assert monitor.state()["error"] == "The job was cancelled before it finished."
