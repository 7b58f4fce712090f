"""Chat completions from base, fine-tuned and checkpoint models, whole or streamed (SSE).

Generation is CPU-bound and the engine batches concurrent requests in its own thread, so
both paths run in the thread pool (a sync route; a sync iterator for streaming) and the
event loop keeps answering other requests while a completion is being written.

What can be refused from the headers or cheap bounds is refused before any work: a body
larger than MAX_BODY_BYTES (from Content-Length, before it is read), and a max_tokens
above what the model can produce.
"""
from __future__ import annotations

import json
import secrets
import threading
import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from fastapi.routing import APIRoute

from ftutils.local import errors, schemas
from ftutils.local.routers.models import resolve

ROLES = {"system", "developer", "user", "assistant", "tool"}
# An 8192-token context is ~40 KB of text; 4 MiB leaves room for any honest request while a
# 20 MB body is answered at once instead of being read and parsed (seconds, +1.5 GB).
MAX_BODY_BYTES = 4 * 2**20


def _too_large() -> JSONResponse:
    error = errors.APIError(413, f"The request body is too large: the limit for chat completions on this server "
                                 f"is {MAX_BODY_BYTES} bytes.", param="messages", code="request_too_large")
    return JSONResponse(error.body(), status_code=413, headers={"Connection": "close"})


class BoundedBodyRoute(APIRoute):
    """Refuses a body over MAX_BODY_BYTES before FastAPI reads and parses it: from
    Content-Length when there is one, else while reading a chunked body."""

    def get_route_handler(self):
        handler = super().get_route_handler()

        async def bounded(request: Request):
            declared = request.headers.get("content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
                return _too_large()
            if declared is None:
                size, chunks = 0, []
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > MAX_BODY_BYTES:
                        return _too_large()
                    chunks.append(chunk)
                request._body = b"".join(chunks)  # what request.body() returns from now on
            return await handler(request)

        return bounded


router = APIRouter(prefix="/chat", route_class=BoundedBodyRoute)


def _messages(raw: list[dict]) -> list[dict]:
    """Messages as the chat template wants them: role and plain-text content."""
    out = []
    for i, message in enumerate(raw):
        role, content = message.get("role"), message.get("content")
        if role not in ROLES:
            raise errors.invalid(f"Invalid value for 'messages[{i}].role': {role!r} is not one of {sorted(ROLES)}.",
                                 f"messages[{i}].role", "invalid_value")
        if isinstance(content, list):
            parts = []
            for j, part in enumerate(content):
                if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                    raise errors.invalid("Only text content parts are supported by the local backend.",
                                         f"messages[{i}].content[{j}]", "invalid_value")
                parts.append(part["text"])
            content = "".join(parts)
        if content is None and role == "assistant":
            content = ""
        if not isinstance(content, str):
            raise errors.invalid(f"Invalid value for 'messages[{i}].content': expected a string or text parts.",
                                 f"messages[{i}].content", "invalid_value")
        out.append({"role": "system" if role == "developer" else role, "content": content})
    return out


def _field(item, name, index):
    return item[index] if isinstance(item, (tuple, list)) else getattr(item, name)


def _logprobs(tokens) -> list[dict] | None:
    if tokens is None:
        return None
    out = []
    for t in tokens:
        top = [{"token": _field(x, "token", 0), "logprob": float(_field(x, "logprob", 1)),
                "bytes": list(_field(x, "bytes", 2)) if _field(x, "bytes", 2) is not None else None}
               for x in (t.top_logprobs or [])]
        out.append({"token": t.token, "logprob": float(t.logprob),
                    "bytes": list(t.bytes) if t.bytes is not None else None, "top_logprobs": top})
    return out


def _usage(prompt: int, completion: int) -> dict:
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


def _check_max_tokens(state, base: str, body) -> None:
    """OpenAI answers 400 when max_tokens exceeds what the model can produce; so do we,
    before loading the model or tokenizing the prompt."""
    from ftutils.local.base_models import list_base_models

    context = next((m.context_length for m in list_base_models(state.settings.data_dir, state.settings.extra_models)
                    if m.id == base), None)
    for param in ("max_completion_tokens", "max_tokens"):
        value = getattr(body, param)
        if context is not None and value is not None and value > context:
            raise errors.invalid(f"{param} is too large: {value}. This model supports at most {context} completion "
                                 f"tokens, whereas you provided {value}.", param, "invalid_value")


_engine_lock = threading.Lock()


def _engine(state):
    with _engine_lock:  # two first requests at once must not load the models twice
        if state.engine is None:
            from ftutils.local.inference import InferenceEngine
            state.engine = InferenceEngine(state.settings.data_dir, state.settings.extra_models)
    return state.engine


@router.post("/completions")
def create_chat_completion(request: Request, body: schemas.ChatCompletionRequest):
    state = request.app.state
    base, adapter = resolve(state, body.model)
    messages = _messages(body.messages)
    if body.top_logprobs and not body.logprobs:
        raise errors.invalid("'top_logprobs' requires 'logprobs' to be true.", "top_logprobs", "invalid_value")
    stop = [body.stop] if isinstance(body.stop, str) else body.stop
    if stop is not None and len(stop) > 4:
        raise errors.invalid("'stop' takes at most 4 sequences.", "stop", "invalid_value")
    _check_max_tokens(state, base, body)
    options = dict(max_tokens=body.max_completion_tokens or body.max_tokens,
                   temperature=1.0 if body.temperature is None else body.temperature,
                   top_p=1.0 if body.top_p is None else body.top_p, seed=body.seed, stop=stop,
                   logprobs=bool(body.logprobs), top_logprobs=body.top_logprobs or 0,
                   response_format=body.response_format, logit_bias=body.logit_bias)
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    engine = _engine(state)
    from ftutils.local.inference import InferenceError
    from ftutils.local.structured import ResponseFormatError
    try:
        if body.stream:
            include_usage = bool((body.stream_options or {}).get("include_usage"))
            # stream() loads the model and checks the prompt before returning, so errors
            # still get a proper status; after the first byte they can only go in-band.
            deltas = engine.stream(base, adapter, messages, n=body.n or 1, **options)
            return StreamingResponse(_sse(deltas, completion_id, created, body.model, include_usage),
                                     media_type="text/event-stream")
        result = engine.generate(base, adapter, messages, n=body.n or 1, **options)
    except (InferenceError, ResponseFormatError) as exc:
        raise errors.invalid(str(exc), exc.param, exc.code) from None
    choices = []
    for index, choice in enumerate(result.choices):
        lp = _logprobs(choice.logprobs) if body.logprobs else None
        choices.append({"index": index, "finish_reason": choice.finish_reason,
                        "message": {"role": "assistant", "content": choice.text, "refusal": None, "annotations": []},
                        "logprobs": {"content": lp, "refusal": None} if body.logprobs else None})
    return {"id": completion_id, "object": "chat.completion", "created": created, "model": body.model,
            "choices": choices, "usage": _usage(result.prompt_tokens, result.completion_tokens),
            "system_fingerprint": "fp_ftutils_local"}


def _sse(deltas, completion_id, created, model, include_usage):
    def event(delta: dict, finish_reason=None, logprobs=None, usage=None, choices=True) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": "fp_ftutils_local",
                "choices": [{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}]
                if choices else []}
        if include_usage:
            body["usage"] = usage
        return f"data: {json.dumps(body)}\n\n"

    yield event({"role": "assistant", "content": "", "refusal": None})
    usage = _usage(0, 0)
    try:
        for delta in deltas:
            lp = _logprobs(delta.logprobs)
            if delta.text or lp:
                yield event({"content": delta.text}, logprobs={"content": lp, "refusal": None} if lp else None)
            if delta.finish_reason is not None:
                usage = _usage(delta.prompt_tokens or 0, delta.completion_tokens or 0)
                yield event({}, finish_reason=delta.finish_reason)
    except Exception as exc:  # the status line is sent already: report in-band, as OpenAI does
        message = f"Generation failed: {type(exc).__name__}: {exc}"
        yield f"data: {json.dumps(errors.APIError(500, message, type='server_error').body())}\n\n"
        return
    if include_usage:
        yield event({}, usage=usage, choices=False)
    yield "data: [DONE]\n\n"
