"""Bad input and rough handling, on real servers over HTTP: a file of the wrong format for
the job's method, a training file deleted mid-job, private data-dir permissions, a stale
server.json, an aborted upload and an upload that declares a size over the limit."""
from __future__ import annotations

import http.client
import json
import os
import signal
import stat
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from tests.conftest import ROOT, start_server, stop_server
from tests.local.helpers import chat_lines, health, pid_gone, wait_for, wait_until, write_jsonl

PREFERENCE = {"input": {"messages": [{"role": "user", "content": "Greet Ann"}]},
              "preferred_output": [{"role": "assistant", "content": "Hello Ann!"}],
              "non_preferred_output": [{"role": "assistant", "content": "Go away."}]}
BOUNDARY = "ftutils-test-boundary"


def upload_request(server, content_length: int) -> http.client.HTTPConnection:
    """A multipart upload with its headers sent and nothing of its body yet."""
    url = urlsplit(server.base_url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    conn.putrequest("POST", "/v1/files")
    conn.putheader("Authorization", f"Bearer {server.api_key}")
    conn.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    conn.putheader("Content-Length", str(content_length))
    conn.endheaders()
    return conn


def body_start() -> bytes:
    return (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nfine-tune\r\n"
            f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"t.jsonl\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + b'{"messages": []}\n' * 50


def test_a_preference_file_fails_a_supervised_job_at_validation(client, tmp_path):
    train = client.files.create(file=write_jsonl(tmp_path / "pref.jsonl", [PREFERENCE] * 12).open("rb"),
                                purpose="fine-tune")
    valid = client.files.create(file=write_jsonl(tmp_path / "valid.jsonl", chat_lines(2) + [PREFERENCE]).open("rb"),
                                purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id)
    job = wait_for(client, job.id, ("failed", "succeeded", "cancelled"), timeout=120)
    assert job.status == "failed" and job.error.code == "wrong_format" and job.error.param == "training_file"
    assert job.error.message.startswith("pref.jsonl: line 1: a preference example in a file for supervised")
    assert job.trained_tokens is None and not client.fine_tuning.jobs.checkpoints.list(job.id).data

    # The validation file goes through the same validator, with the same method: line 3 is wrong.
    ok = client.files.create(file=write_jsonl(tmp_path / "ok.jsonl", chat_lines(12)).open("rb"), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=ok.id, validation_file=valid.id)
    job = wait_for(client, job.id, ("failed", "succeeded", "cancelled"), timeout=120)
    assert job.status == "failed" and job.error.code == "wrong_format" and job.error.param == "validation_file"
    assert job.error.message.startswith("valid.jsonl: line 3: a preference example")


def test_a_training_file_deleted_mid_job_fails_it_without_the_servers_paths(client, local_server, tmp_path):
    train = client.files.create(file=write_jsonl(tmp_path / "t.jsonl", chat_lines(12)).open("rb"),
                                purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id,
                                         hyperparameters={"n_epochs": 50, "batch_size": 1})
    wait_until(lambda: any(e.type == "metrics" for e in client.fine_tuning.jobs.list_events(job.id).data),
               timeout=120, what="the first training step")
    client.fine_tuning.jobs.pause(job.id)
    wait_until(lambda: any(e.message.startswith("Fine-tuning job paused")
                           for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data),
               timeout=60, what="the worker to pause")
    client.files.delete(train.id)
    client.fine_tuning.jobs.resume(job.id)
    job = wait_for(client, job.id, ("failed", "succeeded", "cancelled"), timeout=120)
    assert job.status == "failed" and job.error.code == "file_not_found" and job.error.param == "training_file"
    assert job.error.message == f"{train.id}: the file was deleted before training read it."
    events = " ".join(e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data)
    assert str(local_server.data_dir) not in job.error.message + events


def test_an_upload_declaring_more_than_the_limit_gets_413_before_its_body(local_server):
    conn = upload_request(local_server, 10 * 1024**3)  # 10 GiB said, a few bytes sent
    conn.send(body_start())
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 413
    assert body == {"error": {"message": "File is too large: the limit on this server is 536870912 bytes.",
                              "type": "invalid_request_error", "param": "file", "code": "file_too_large"}}


def test_an_aborted_upload_is_one_warning_and_leaves_nothing(local_server, client):
    files_before = {f.id for f in client.files.list().data}
    log_start = local_server.log.stat().st_size
    conn = upload_request(local_server, 100_000)
    conn.send(body_start())  # ~1 kB of 100 kB, then the client goes away
    conn.sock.shutdown(2)
    conn.close()
    wait_until(lambda: "upload aborted" in local_server.log.read_text()[log_start:], timeout=30,
               what="the server to notice the aborted upload")
    new = local_server.log.read_text()[log_start:]
    lines = [line for line in new.splitlines() if "upload aborted" in line]
    assert len(lines) == 1 and " WARNING upload aborted by the client after " in lines[0]
    assert "Traceback" not in new and "unhandled error" not in new
    assert {f.id for f in client.files.list().data} == files_before
    wait_until(lambda: not list((local_server.data_dir / "files").glob(".upload-*")), timeout=10,
               what="the partial upload to be removed")


@pytest.mark.slow
def test_the_data_dir_is_private_and_a_stale_server_json_is_replaced(tmp_path):
    data = tmp_path / "srv"
    server = start_server(data)
    try:
        client = server.client(max_retries=0)
        uploaded = client.files.create(file=write_jsonl(tmp_path / "t.jsonl", chat_lines(12)).open("rb"),
                                       purpose="fine-tune")
        mode = {p.name: stat.S_IMODE(p.stat().st_mode) for p in
                (data, data / "files", data / "jobs", data / "db.sqlite", data / "files" / uploaded.id)}
        assert mode == {"srv": 0o700, "files": 0o700, "jobs": 0o700, "db.sqlite": 0o600, uploaded.id: 0o600}
        worker_pid = health(server)["worker_pid"]  # likely still importing torch: killed before it settles
        server.process.send_signal(signal.SIGKILL)  # leaves its server.json behind
        server.process.wait(timeout=10)
        # The orphan notices however early its parent died (it was told the pid, not left to getppid()).
        assert wait_until(lambda: pid_gone(worker_pid), timeout=30, what="the orphaned worker to exit")
        stale = json.loads((data / "server.json").read_text())
        assert stale["pid"] == server.process.pid
    finally:
        if server.process.poll() is None:
            stop_server(server)

    server = start_server(data)
    try:
        assert json.loads((data / "server.json").read_text()) == {"url": server.base_url, "pid": server.process.pid}
        warnings = [line for line in server.log.read_text().splitlines() if "stale server.json" in line]
        assert warnings and f"pid {stale['pid']} is gone" in warnings[-1] and " WARNING " in warnings[-1]
        assert [f.id for f in server.client(max_retries=0).files.list().data] == [uploaded.id]

        # A live server is not stale: a second one for the same data dir refuses to start.
        second = subprocess.run([sys.executable, "-m", "ftutils", "serve", "--port", "0", "--data-dir", str(data)],
                                capture_output=True, text=True, timeout=60, cwd=ROOT,
                                env={**os.environ, "FTUTILS_API_KEY": "x"})
        assert second.returncode == 1
        assert f"another server (pid {server.process.pid}) already serves {data}" in second.stderr
        assert json.loads((data / "server.json").read_text())["pid"] == server.process.pid
    finally:
        stop_server(server)
