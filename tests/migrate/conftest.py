"""Two real local servers: one stands in for OpenAI (the source, where a team's jobs ran),
the other is the team's new home (the target). Both train OpenAI's ids as tiny-smollm2, as
FTUTILS_MODEL_ALIASES allows, so the jobs are OpenAI-shaped and quick.

On the source, before any test: a supervised job with a validation file, a DPO job, a
cancelled job, and a supervised job whose validation file the source loses once it has succeeded
(so it can no longer be downloaded)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import openai
import pytest

from tests.conftest import ROOT, start_server, stop_server
from tests.local.helpers import warm_model_cache
from tests.train.test_jobs import write_tiny

ALIASES = json.dumps({"*": "tiny-smollm2"})
SOURCE_KEY, TARGET_KEY = "sk-source-0123456789abcdef", "ftl-target-0123456789abcdef"


@dataclass
class Servers:
    source: object
    target: object
    jobs: dict = field(default_factory=dict)
    """"supervised", "dpo", "cancelled", "broken" -> the source job."""
    deleted_file: str = ""
    """The broken job's validation file, whose bytes the source has lost."""

    def env(self) -> dict:
        """What `ftutils migrate` needs, keys in variables named on its command line."""
        return {"SOURCE_KEY": SOURCE_KEY, "TARGET_KEY": TARGET_KEY}

    def args(self, out: Path, *more) -> list:
        return ["migrate", "--from", self.source.base_url, "--from-key-env", "SOURCE_KEY", "--to",
                self.target.base_url, "--to-key-env", "TARGET_KEY", "--out", str(out), *more]


def preference_pairs(n: int) -> list[dict]:
    return [{"input": {"messages": [{"role": "user", "content": f"Can I close account {i}?"}]},
             "preferred_output": [{"role": "assistant", "content": f"Yes: account {i} closes once its balance is zero."}],
             "non_preferred_output": [{"role": "assistant", "content": "No."}]} for i in range(n)]


def _wait(client, job_id: str, timeout: float = 240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.3)
    raise TimeoutError(f"{job_id} did not finish")


def _upload(client, path: Path) -> str:
    with path.open("rb") as fh:
        return client.files.create(file=(path.name, fh), purpose="fine-tune").id


@pytest.fixture(scope="package")
def servers(local_server, tmp_path_factory):
    root = tmp_path_factory.mktemp("migration")
    warming = ThreadPoolExecutor(2)
    for name in ("source", "target"):
        warm_model_cache(local_server.data_dir, root / name)
    # Both at once: each start waits mostly for its own processes to come up.
    made = list(warming.map(lambda name, key: start_server(root / name, env={
        "FTUTILS_API_KEY": key, "FTUTILS_MODEL_ALIASES": ALIASES}), ("source", "target"), (SOURCE_KEY, TARGET_KEY)))
    pair = Servers(*made)
    # A server's API process loads torch on its first chat request (~10 s): both do it now, while
    # the source trains, rather than one after the other in the evaluation test.
    warm = [warming.submit(s.client().chat.completions.create, model="tiny-smollm2", max_tokens=1,
                           messages=[{"role": "user", "content": "hi"}]) for s in made]
    src = pair.source.client(max_retries=0)
    train, valid = write_tiny(root / "data", n_train=16, n_valid=8)
    prefs = root / "data" / "preferences.jsonl"
    prefs.write_text("".join(json.dumps(p) + "\n" for p in preference_pairs(10)))
    # As a team created them on OpenAI, with the openai client's own calls.
    jobs = {
        "supervised": src.fine_tuning.jobs.create(
            model="gpt-4o-mini-2024-07-18", training_file=_upload(src, train), validation_file=_upload(src, valid),
            method={"type": "supervised", "supervised": {"hyperparameters": {
                "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 2.0}}},
            suffix="support", seed=7, metadata={"team": "ml"}),
        "dpo": src.fine_tuning.jobs.create(
            model="gpt-4.1-mini-2025-04-14", training_file=_upload(src, prefs),
            method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 1, "batch_size": 4}}},
            suffix="prefs", seed=3),
        "cancelled": src.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=_upload(src, train),
                                                 hyperparameters={"n_epochs": 20, "batch_size": 1}),
    }
    src.fine_tuning.jobs.cancel(jobs["cancelled"].id)
    broken_valid = _upload(src, valid)
    jobs["broken"] = src.fine_tuning.jobs.create(model="gpt-4o-mini-2024-07-18", training_file=_upload(src, train),
                                                 validation_file=broken_valid, hyperparameters={"n_epochs": 1})
    pair.jobs = {name: _wait(src, job.id) for name, job in jobs.items()}
    for request in warm:
        request.result()
    warming.shutdown()
    assert [j.status for j in pair.jobs.values()] == ["succeeded", "succeeded", "cancelled", "succeeded"], \
        {n: j.error for n, j in pair.jobs.items()}
    # Its bytes lost on the source's disk (the file object is still listed): its download fails.
    (pair.source.data_dir / "files" / broken_valid).unlink()
    pair.deleted_file = broken_valid
    yield pair
    with ThreadPoolExecutor(2) as stopping:
        list(stopping.map(stop_server, made))


def source_client(servers):
    return openai.OpenAI(api_key=SOURCE_KEY, base_url=servers.source.base_url, max_retries=0)


def target_client(servers):
    return openai.OpenAI(api_key=TARGET_KEY, base_url=servers.target.base_url, max_retries=0)


def ftutils(servers, args, timeout=300):
    return subprocess.run([sys.executable, "-m", "ftutils", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **servers.env()})


@pytest.fixture(scope="package")
def first_run(servers, tmp_path_factory):
    """The named jobs migrated by a run killed once it has uploaded a file, then run again with --wait."""
    out = tmp_path_factory.mktemp("first") / "migration"
    names = [servers.jobs[n].id for n in ("supervised", "dpo", "cancelled")]
    args = servers.args(out, "--jobs", *names, "--wait")
    killed = subprocess.Popen([sys.executable, "-m", "ftutils", *args], cwd=ROOT, env={**os.environ, **servers.env()},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while killed.poll() is None and time.monotonic() < deadline:
        try:
            state = json.loads((out / "migration.json").read_text())
        except (OSError, ValueError):
            state = {}
        if any(j.get("uploads") for j in state.get("jobs", {}).values()):
            killed.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    killed.wait(timeout=60)
    done = ftutils(servers, args)
    return out, done, killed.returncode
