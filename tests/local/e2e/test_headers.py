"""OpenAI's response headers on every response (errors and streams included), and OpenAI's
own parameters that the local backend does not implement refused by name."""
from __future__ import annotations

import re

import httpx
import openai
import pytest

REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")
MESSAGES = [{"role": "user", "content": "Hi"}]


def assert_openai_headers(headers) -> str:
    assert REQUEST_ID.match(headers["x-request-id"]), headers.get("x-request-id")
    assert headers["openai-processing-ms"].isdigit()
    return headers["x-request-id"]


def test_the_client_sees_a_request_id_on_every_call(api):
    first, second = api.models.retrieve("tiny-smollm2"), api.models.retrieve("tiny-smollm2")
    assert REQUEST_ID.match(first._request_id) and first._request_id != second._request_id
    raw = api.models.with_raw_response.retrieve("tiny-smollm2")
    assert raw.request_id == assert_openai_headers(raw.headers)


def test_errors_carry_them_too(api, local_server):
    with pytest.raises(openai.NotFoundError) as exc:
        api.models.retrieve("no-such-model")
    assert REQUEST_ID.match(exc.value.request_id)
    with pytest.raises(openai.BadRequestError) as exc:
        api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, temperature=5)
    assert REQUEST_ID.match(exc.value.request_id)
    root = local_server.base_url.removesuffix("/v1")
    for response in (httpx.get(f"{local_server.base_url}/models"),          # 401: no key
                     httpx.get(f"{local_server.base_url}/nowhere", headers={"Authorization": "Bearer x"}),
                     httpx.get(f"{root}/health")):
        assert_openai_headers(response.headers)


def test_a_stream_has_them_in_its_first_bytes(api):
    raw = api.chat.completions.with_raw_response.create(model="tiny-smollm2", messages=MESSAGES, max_tokens=2,
                                                        stream=True)
    assert_openai_headers(raw.headers)
    assert [chunk.object for chunk in raw.parse()][0] == "chat.completion.chunk"


def test_an_unexpected_server_error_still_has_them(tmp_path):
    from fastapi.testclient import TestClient

    from ftutils.local.api.app import create_app
    from ftutils.local.settings import Settings

    app = create_app(Settings.load(tmp_path, run_worker=False))

    @app.get("/boom")
    def boom():
        raise RuntimeError("a bug")

    response = TestClient(app, raise_server_exceptions=False).get("/boom")
    assert response.status_code == 500 and response.json()["error"]["type"] == "server_error"
    assert_openai_headers(response.headers)


@pytest.mark.parametrize("param, value", [
    ("tools", [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]),
    ("tool_choice", "auto"),
    ("parallel_tool_calls", False),
    ("functions", [{"name": "f", "parameters": {"type": "object"}}]),
    ("function_call", "auto"),
    ("audio", {"voice": "alloy", "format": "wav"}),
])
def test_openai_params_we_do_not_implement_are_named(api, param, value):
    with pytest.raises(openai.BadRequestError) as exc:
        api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, **{param: value})
    error = exc.value.response.json()["error"]
    assert (error["code"], error["param"]) == ("unsupported_parameter", param)
    assert f"'{param}'" in error["message"] and "not supported" in error["message"]


def test_a_misspelt_param_is_not_called_unsupported(api):
    with pytest.raises(openai.BadRequestError) as exc:
        api.chat.completions.create(model="tiny-smollm2", messages=MESSAGES, extra_body={"temprature": 0})
    error = exc.value.response.json()["error"]
    assert (error["code"], error["param"]) == ("unknown_parameter", "temprature")
    assert error["message"] == "Unrecognized request argument supplied: temprature"
