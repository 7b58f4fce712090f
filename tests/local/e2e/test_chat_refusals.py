"""Chat completions refuse what they must at once, in OpenAI's error shape, over the real
server and the real openai client / httpx: an out-of-range seed, a max_tokens above what
the model can produce, a body too large to read. (How fast is not asserted here; that each
answers at all, with a bounded client timeout, is.)"""
from __future__ import annotations

import json
import socket

import httpx
import openai
import pytest

from ftutils.local.api.limits import MAX_BODY_BYTES
from ftutils.local.models.catalog import BASE_MODELS

TINY = "tiny-smollm2"

HELLO = [{"role": "user", "content": "Say hi."}]
CONTEXT = BASE_MODELS[TINY].context_length


@pytest.fixture()
def quick(local_server):
    # A client that gives up after a few seconds: a refusal that needs generating 8k tokens
    # or parsing 20 MB first fails here instead of passing slowly.
    return local_server.client(max_retries=0, timeout=20)


@pytest.fixture()
def patient(local_server):
    return local_server.client(max_retries=0, timeout=600)  # the first answer loads the model


def refusal(quick, **kwargs) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        quick.chat.completions.create(model=TINY, messages=HELLO, **kwargs)
    return info.value


@pytest.mark.parametrize("seed", [2**63, -2**63 - 1, 10**30])
def test_out_of_range_seed_is_400_naming_seed(quick, seed):
    err = refusal(quick, seed=seed, max_tokens=1)
    assert err.status_code == 400
    assert err.body["param"] == "seed" and err.body["code"] == "invalid_value" and err.body["type"] == "invalid_request_error"


@pytest.mark.parametrize("seed", [2**63 - 1, -2**63, 0])
def test_seed_at_the_64_bit_edges_is_served(patient, seed):
    done = patient.chat.completions.create(model=TINY, messages=HELLO, seed=seed, max_tokens=1)
    assert done.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("param", ["max_tokens", "max_completion_tokens"])
@pytest.mark.parametrize("value", [CONTEXT + 1, 10**9])
def test_max_tokens_beyond_the_model_is_400_at_once(quick, param, value):
    err = refusal(quick, **{param: value})
    assert err.status_code == 400
    assert err.body["param"] == param and err.body["code"] == "invalid_value"
    assert str(CONTEXT) in err.body["message"]


def test_max_tokens_the_model_can_produce_is_served(patient):
    done = patient.chat.completions.create(model=TINY, messages=HELLO, max_tokens=CONTEXT, temperature=0, seed=1,
                                         stop=["\n", " "])
    assert done.choices[0].finish_reason in ("stop", "length")


def test_huge_body_is_413_from_content_length_before_it_is_read(local_server):
    big = json.dumps({"model": TINY, "messages": [{"role": "user", "content": "x" * (20 * 2**20)}]}).encode()
    headers = {"Authorization": f"Bearer {local_server.api_key}", "Content-Type": "application/json"}
    url = httpx.URL(local_server.base_url)
    # Only the headers (and a first byte) are sent; a server that waited for the body would time out here.
    with socket.create_connection((url.host, url.port), timeout=20) as sock:
        sock.sendall((f"POST {url.path}/chat/completions HTTP/1.1\r\nHost: {url.host}\r\n"
                      f"Authorization: Bearer {local_server.api_key}\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {len(big)}\r\n\r\n{{").encode())
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413")
    assert json.loads(payload)["error"]["code"] == "request_too_large"
    with httpx.Client(timeout=20) as http:
        # the same through the openai client, which sends the whole body
        client = local_server.client(max_retries=0, timeout=60)
        with pytest.raises(openai.APIStatusError) as info:
            client.chat.completions.create(model=TINY, messages=[{"role": "user", "content": "x" * (20 * 2**20)}])
        assert info.value.status_code == 413 and info.value.body["code"] == "request_too_large"
        # chunked, no Content-Length: refused once the limit is crossed
        chunks = (b"x" * 2**20 for _ in range(MAX_BODY_BYTES // 2**20 + 2))
        chunked = http.post(f"{local_server.base_url}/chat/completions", headers=headers, content=chunks)
        assert chunked.status_code == 413
        # and the server is fine afterwards
        ok = http.post(f"{local_server.base_url}/chat/completions", headers=headers,
                       json={"model": TINY, "messages": HELLO, "max_tokens": 1}, timeout=600)
        assert ok.status_code == 200, ok.text
