"""The server's jobs agree with `ftutils validate` on the corpus files of issue #12: the real
server, the real openai client, a job per file on the tiny model. A file the validator calls
valid trains; one it refuses fails in validating_files with the same code, line and param."""
from __future__ import annotations

from pathlib import Path

import pytest

from ftutils.data.validate import validate_file
from tests.local.helpers import wait_for

MALFORMED = Path(__file__).resolve().parents[2] / "data" / "malformed"
TINY = "tiny-smollm2"
DONE = ("succeeded", "failed", "cancelled")


def job_for(client, name: str):
    upload = client.files.create(file=(name, (MALFORMED / name).read_bytes()), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=TINY, training_file=upload.id, seed=0,
                                         method={"type": "supervised",
                                                 "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}}})
    return wait_for(client, job.id, DONE, timeout=600)


@pytest.mark.parametrize("name", ["bom.jsonl", "assistant_only.jsonl"])
def test_a_file_the_validator_passes_trains(client, name):
    assert validate_file(MALFORMED / name, model=TINY, method="supervised").ok
    job = job_for(client, name)
    assert job.status == "succeeded", job.error
    events = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100).data]
    assert not [m for m in events if "skipped" in m], events  # no example dropped on the way


@pytest.mark.parametrize("name, code, line", [("lone_surrogate.jsonl", "invalid_unicode", 6),
                                              ("every_weight_zero.jsonl", "nothing_to_train", None),
                                              ("nul_byte.jsonl", "invalid_json", 3)])
def test_a_file_the_validator_refuses_fails_validation_the_same_way(client, name, code, line):
    [first] = validate_file(MALFORMED / name, model=TINY, method="supervised").errors[:1]
    assert (first.code, first.line) == (code, line)
    job = job_for(client, name)
    assert job.status == "failed"
    assert (job.error.code, job.error.param) == (code, "training_file")
    assert (f"line {line}" in job.error.message) if line else ("line" not in job.error.message)
    if first.field:
        assert first.field in job.error.message
