"""DPO jobs through a real server and the real openai client."""
from __future__ import annotations

import math

import pytest

from tests.conftest import ROOT


def test_dpo_job_over_the_api(api, preference_files):
    from tests.local.helpers import wait_for

    train_file = api.files.create(file=(preference_files / "train.jsonl").open("rb"), purpose="fine-tune")
    valid_file = api.files.create(file=(preference_files / "valid.jsonl").open("rb"), purpose="fine-tune")
    job = api.fine_tuning.jobs.create(
        model="tiny-smollm2", training_file=train_file.id, validation_file=valid_file.id, seed=1, suffix="dpo",
        method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.2, "n_epochs": 2, "batch_size": 4,
                                                           "learning_rate_multiplier": 2}}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.2
    job = wait_for(api, job.id, ("succeeded", "failed", "cancelled"), timeout=300)
    assert job.status == "succeeded", job.error
    assert job.method.dpo.hyperparameters.beta == 0.2 and job.method.dpo.hyperparameters.n_epochs == 2
    events = api.fine_tuning.jobs.list_events(job.id, limit=100).data
    records = sorted((e.data for e in events if e.type == "metrics"), key=lambda d: d["step"])
    losses = [r["train_loss"] for r in records]
    assert len(losses) == 6
    assert losses[0] == pytest.approx(math.log(2), abs=0.02)
    assert sum(losses[-2:]) / 2 < losses[0] - 0.05
    assert "full_valid_loss" in records[-1] and "train_reward_accuracy" in records[-1]
    checkpoints = api.fine_tuning.jobs.checkpoints.list(job.id).data
    assert sorted(c.step_number for c in checkpoints) == [3, 6]
    answer = api.chat.completions.create(model=job.fine_tuned_model, max_tokens=5, seed=0,
                                         messages=[{"role": "user", "content": "How do I close my account?"}])
    assert answer.choices[0].message.content


def test_chat_file_for_a_dpo_job_fails_at_validation_with_its_line(client, tmp_path):
    from tests.local.helpers import chat_lines, wait_for, write_jsonl

    upload = client.files.create(file=write_jsonl(tmp_path / "chat.jsonl", chat_lines(12)).open("rb"),
                                 purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=upload.id, method={"type": "dpo"})
    job = wait_for(client, job.id, ("failed", "succeeded"), timeout=120)
    assert job.status == "failed"
    assert job.error.code == "wrong_format" and job.error.param == "training_file"
    assert "line 1" in job.error.message


@pytest.mark.parametrize("method, param, code", [
    ({"type": "reinforcement"}, "method.type", "unsupported_method"),
    ({"type": "dpo", "dpo": {"hyperparameters": {"beta": 3}}}, "method.dpo.hyperparameters.beta", "invalid_value"),
    ({"type": "dpo", "dpo": {"hyperparameters": {"gamma": 1}}}, "method.dpo.hyperparameters.gamma", "unknown_parameter"),
])
def test_bad_methods_answer_400(client, tmp_path, method, param, code):
    import openai

    upload = client.files.create(file=(ROOT / "data" / "samples" / "preferences.jsonl").open("rb"), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model="tiny-smollm2", training_file=upload.id, method=method)
    assert caught.value.body["param"] == param and caught.value.body["code"] == code
