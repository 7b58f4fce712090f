"""Jobs that really train (the tiny model, a few dozen steps) on the session server, and
chat completions from what they produce, all through the real `openai` client."""
from __future__ import annotations

import base64
import csv
import io
import json
import time

import httpx
import openai
import pytest
from safetensors.torch import load_file

from tests.local.helpers import (chat_lines, validate_component, wait_for, wait_until,
                                 write_jsonl)

MESSAGES = [{"role": "user", "content": "Greet Ann"}]


def upload(api, tmp_path, name, rows):
    return api.files.create(file=write_jsonl(tmp_path / name, rows).open("rb"), purpose="fine-tune")


def all_events(api, job_id):
    return list(reversed(api.fine_tuning.jobs.list_events(job_id, limit=10000).data))  # oldest first


def metrics_steps(api, job_id):
    return [e.data["step"] for e in all_events(api, job_id) if e.type == "metrics"]


def first_token_logprob(api, model):
    out = api.chat.completions.create(model=model, messages=MESSAGES, max_tokens=1, temperature=0, logprobs=True)
    return out.choices[0].logprobs.content[0].logprob


@pytest.mark.slow
def test_full_flow(api, local_server, tmp_path, recorder):
    train = upload(api, tmp_path, "train.jsonl", chat_lines(12))
    valid = upload(api, tmp_path, "valid.jsonl", chat_lines(4))
    job = api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id, validation_file=valid.id,
                                      suffix="greet", seed=7,
                                      hyperparameters={"n_epochs": 2, "learning_rate_multiplier": 5})
    assert job.status == "validating_files" and job.hyperparameters.batch_size == "auto"
    job = wait_for(api, job.id, ("succeeded", "failed", "cancelled"), timeout=120)
    assert job.status == "succeeded", job.error

    # "auto" resolved from the 12 examples and written back in both places, as OpenAI does.
    assert (job.hyperparameters.n_epochs, job.hyperparameters.batch_size, job.hyperparameters.learning_rate_multiplier) \
        == (2, 1, 5.0)
    assert job.method.supervised.hyperparameters.batch_size == 1
    assert job.fine_tuned_model == f"ft:tiny-smollm2:local:greet:{job.id.removeprefix('ftjob-')[:8]}"
    assert job.trained_tokens > 0 and job.finished_at >= job.created_at and job.estimated_finish is None
    assert job.seed == 7 and job.error is None

    events = all_events(api, job.id)
    messages = [e.message for e in events]
    expected = ["Created fine-tuning job", "Validating training file", "Files validated, moving job to queued state",
                "Fine-tuning job started", "Step 1/24: training loss=", "Checkpoint created at step 12",
                "Step 24/24", "Checkpoint created at step 24", "New fine-tuned model created",
                "The job has successfully completed"]
    position = 0
    for want in expected:  # in this order, with anything in between
        position = next(i for i in range(position, len(messages)) if messages[i].startswith(want)) + 1
    metrics = [e.data for e in events if e.type == "metrics"]
    assert [m["step"] for m in metrics] == list(range(1, 25)) and all(m["total_steps"] == 24 for m in metrics)
    assert {"train_loss", "train_mean_token_accuracy"} <= set(metrics[0])
    assert "valid_loss" in metrics[9] and "full_valid_loss" in metrics[11]
    losses = [m["train_loss"] for m in metrics]
    assert sum(losses[-4:]) / 4 < sum(losses[:4]) / 4  # the training loss fell

    ckpts = api.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in ckpts] == [24, 12]  # newest first
    assert ckpts[1].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-12"
    assert ckpts[1].id.startswith("ftckpt-") and ckpts[1].metrics.step == 12 and ckpts[1].metrics.train_loss > 0

    [result_id] = job.result_files
    result = api.files.retrieve(result_id)
    assert result.purpose == "fine-tune-results"
    # Served base64-encoded, as OpenAI serves it, with OpenAI's columns.
    rows = list(csv.DictReader(io.StringIO(base64.b64decode(api.files.content(result_id).read()).decode())))
    assert list(rows[0]) == ["step", "train_loss", "train_accuracy", "valid_loss", "valid_mean_token_accuracy",
                             "full_valid_loss", "full_valid_mean_token_accuracy"]
    assert [r["step"] for r in rows if r["full_valid_loss"]] == ["12", "24"]  # the epoch ends
    assert [int(r["step"]) for r in rows] == list(range(1, 25))
    assert rows[9]["valid_loss"] and not rows[0]["valid_loss"]
    assert float(rows[23]["train_loss"]) == pytest.approx(losses[-1], abs=1e-5)  # written to 5 decimals

    listed = {m.id for m in api.models.list().data}
    assert {job.fine_tuned_model, ckpts[1].fine_tuned_model_checkpoint} <= listed
    assert api.models.retrieve(job.fine_tuned_model).owned_by == "local"

    # LoRA's B matrices start at zero: non-zero means the adapter really learned something.
    final = load_file(local_server.data_dir / "jobs" / job.id / "final" / "adapter_model.safetensors")
    lora_b = [t for name, t in final.items() if "lora_B" in name]
    assert lora_b and all(t.abs().sum() > 0 for t in lora_b)
    ckpt12 = load_file(local_server.data_dir / "jobs" / job.id / "checkpoints" / "step-12" / "adapter_model.safetensors")
    assert any(not final[k].equal(ckpt12[k]) for k in final)

    reply = api.chat.completions.create(model=job.fine_tuned_model, messages=MESSAGES, max_tokens=5, seed=1)
    assert reply.object == "chat.completion" and reply.model == job.fine_tuned_model
    assert isinstance(reply.choices[0].message.content, str) and reply.choices[0].finish_reason in ("stop", "length")
    assert reply.usage.prompt_tokens > 0 and reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    # Three models, three different distributions over the same first token.
    lp = {m: first_token_logprob(api, m) for m in ("tiny-smollm2", job.fine_tuned_model,
                                                    ckpts[1].fine_tuned_model_checkpoint)}
    assert len(set(lp.values())) == 3, lp

    assert api.models.delete(job.fine_tuned_model).deleted
    with pytest.raises(openai.NotFoundError):
        api.chat.completions.create(model=job.fine_tuned_model, messages=MESSAGES, max_tokens=1)
    assert not (local_server.data_dir / "jobs" / job.id / "final").exists()
    assert api.chat.completions.create(model=ckpts[0].fine_tuned_model_checkpoint, messages=MESSAGES, max_tokens=2)
    assert ("POST", "/v1/chat/completions", 200) in recorder.checked


def test_streaming_chat(api, local_server):
    args = dict(model="tiny-smollm2", messages=MESSAGES, max_tokens=6, temperature=0)
    headers = {"Authorization": f"Bearer {local_server.api_key}"}
    body = {**args, "stream": True, "stream_options": {"include_usage": True}, "logprobs": True, "top_logprobs": 2}
    with httpx.stream("POST", f"{local_server.base_url}/chat/completions", json=body, headers=headers, timeout=60) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        lines = [line for line in r.iter_lines() if line]
    assert all(line.startswith("data: ") for line in lines) and lines[-1] == "data: [DONE]"
    chunks = [json.loads(line[6:]) for line in lines[:-1]]
    for chunk in chunks:
        validate_component("CreateChatCompletionStreamResponse", chunk)
        assert chunk["object"] == "chat.completion.chunk" and chunk["id"] == chunks[0]["id"]
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant"
    finishing = [c for c in chunks if c["choices"] and c["choices"][0]["finish_reason"]]
    assert len(finishing) == 1 and finishing[0]["choices"][0]["finish_reason"] in ("stop", "length")
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] >= 1
    assert all(c["usage"] is None for c in chunks[:-1])
    tokens = [t for c in chunks if c["choices"] and c["choices"][0]["logprobs"]
              for t in c["choices"][0]["logprobs"]["content"]]
    assert tokens and all(len(t["top_logprobs"]) == 2 for t in tokens)

    streamed = "".join(c.choices[0].delta.content or "" for c in api.chat.completions.create(**args, stream=True)
                       if c.choices)
    whole = api.chat.completions.create(**args)
    assert streamed == whole.choices[0].message.content  # greedy: the same text either way
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == streamed


def test_logprobs_n_and_stop(api):
    out = api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, max_tokens=5, temperature=0,
                                      logprobs=True, top_logprobs=3)
    content = out.choices[0].logprobs.content
    assert 1 <= len(content) <= 5
    for token in content:
        assert token.logprob <= 0 and len(token.top_logprobs) == 3
        assert token.logprob == pytest.approx(max(t.logprob for t in token.top_logprobs), abs=1e-4)  # greedy
        assert bytes(token.bytes).decode("utf-8", "replace") == token.token or token.bytes
    assert "".join(t.token for t in content) == out.choices[0].message.content or out.choices[0].finish_reason == "stop"
    plain = api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, max_tokens=3)
    assert plain.choices[0].logprobs is None
    two = api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, max_tokens=3, n=2, seed=3)
    assert [c.index for c in two.choices] == [0, 1]
    with pytest.raises(openai.BadRequestError) as exc:
        api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, temperature=3)
    assert exc.value.response.json()["error"]["param"] == "temperature"
    with pytest.raises(openai.BadRequestError) as exc:
        api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, top_logprobs=2)
    assert exc.value.response.json()["error"]["param"] == "top_logprobs"


def start_training(api, tmp_path, n_epochs: int):
    """A tiny job that has taken its first training step."""
    train = upload(api, tmp_path, "train.jsonl", chat_lines(12))
    job = api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id,
                                      hyperparameters={"n_epochs": n_epochs, "batch_size": 1})
    wait_until(lambda: metrics_steps(api, job.id), timeout=90, what="the first training step")
    return job


@pytest.mark.slow
def test_cancel_a_running_job(api, tmp_path):
    job = start_training(api, tmp_path, n_epochs=50)
    cancelled = api.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at
    wait_until(lambda: any(e.message == "Fine-tuning job cancelled" for e in all_events(api, job.id)),
               what="the worker to stop")
    steps = metrics_steps(api, job.id)
    assert steps[-1] < 600
    job = api.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "cancelled" and job.fine_tuned_model is None and job.result_files == []
    time.sleep(0.5)
    assert metrics_steps(api, job.id) == steps  # it really stopped


@pytest.mark.slow
def test_pause_and_resume(api, tmp_path):
    job = start_training(api, tmp_path, n_epochs=4)
    running = api.fine_tuning.jobs.retrieve(job.id)
    assert running.status == "running" and running.estimated_finish >= running.created_at
    paused = api.fine_tuning.jobs.pause(job.id)
    assert paused.status == "paused" and paused.estimated_finish is None
    event = wait_until(lambda: next((e for e in all_events(api, job.id) if e.message.startswith("Fine-tuning job paused")),
                                    None), what="the worker to pause")
    at = max(metrics_steps(api, job.id))
    assert at < 48, "the job finished before it could be paused"
    ckpts = api.fine_tuning.jobs.checkpoints.list(job.id).data
    assert ckpts[0].step_number == at and f"step {at}" in event.message
    assert api.fine_tuning.jobs.retrieve(job.id).status == "paused"

    assert api.fine_tuning.jobs.resume(job.id).status == "queued"
    job = wait_for(api, job.id, ("succeeded", "failed", "cancelled"), timeout=120)
    assert job.status == "succeeded", job.error
    messages = [e.message for e in all_events(api, job.id)]
    assert f"Resumed from step {at}" in " ".join(messages)
    rows = list(csv.DictReader(io.StringIO(base64.b64decode(api.files.content(job.result_files[0]).read()).decode())))
    assert [int(r["step"]) for r in rows] == list(range(1, 49))  # no step lost or repeated
    assert len(api.fine_tuning.jobs.checkpoints.list(job.id).data) == 3  # only the last three are kept


@pytest.mark.slow
def test_a_crash_in_training_fails_the_job_and_keeps_what_was_written(api, local_server, tmp_path):
    train = upload(api, tmp_path, "train.jsonl", chat_lines(12))
    job = api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train.id,
                                      hyperparameters={"n_epochs": 20, "batch_size": 1})
    wait_until(lambda: metrics_steps(api, job.id), timeout=90, what="the first training step")
    api.fine_tuning.jobs.pause(job.id)
    wait_until(lambda: any(e.message.startswith("Fine-tuning job paused") for e in all_events(api, job.id)),
               what="the worker to pause")
    [ckpt] = api.fine_tuning.jobs.checkpoints.list(job.id).data
    before = [e.id for e in all_events(api, job.id)]
    # Damage the checkpoint the job will resume from: the trainer raises while loading it.
    state = local_server.data_dir / "jobs" / job.id / "checkpoints" / f"step-{ckpt.step_number}" / "trainer_state.pt"
    state.write_bytes(b"not a checkpoint")
    api.fine_tuning.jobs.resume(job.id)
    job = wait_for(api, job.id, ("failed", "succeeded"), timeout=90)
    assert job.status == "failed" and job.error.code == "training_failed" and job.error.param is None
    assert job.error.message.startswith("Training failed: ") and job.finished_at and job.fine_tuned_model is None
    after = all_events(api, job.id)
    assert [e.id for e in after[:len(before)]] == before and after[-1].level == "error"
    assert [c.id for c in api.fine_tuning.jobs.checkpoints.list(job.id).data] == [ckpt.id]
    assert api.files.retrieve(train.id).id == train.id
