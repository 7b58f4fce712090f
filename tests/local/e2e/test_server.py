"""The server as a process: its key, server.json, port clashes, upload limits, a clean
shut-down in the middle of a job, and crashes (kill -9 of the worker, then of the whole
server) from which a job resumes with nothing already written lost."""
from __future__ import annotations

import base64
import csv
import io
import json
import os
import signal
import sqlite3
import stat
import subprocess
import sys

import httpx
import openai
import pytest

from tests.conftest import ROOT, start_server, stop_server
from tests.local.helpers import chat_lines, health, pid_gone, wait_for, wait_until, warm_model_cache, write_jsonl


def events(client, job_id):
    return list(reversed(client.fine_tuning.jobs.list_events(job_id, limit=10000).data))


def steps_of(client, job_id):
    return [e.data["step"] for e in events(client, job_id) if e.type == "metrics"]


@pytest.mark.slow
def test_key_file_port_clash_upload_limit_and_clean_shutdown(tmp_path, local_server):
    data = tmp_path / "srv"
    warm_model_cache(local_server.data_dir, data)
    server = start_server(data, env={"FTUTILS_API_KEY": "", "FTUTILS_MAX_UPLOAD_BYTES": "2000"})
    try:
        key_file = data / "api_key"
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
        key = key_file.read_text().strip()
        assert key not in server.log.read_text()  # never logged
        client = openai.OpenAI(base_url=server.base_url, api_key=key, max_retries=0)
        assert json.loads((data / "server.json").read_text()) == {"url": server.base_url, "pid": server.process.pid}

        # Too big: 413 in OpenAI's shape, and neither a file nor a row is left.
        with pytest.raises(openai.APIStatusError) as exc:
            client.files.create(file=("big.jsonl", b"x" * 5000), purpose="fine-tune")
        assert exc.value.status_code == 413 and exc.value.response.json()["error"]["param"] == "file"
        assert client.files.list().data == [] and list((data / "files").iterdir()) == []
        small = client.files.create(file=write_jsonl(tmp_path / "t.jsonl", chat_lines(12)).open("rb"),
                                    purpose="fine-tune")
        assert small.bytes < 2000 and [f.id for f in client.files.list().data] == [small.id]

        # A second server on the same port: one clear line, a non-zero exit, our server.json untouched.
        port = server.base_url.split(":")[-1].split("/")[0]
        clash = subprocess.run([sys.executable, "-m", "ftutils", "serve", "--port", port, "--data-dir", str(data)],
                               capture_output=True, text=True, timeout=60, cwd=ROOT,
                               env={**os.environ, "FTUTILS_API_KEY": "x"})
        assert clash.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in clash.stderr
        assert json.loads((data / "server.json").read_text())["pid"] == server.process.pid

        # SIGTERM in the middle of training: the job goes back to the queue, to resume on restart.
        job = client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=small.id,
                                             hyperparameters={"n_epochs": 50, "batch_size": 1})
        wait_until(lambda: steps_of(client, job.id), timeout=90, what="the first training step")
        worker_pid = health(server)["worker_pid"]
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(timeout=30) == 0
    finally:
        if server.process.poll() is None:
            stop_server(server)
    assert not (data / "server.json").exists()
    assert wait_until(lambda: pid_gone(worker_pid), timeout=10, what="the worker to exit")
    db = sqlite3.connect(data / "db.sqlite")
    status, resume_from = db.execute("SELECT status, resume_from FROM jobs WHERE id = ?", (job.id,)).fetchone()
    assert status == "queued" and resume_from and os.path.isdir(resume_from)
    last = db.execute("SELECT message FROM events WHERE job_id = ? ORDER BY seq DESC LIMIT 1", (job.id,)).fetchone()[0]
    assert last.startswith("The server is shutting down; the job will resume from step")


def server_with_a_job(tmp_path, local_server, env=None, **hyperparameters):
    """A server of its own (on a copy of the model cache) with a tiny job that has written a checkpoint."""
    data = tmp_path / "srv"
    warm_model_cache(local_server.data_dir, data)
    server = start_server(data, env=env)
    try:
        client = server.client(max_retries=0)
        train = client.files.create(file=write_jsonl(tmp_path / "t.jsonl", chat_lines(12)).open("rb"),
                                    purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id,
                                             hyperparameters=hyperparameters)
        wait_until(lambda: client.fine_tuning.jobs.checkpoints.list(job.id).data, timeout=90, what="a checkpoint")
    except BaseException:
        stop_server(server)
        raise
    return data, server, client, job


@pytest.mark.slow
def test_crashes_mid_job_lose_nothing(tmp_path, local_server):
    data, server, client, job = server_with_a_job(tmp_path, local_server, n_epochs=8, batch_size=1)
    try:
        # 1. The worker dies: the API restarts it, and the job resumes from its checkpoint.
        os.kill(health(server)["worker_pid"], signal.SIGKILL)
        wait_until(lambda: any(e.message.startswith("The worker stopped unexpectedly") for e in events(client, job.id)),
                   timeout=60, what="the restarted worker to recover the job")
        wait_until(lambda: any(e.message.startswith("Resumed from step") for e in events(client, job.id)),
                   timeout=60, what="training to resume")
        assert client.fine_tuning.jobs.retrieve(job.id).status in ("running", "queued")

        # 2. The whole server dies (kill -9): its orphaned worker stops on its own.
        before = {e.id for e in events(client, job.id)}
        files_before = {f.id for f in client.files.list().data}
        worker_pid = health(server)["worker_pid"]
        server.process.kill()
        server.process.wait()
        assert wait_until(lambda: pid_gone(worker_pid), timeout=30, what="the orphaned worker to exit")
    finally:
        if server.process.poll() is None:
            stop_server(server)

    server = start_server(data)
    try:
        client = server.client(max_retries=0)
        job = wait_for(client, job.id, ("succeeded", "failed", "cancelled"), timeout=120)
        assert job.status == "succeeded", job.error
        after = events(client, job.id)
        assert before <= {e.id for e in after}  # every event written before the crash is still there
        assert files_before <= {f.id for f in client.files.list().data}
        crashes = [e for e in after if e.message.startswith("The worker stopped unexpectedly")]
        assert len(crashes) >= 1 and all(e.level == "warn" for e in crashes)
        rows = list(csv.DictReader(io.StringIO(base64.b64decode(client.files.content(job.result_files[0]).read()).decode())))
        assert [int(r["step"]) for r in rows] == list(range(1, 97))
        assert len(client.fine_tuning.jobs.checkpoints.list(job.id).data) == 3
        assert job.fine_tuned_model in {m.id for m in client.models.list().data}
    finally:
        stop_server(server)


def children(pid: int) -> set[int]:
    found = set()
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found |= {int(p) for p in f.read().split()}
    return found


@pytest.mark.slow
def test_a_job_trained_by_two_processes_survives_its_worker_being_killed(tmp_path, local_server):
    _, server, client, job = server_with_a_job(tmp_path, local_server, env={"FTUTILS_TRAIN_PROCESSES": "2"},
                                               n_epochs=6, batch_size=2)
    try:
        worker = health(server)["worker_pid"]
        helpers = children(worker)
        assert helpers, "the worker should train with a helper process"
        os.kill(worker, signal.SIGKILL)
        # The orphaned helper notices and exits on its own; the restarted worker resumes the job.
        assert wait_until(lambda: all(pid_gone(p) for p in helpers), timeout=30, what="the helper to exit")
        job = wait_for(client, job.id, ("succeeded", "failed", "cancelled"), timeout=240)
        assert job.status == "succeeded", job.error
        assert any(e.message.startswith("Resumed from step") for e in events(client, job.id))
        assert steps_of(client, job.id)[-1] == 36
    finally:
        stop_server(server)
