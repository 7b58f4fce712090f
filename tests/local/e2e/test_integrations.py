"""integrations=[{"type": "wandb", ...}]: accepted, echoed, never failing a job; an offline W&B
run where wandb is installed, else an event saying it was ignored."""
from __future__ import annotations

import importlib.util

import openai
import pytest

from tests.local.helpers import chat_lines, wait_for, write_jsonl

WANDB = [{"type": "wandb", "wandb": {"project": "recipes", "name": "local-rehearsal", "tags": ["local"]}}]


def test_a_wandb_integration_is_echoed_and_the_job_still_succeeds(api, tmp_path):
    train = api.files.create(file=write_jsonl(tmp_path / "t.jsonl", chat_lines(10)).open("rb"), purpose="fine-tune")
    job = api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id, integrations=WANDB,
                                      hyperparameters={"n_epochs": 1, "batch_size": 5})
    assert job.integrations[0].type == "wandb" and job.integrations[0].wandb.project == "recipes"
    job = wait_for(api, job.id, ("succeeded", "failed", "cancelled"), timeout=300)
    assert job.status == "succeeded", job.error
    assert job.integrations[0].wandb.name == "local-rehearsal" and job.integrations[0].wandb.tags == ["local"]
    events = [e for e in api.fine_tuning.jobs.list_events(job.id, limit=100)]
    if importlib.util.find_spec("wandb") is None:
        [ignored] = [e for e in events if "wandb integration" in e.message]
        assert ignored.level == "warn" and "was ignored" in ignored.message and "pip install wandb" in ignored.message
    else:
        assert any("offline W&B run" in e.message for e in events)
    assert api.fine_tuning.jobs.retrieve(job.id).integrations == job.integrations
    without = api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id)
    assert without.integrations is None
    api.fine_tuning.jobs.cancel(without.id)


@pytest.mark.parametrize("integrations, param", [
    ([{"type": "mlflow", "mlflow": {}}], "integrations[0].type"),
    ([{"type": "wandb", "wandb": {}}], "integrations[0].wandb.project"),
    ([{"type": "wandb", "wandb": {"project": "p", "colour": "red"}}], "integrations[0].wandb.colour"),
    ([WANDB[0], {"type": "wandb", "wandb": {"project": "p", "tags": "one"}}], "integrations[1].wandb.tags"),
])
def test_bad_integrations_are_400s_naming_the_field(api, tmp_path, integrations, param):
    train = api.files.create(file=write_jsonl(tmp_path / "t.jsonl", chat_lines(10)).open("rb"), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as exc:
        api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id, integrations=integrations)
    assert exc.value.response.json()["error"]["param"] == param
