"""Helpers for the local backend's tests: training files, waiting on jobs, and checking
every response against OpenAI's published OpenAPI spec (`tests/spec/openai-openapi.yaml`).
"""
from __future__ import annotations

import functools
import json
import os
import time
from pathlib import Path

import httpx

from tests.conftest import ROOT

SPEC = ROOT / "tests" / "spec" / "openai-openapi.yaml"  # vendored with its license (tests/spec/README.md)
SPEC_HOST = "https://api.openai.com"  # the spec's server; paths keep their /v1 prefix
NAMES = ["Ann", "Bob", "Cid", "Dee", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jon", "Kim", "Lou"]


def chat_lines(n: int = 12) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"Greet {NAMES[i % len(NAMES)]}"},
                          {"role": "assistant", "content": f"Hello {NAMES[i % len(NAMES)]}!"}]} for i in range(n)]


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def wait_for(client, job_id: str, statuses: tuple[str, ...], timeout: float = 120, poll: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in statuses:
            return job
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job_id} still {job.status} after {timeout}s, wanted {statuses}")
        time.sleep(poll)


def wait_until(predicate, timeout: float = 60, poll: float = 0.1, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(poll)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def _nullable_to_31(node):
    """The spec is OpenAPI 3.1 but still uses 3.0's `nullable: true` in places (e.g. the
    stream chunk's `finish_reason`); a 3.1 validator ignores it, so rewrite it the 3.1 way.
    Likewise 3.0's boolean `exclusiveMinimum: true` (DPO's beta), which 3.1 reads as the
    number 1: it becomes `exclusiveMinimum: <minimum>`."""
    if isinstance(node, dict):
        if node.get("exclusiveMinimum") is True and "minimum" in node:
            node["exclusiveMinimum"] = node.pop("minimum")
        if node.pop("nullable", False):
            if "type" in node:
                node["type"] = [node["type"], "null"] if isinstance(node["type"], str) else [*node["type"], "null"]
            if "enum" in node:
                node["enum"] = [*node["enum"], None]
            if "$ref" in node or "allOf" in node or "oneOf" in node:
                inner = {k: node.pop(k) for k in ("$ref", "allOf", "oneOf") if k in node}
                node["anyOf"] = [inner, {"type": "null"}]
        for value in node.values():
            _nullable_to_31(value)
    elif isinstance(node, list):
        for value in node:
            _nullable_to_31(value)
    return node


@functools.lru_cache(maxsize=1)
def openapi():
    # The spec ships in the repository (tests/spec/): missing means a broken checkout, not a reason to skip.
    assert SPEC.exists(), f"OpenAI's spec is not at {SPEC}; it is part of the repository"
    import yaml
    from openapi_core import Config, OpenAPI

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    spec = _nullable_to_31(yaml.load(SPEC.read_text(), Loader=loader))
    # The published spec fails its own meta-validation (duplicate `required` entries), so skip that step.
    return OpenAPI.from_dict(spec, config=Config(spec_validator_cls=None))


def validate_component(name: str, value) -> None:
    from openapi_core.validation.schemas import oas31_schema_validators_factory

    api = openapi()
    oas31_schema_validators_factory.create(api.spec, api.spec / "components" / "schemas" / name).validate(value)


class SpecRecorder:
    """httpx response hook: every JSON response is checked against the spec as it arrives."""

    def __init__(self):
        self.checked: list[tuple[str, str, int]] = []

    def __call__(self, response: httpx.Response) -> None:
        from openapi_core.testing import MockRequest, MockResponse

        request = response.request
        if "text/event-stream" in response.headers.get("content-type", ""):
            return  # chunks are checked one by one by the streaming test
        response.read()
        if response.status_code >= 400:
            body = response.json()
            validate_component("ErrorResponse", body)
            assert set(body["error"]) == {"message", "type", "param", "code"}, body
        elif response.headers.get("content-type", "").startswith("application/json"):
            data = response.content
            body = json.loads(data)
            if isinstance(body, dict) and body.get("status") == "paused":
                # The spec's FineTuningJob enum lacks "paused", though its own pause example returns it.
                data = json.dumps({**body, "status": "queued"}).encode()
            openapi().validate_response(
                MockRequest(SPEC_HOST, request.method.lower(), request.url.path,
                            args=dict(request.url.params), content_type=request.headers.get("content-type")),
                MockResponse(data, status_code=response.status_code, content_type="application/json"))
        self.checked.append((request.method, request.url.path, response.status_code))


def checked_client(server, recorder: SpecRecorder, **kwargs):
    import openai

    http = httpx.Client(event_hooks={"response": [recorder]}, timeout=120)
    return openai.OpenAI(base_url=server.base_url, api_key=server.api_key, http_client=http, max_retries=0, **kwargs)


def warm_model_cache(shared_dir: Path, data_dir: Path) -> None:
    """Give a fresh data dir the converted base-model files another one already has.

    The first load in a data dir converts the tokenizer out of the GGUF (~15 s on a busy
    CPU); a test about restarts need not pay that again. The cache is written once and
    never changed, so hard links are safe and instant. A model is still really loaded."""
    import os
    import shutil

    from ftutils.local.models.loading import load_base

    load_base("tiny-smollm2", shared_dir)  # converts once per session (file-locked), else a no-op
    for folder in (shared_dir / "models").iterdir():
        if folder.is_dir() and not folder.name.startswith("."):
            shutil.copytree(folder, data_dir / "models" / folder.name, copy_function=os.link, dirs_exist_ok=True)


def tiny_lora(ml_data_dir, std: float, r: int = 8, alpha: int = 16):
    """(tiny-smollm2 with a LoRA adapter on every linear layer, its tokenizer); the adapter's B
    drawn from N(0, std) instead of peft's zeros, so it changes outputs and gradients."""
    import torch
    from peft import LoraConfig, get_peft_model

    from ftutils.local.models import loading

    model, tokenizer = loading.load_base("tiny-smollm2", ml_data_dir)
    torch.manual_seed(0)
    model = get_peft_model(model, LoraConfig(r=r, lora_alpha=alpha, target_modules="all-linear", task_type="CAUSAL_LM"))
    for name, p in model.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(p, std=std)
    return model, tokenizer


def health(server) -> dict:
    return httpx.get(server.base_url.removesuffix("/v1") + "/health", timeout=5).json()


def pid_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    # A zombie child of ours still answers kill(0); it is dead all the same.
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[1].startswith("Z")
    except OSError:
        return True
