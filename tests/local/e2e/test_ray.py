"""Jobs on Ray (`ftutils serve --ray ADDRESS`): each job a Ray Train run of the same loop on a
local Ray cluster the test starts (2 CPUs, once per session), seen through the official client.

One TorchTrainer run proves it, because Ray's start-up costs ~45 s a run on the 2-core box: a
job whose Ray worker is killed after its first checkpoint resumes from it and succeeds, with the
per-step losses, checkpoints, result file and `ft:` model of the same job on the embedded worker.
"""
from __future__ import annotations

import base64
import csv
import io
import os
import re
import signal
import time

import pytest

from tests.conftest import start_server, stop_server
from tests.local.helpers import wait_for, wait_until, warm_model_cache, write_jsonl

CPUS = 2
STARTUP_TIMEOUT = "timed out during startup"  # the raylet waits 15 s for its agents' ports (ray-project/ray#65983)
NAMES = ["Ada", "Bo", "Cy", "Di", "Ed", "Flo", "Gus", "Hal"]


@pytest.fixture(scope="session")
def ray_cluster():
    """A local Ray head with 2 CPUs, started by this process (the first driver) and shared by
    every Ray test; its GCS address is what `--ray` takes."""
    import ray

    for attempt in range(3):
        try:
            context = ray.init(num_cpus=CPUS, include_dashboard=False, log_to_driver=False)
            break
        except Exception as exc:  # noqa: BLE001  (Ray raises a bare Exception for this one)
            ray.shutdown()
            if STARTUP_TIMEOUT not in str(exc) or attempt == 2:
                raise
            time.sleep(5)  # a busy CPU made the agent late: it is a matter of load, so wait and retry
    yield context.address_info["gcs_address"]
    ray.shutdown()


def _chats(n: int) -> list[dict]:
    return [{"messages": [{"role": "system", "content": "Greet the person."},
                          {"role": "user", "content": f"Greet {NAMES[i % len(NAMES)]} ({i})"},
                          {"role": "assistant", "content": f"Hello {NAMES[i % len(NAMES)]}!"}]} for i in range(n)]


def _start(client, tmp_path, name):
    path = write_jsonl(tmp_path / f"{name}.jsonl", _chats(48))
    file = client.files.create(file=path.open("rb"), purpose="fine-tune")
    return client.fine_tuning.jobs.create(
        model="tiny-smollm2", training_file=file.id, suffix="ray", seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 3, "batch_size": 2, "learning_rate_multiplier": 2}}})


def _result_rows(client, job) -> list[dict]:
    text = base64.b64decode(client.files.content(job.result_files[0]).read()).decode()
    return list(csv.DictReader(io.StringIO(text)))


def _messages(client, job_id) -> list[str]:
    """The job's event messages, oldest first, with the ids of its files, job and models blanked."""
    return [re.sub(r"\b(file|ftjob|ftckpt)-\w+|ft:\S+", "<id>", e.message)
            for e in reversed(client.fine_tuning.jobs.list_events(job_id, limit=10000).data)]


def _ray_train_workers() -> list[int]:
    """The pids of the Ray Train workers on this machine (Ray names their processes so)."""
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as f:
                    if f.read().startswith(b"ray::RayTrainWorker"):
                        pids.append(int(entry))
            except OSError:
                continue
    return pids


@pytest.mark.slow
def test_a_job_on_ray_trains_as_embedded_and_survives_a_killed_worker(ray_cluster, local_server, tmp_path):
    embedded = local_server.client(max_retries=0)
    job = _start(embedded, tmp_path, "embedded")
    data = tmp_path / "ray-server"
    warm_model_cache(local_server.data_dir, data)
    server = start_server(data, args=("--ray", ray_cluster))
    try:
        client = server.client(max_retries=0)
        on_ray = _start(client, tmp_path, "ray")
        # Kill one of the two Ray workers once the first epoch's checkpoint is in, mid-job.
        wait_until(lambda: client.fine_tuning.jobs.checkpoints.list(on_ray.id).data, timeout=300, poll=0.05,
                   what="the Ray job's first checkpoint")
        [victim, *_] = wait_until(_ray_train_workers, timeout=10, what="a Ray Train worker")
        os.kill(victim, signal.SIGKILL)
        on_ray = wait_for(client, on_ray.id, ("succeeded", "failed", "cancelled"), timeout=300)
        job = wait_for(embedded, job.id, ("succeeded", "failed", "cancelled"), timeout=120)
        assert (on_ray.status, on_ray.error, job.status) == ("succeeded", None, "succeeded")
        messages = _messages(client, on_ray.id)
        [restart] = [m for m in messages if m.startswith("A Ray worker of this job stopped")]
        assert re.search(r"resumes from the checkpoint at step (24|48)\.$", restart), restart
        # To the client the two jobs look the same: steps and losses (to float rounding: two
        # processes on Ray, one embedded), checkpoints, tokens, the result file, the model.
        ours, theirs = _result_rows(client, on_ray), _result_rows(embedded, job)
        assert [r["step"] for r in ours] == [r["step"] for r in theirs] == [str(s) for s in range(1, 73)]
        for a, b in zip(ours, theirs):
            assert float(a["train_loss"]) == pytest.approx(float(b["train_loss"]), rel=2e-2, abs=1e-4), a["step"]
        steps = [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(on_ray.id).data]
        assert steps == [c.step_number for c in embedded.fine_tuning.jobs.checkpoints.list(job.id).data]
        assert sorted(steps) == [24, 48, 72]
        assert on_ray.trained_tokens == job.trained_tokens
        assert on_ray.fine_tuned_model.startswith("ft:tiny-smollm2:local:ray:")
        assert len(on_ray.fine_tuned_model) == len(job.fine_tuned_model)
        announce = "Fine-tuning tiny-smollm2 with LoRA"  # on Ray it adds: each batch shared by 2 processes
        missing = {m for m in _messages(embedded, job.id) if not m.startswith((announce, "Step "))} - set(messages)
        assert not missing, f"events of the embedded job the Ray job lacks: {missing}"
        reply = client.chat.completions.create(model=on_ray.fine_tuned_model, max_tokens=4,
                                               messages=[{"role": "user", "content": "Greet Ada (0)"}])
        assert reply.choices[0].message.content
    finally:
        stop_server(server)
