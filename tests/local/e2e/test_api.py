"""The local backend's HTTP surface through the real `openai` client, on the session
server: files, auth, ids, errors, job creation and validation failures. Every response
is checked against OpenAI's OpenAPI spec as it arrives (tests.local.helpers.SpecRecorder).
No test here trains a model."""
from __future__ import annotations

import json

import httpx
import openai
import pytest

from tests.local.helpers import chat_lines, wait_for, write_jsonl


@pytest.fixture()
def train_file(api, tmp_path):
    return api.files.create(file=write_jsonl(tmp_path / "train.jsonl", chat_lines()).open("rb"), purpose="fine-tune")


def error_of(exc_info) -> dict:
    return exc_info.value.response.json()["error"]


def test_files_round_trip(api, local_server, tmp_path, recorder):
    path = write_jsonl(tmp_path / "greet.jsonl", chat_lines())
    first = api.files.create(file=path.open("rb"), purpose="fine-tune")
    second = api.files.create(file=("notes.txt", b"plain text"), purpose="user_data")
    assert first.id.startswith("file-") and first.object == "file" and first.filename == "greet.jsonl"
    assert first.bytes == path.stat().st_size and first.purpose == "fine-tune" and first.status == "processed"
    assert api.files.retrieve(first.id) == first
    assert api.files.content(first.id).content == path.read_bytes()

    newest = api.files.list(limit=1)
    assert [f.id for f in newest.data] == [second.id] and newest.has_more
    after = api.files.list(limit=1, after=second.id)
    assert [f.id for f in after.data] == [first.id]
    assert second.id not in [f.id for f in api.files.list(purpose="fine-tune").data]
    oldest_first = [f.id for f in api.files.list(order="asc").data]
    assert oldest_first.index(first.id) < oldest_first.index(second.id)

    deleted = api.files.delete(first.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (first.id, True, "file")
    assert not (local_server.data_dir / "files" / first.id).exists()
    with pytest.raises(openai.NotFoundError):
        api.files.retrieve(first.id)
    assert {p for _, p, _ in recorder.checked} >= {"/v1/files", f"/v1/files/{first.id}"}


def test_upload_rejects_bad_forms(api, local_server, tmp_path):
    before = set((local_server.data_dir / "files").iterdir())
    with pytest.raises(openai.BadRequestError) as exc:
        api.files.create(file=("data.csv", b"a,b\n"), purpose="fine-tune")
    assert error_of(exc)["param"] == "file" and error_of(exc)["code"] == "invalid_file_format"
    with pytest.raises(openai.BadRequestError) as exc:
        api.files.create(file=("x.jsonl", b"{}\n"), purpose="training")
    assert error_of(exc)["param"] == "purpose"
    raw = httpx.post(f"{local_server.base_url}/files", headers={"Authorization": f"Bearer {local_server.api_key}"},
                     files={"file": ("x.jsonl", b"{}\n")})
    assert raw.status_code == 400 and raw.json()["error"]["param"] == "purpose"
    assert set((local_server.data_dir / "files").iterdir()) == before  # nothing left behind


@pytest.mark.parametrize("headers, code", [({}, None), ({"Authorization": "Bearer not-the-key"}, "invalid_api_key"),
                                           ({"Authorization": "Basic abc"}, None)])
def test_every_v1_route_needs_the_key(local_server, headers, code):
    for method, path in [("GET", "/files"), ("GET", "/models"), ("GET", "/fine_tuning/jobs"),
                         ("POST", "/chat/completions"), ("GET", "/fine_tuning/jobs/ftjob-abc/events")]:
        response = httpx.request(method, local_server.base_url + path, headers=headers)
        assert response.status_code == 401, (method, path)
        body = response.json()
        assert set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["type"] == "invalid_request_error" and body["error"]["code"] == code
        assert "not-the-key" not in response.text and local_server.api_key not in response.text
    assert httpx.get(local_server.base_url.removesuffix("/v1") + "/health").status_code == 200


def test_wrong_key_through_the_client(local_server):
    bad = openai.OpenAI(base_url=local_server.base_url, api_key="sk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as exc:
        bad.models.list()
    assert error_of(exc)["code"] == "invalid_api_key"


@pytest.mark.parametrize("path", ["/files/..%2F..%2Fapi_key", "/files/%2e%2e", "/files/..%2fdb.sqlite/content",
                                  "/files/%2Fetc%2Fpasswd", "/files/file-..%2F..%2Fapi_key/content",
                                  "/fine_tuning/jobs/..%2F..%2Fapi_key", "/fine_tuning/jobs/ftjob-%2e%2e/events",
                                  "/files/file-abc%00/content"])
def test_traversal_ids_are_plain_404s(local_server, path):
    response = httpx.get(local_server.base_url + path, headers={"Authorization": f"Bearer {local_server.api_key}"})
    assert response.status_code in (400, 404)
    body = response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert local_server.api_key not in response.text


def test_traversal_through_the_client(api):
    for bad in ("../api_key", "file-../../db.sqlite", "/etc/passwd"):
        with pytest.raises(openai.NotFoundError):
            api.files.content(bad)
    with pytest.raises(openai.NotFoundError):
        api.fine_tuning.jobs.retrieve("../../api_key")


def test_unknown_models(api, train_file):
    with pytest.raises(openai.NotFoundError) as exc:
        api.models.retrieve("gpt-nonexistent")
    assert error_of(exc)["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError) as exc:
        api.chat.completions.create(model="ft:tiny-smollm2:local::deadbeef", messages=[{"role": "user", "content": "hi"}])
    assert error_of(exc)["code"] == "model_not_found" and error_of(exc)["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        api.models.delete("ft:tiny-smollm2:local::deadbeef")
    with pytest.raises(openai.PermissionDeniedError):
        api.models.delete("tiny-smollm2")
    with pytest.raises(openai.BadRequestError) as exc:
        api.fine_tuning.jobs.create(model="gpt-nonexistent", training_file=train_file.id)
    assert error_of(exc)["param"] == "model"
    ids = [m.id for m in api.models.list().data]
    assert {"tiny-smollm2", "smollm2-135m-instruct"} <= set(ids)


def test_models_carry_shutdown_date_as_openais_do(api, local_server):
    # OpenAI's Model object: shutdown_date is a YYYY-MM-DD date, or null when none is announced
    # (the spec's examples send the null); the openai client reads it into Model.shutdown_date.
    listed = {m.id: m for m in api.models.list().data}
    assert listed["gpt-4o-mini-2024-07-18"].shutdown_date == "2027-01-14"
    assert listed["gpt-4.1-nano-2025-04-14"].shutdown_date == "2026-10-23"
    assert listed["tiny-smollm2"].shutdown_date is None and listed["smollm2-135m-instruct"].shutdown_date is None
    assert api.models.retrieve("gpt-4o-mini").shutdown_date == "2027-01-14"
    raw = httpx.get(f"{local_server.base_url}/models", headers={"Authorization": f"Bearer {local_server.api_key}"})
    sent = {m["id"]: m for m in raw.json()["data"]}
    assert "shutdown_date" in sent["tiny-smollm2"] and sent["tiny-smollm2"]["shutdown_date"] is None


@pytest.mark.parametrize("name, value", [("n_epochs", 0), ("n_epochs", 51), ("batch_size", 0), ("batch_size", 257),
                                         ("learning_rate_multiplier", 0), ("learning_rate_multiplier", -1),
                                         ("n_epochs", "3"), ("batch_size", 2.5)])
def test_invalid_hyperparameters(api, train_file, name, value):
    before = len(api.fine_tuning.jobs.list(limit=1000).data)
    with pytest.raises(openai.BadRequestError) as exc:
        api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train_file.id, hyperparameters={name: value})
    err = error_of(exc)
    assert err["type"] == "invalid_request_error" and err["param"] == f"hyperparameters.{name}"
    assert name in err["message"]
    with pytest.raises(openai.BadRequestError) as exc:
        api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train_file.id,
                                    method={"type": "supervised", "supervised": {"hyperparameters": {name: value}}})
    assert error_of(exc)["param"] == f"method.supervised.hyperparameters.{name}"
    assert len(api.fine_tuning.jobs.list(limit=1000).data) == before  # no job was created


@pytest.mark.parametrize("method", ["reinforcement"])  # dpo trains: tests/local/test_dpo.py
def test_unsupported_methods_are_clear_400s(api, train_file, method):
    with pytest.raises(openai.BadRequestError) as exc:
        api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train_file.id, method={"type": method})
    assert error_of(exc)["param"] == "method.type" and method in error_of(exc)["message"]


def test_job_requests_that_fail_validation(api, local_server, train_file):
    with pytest.raises(openai.BadRequestError) as exc:
        api.fine_tuning.jobs.create(model="tiny-smollm2", training_file="file-doesnotexist")
    assert error_of(exc)["param"] == "training_file"
    other = api.files.create(file=("n.txt", b"x"), purpose="user_data")
    with pytest.raises(openai.BadRequestError) as exc:
        api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train_file.id, validation_file=other.id)
    assert error_of(exc)["param"] == "validation_file" and error_of(exc)["code"] == "invalid_file_purpose"
    with pytest.raises(openai.BadRequestError) as exc:
        api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=train_file.id, suffix="a:b")
    assert error_of(exc)["param"] == "suffix"
    headers = {"Authorization": f"Bearer {local_server.api_key}"}
    missing = httpx.post(f"{local_server.base_url}/fine_tuning/jobs", headers=headers, json={"model": "tiny-smollm2"})
    assert missing.status_code == 400
    assert missing.json()["error"] == {"message": "Missing required parameter: 'training_file'.",
                                       "type": "invalid_request_error", "param": "training_file",
                                       "code": "missing_required_parameter"}
    extra = httpx.post(f"{local_server.base_url}/fine_tuning/jobs", headers=headers,
                       json={"model": "tiny-smollm2", "training_file": train_file.id, "epochs": 3})
    assert extra.status_code == 400 and extra.json()["error"]["param"] == "epochs"
    garbage = httpx.post(f"{local_server.base_url}/fine_tuning/jobs", headers={**headers, "content-type": "application/json"},
                         content=b"{not json")
    assert garbage.status_code == 400 and garbage.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.parametrize("which, line, code, field", [("training_file", 3, "invalid_json", None),
                                                      ("validation_file", 2, "unknown_role", "messages[0].role")])
def test_bad_file_fails_the_job_at_validation(api, tmp_path, which, line, code, field):
    rows = chat_lines()
    bad = rows if which == "training_file" else chat_lines(4)
    if code == "invalid_json":
        bad[line - 1] = '{"messages": [ broken'
    else:
        bad[line - 1] = {"messages": [{"role": "robot", "content": "x"}, {"role": "assistant", "content": "y"}]}
    bad_file = api.files.create(file=write_jsonl(tmp_path / "bad.jsonl", bad).open("rb"), purpose="fine-tune")
    good_file = api.files.create(file=write_jsonl(tmp_path / "good.jsonl", rows).open("rb"), purpose="fine-tune")
    kwargs = {"training_file": bad_file.id} if which == "training_file" else \
        {"training_file": good_file.id, "validation_file": bad_file.id}
    job = api.fine_tuning.jobs.create(model="tiny-smollm2", **kwargs)
    assert job.status == "validating_files" and job.error is None and job.result_files == []
    job = wait_for(api, job.id, ("failed", "succeeded", "cancelled"), timeout=60)
    assert job.status == "failed" and job.fine_tuned_model is None and job.finished_at
    assert job.error.code == code and job.error.param == which
    assert job.error.message.startswith(f"bad.jsonl: line {line}")
    if field:
        assert f"field {field}" in job.error.message
    events = api.fine_tuning.jobs.list_events(job.id).data
    assert events[0].level == "error" and events[0].message == job.error.message
    assert not any(e.type == "metrics" for e in events)
    assert api.files.retrieve(bad_file.id).id == bad_file.id  # the file itself is untouched


def test_too_few_examples(api, tmp_path):
    small = api.files.create(file=write_jsonl(tmp_path / "small.jsonl", chat_lines(3)).open("rb"), purpose="fine-tune")
    job = wait_for(api, api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=small.id).id,
                   ("failed", "succeeded"), timeout=60)
    assert job.error.code == "too_few_examples" and job.error.param == "training_file"
    assert job.error.message.startswith("small.jsonl: ")


def test_job_listing_pagination_and_metadata(api, tmp_path):
    bad = api.files.create(file=write_jsonl(tmp_path / "bad.jsonl", ["nope"] * 3).open("rb"), purpose="fine-tune")
    tag = tmp_path.name
    a = api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=bad.id, metadata={"run": tag, "kind": "a"})
    b = api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=bad.id, metadata={"run": tag, "kind": "b"})
    assert a.metadata == {"run": tag, "kind": "a"} and a.seed >= 0 and a.organization_id == "local"
    assert a.method.type == "supervised" and a.hyperparameters.n_epochs == "auto"
    mine = api.fine_tuning.jobs.list(metadata={"run": tag})
    assert [j.id for j in mine.data] == [b.id, a.id] and not mine.has_more
    assert [j.id for j in api.fine_tuning.jobs.list(metadata={"run": tag, "kind": "a"}).data] == [a.id]
    page = api.fine_tuning.jobs.list(limit=1, metadata={"run": tag})
    assert [j.id for j in page.data] == [b.id] and page.has_more
    assert [j.id for j in api.fine_tuning.jobs.list(after=b.id, limit=1, metadata={"run": tag}).data] == [a.id]
    for job in (a, b):
        wait_for(api, job.id, ("failed",), timeout=60)
    events = api.fine_tuning.jobs.list_events(a.id, limit=2)
    assert len(events.data) == 2 and events.has_more
    rest = api.fine_tuning.jobs.list_events(a.id, after=events.data[-1].id, limit=100)
    all_ids = [e.id for e in events.data + rest.data]
    assert len(set(all_ids)) == len(all_ids) and rest.data[-1].message.startswith("Created fine-tuning job")


def test_cancel_and_state_errors(api, tmp_path):
    bad = api.files.create(file=write_jsonl(tmp_path / "bad.jsonl", ["nope"] * 3).open("rb"), purpose="fine-tune")
    job = wait_for(api, api.fine_tuning.jobs.create(model="tiny-smollm2", training_file=bad.id).id, ("failed",))
    for action in (api.fine_tuning.jobs.cancel, api.fine_tuning.jobs.pause, api.fine_tuning.jobs.resume):
        with pytest.raises(openai.BadRequestError) as exc:
            action(job.id)
        assert error_of(exc)["code"] == "invalid_state"
    with pytest.raises(openai.NotFoundError):
        api.fine_tuning.jobs.cancel("ftjob-doesnotexist")
    with pytest.raises(openai.NotFoundError):
        api.fine_tuning.jobs.checkpoints.list("ftjob-doesnotexist")
    empty = api.fine_tuning.jobs.checkpoints.list(job.id)
    assert empty.data == [] and not empty.has_more


def test_health_and_server_json(local_server):
    info = json.loads((local_server.data_dir / "server.json").read_text())
    assert info == {"url": local_server.base_url, "pid": local_server.process.pid}
    assert httpx.get(local_server.base_url.removesuffix("/v1") + "/health").json()["worker"] == "running"


@pytest.mark.parametrize("body, param", [({"messages": []}, "messages"), ({"max_tokens": 0}, "max_tokens"),
                                         ({"messages": ["hi"]}, "messages[0]"), ({"tools": []}, "tools"),
                                         ({"messages": [{"role": "robot", "content": "x"}]}, "messages[0].role"),
                                         ({"n": 0}, "n"), ({"top_p": 0}, "top_p")])
def test_chat_request_errors_name_the_param(local_server, body, param):
    full = {"model": "tiny-smollm2", "messages": [{"role": "user", "content": "hi"}], **body}
    response = httpx.post(f"{local_server.base_url}/chat/completions", json=full,
                          headers={"Authorization": f"Bearer {local_server.api_key}"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and error["type"] == "invalid_request_error"


def test_malformed_multipart_is_a_400_and_leaves_nothing(local_server):
    before = set((local_server.data_dir / "files").iterdir())
    body = b"--XYZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.jsonl\"\r\n\r\n{}\r\n--XYZ\r\nbroken"
    for content_type in ("multipart/form-data; boundary=XYZ", "application/json"):
        response = httpx.post(f"{local_server.base_url}/files", content=body,
                              headers={"Authorization": f"Bearer {local_server.api_key}", "content-type": content_type})
        assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert set((local_server.data_dir / "files").iterdir()) == before
