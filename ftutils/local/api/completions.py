"""Chat completion requests and answers in OpenAI's shapes, around the inference engine.

A request's messages become what the chat template takes (roles, plain text), its sampling
options one `SamplingParams`; an answer becomes a ChatCompletion, or Server-Sent Events of
ChatCompletionChunks for a stream (errors after the first byte go in-band, as OpenAI sends them).
"""
from __future__ import annotations

import json

from ftutils.local.api import errors, schemas
from ftutils.local.inference.sampling import SamplingParams

ROLES = {"system", "developer", "user", "assistant", "tool"}
FINGERPRINT = "fp_ftutils_local"


def messages(raw: list[dict]) -> list[dict]:
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


def sampling_params(body: schemas.ChatCompletionRequest) -> SamplingParams:
    """The request's sampling options, OpenAI's defaults where it gives none."""
    return SamplingParams(max_tokens=body.max_completion_tokens or body.max_tokens,
                          temperature=1.0 if body.temperature is None else body.temperature,
                          top_p=1.0 if body.top_p is None else body.top_p, seed=body.seed, stop=body.stop or (),
                          n=body.n or 1, logprobs=bool(body.logprobs), top_logprobs=body.top_logprobs or 0,
                          response_format=body.response_format, logit_bias=body.logit_bias)


def check_max_tokens(context: int | None, body: schemas.ChatCompletionRequest) -> None:
    """OpenAI answers 400 when max_tokens exceeds what the model can produce (its `context`);
    so do we, before loading the model or tokenizing the prompt."""
    for param in ("max_completion_tokens", "max_tokens"):
        value = getattr(body, param)
        if context is not None and value is not None and value > context:
            raise errors.invalid(f"{param} is too large: {value}. This model supports at most {context} completion "
                                 f"tokens, whereas you provided {value}.", param, "invalid_value")


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


def completion(result, completion_id: str, created: int, model: str, logprobs: bool) -> dict:
    """A ChatCompletion from the engine's GenerationResult."""
    choices = []
    for index, choice in enumerate(result.choices):
        lp = _logprobs(choice.logprobs) if logprobs else None
        choices.append({"index": index, "finish_reason": choice.finish_reason,
                        "message": {"role": "assistant", "content": choice.text, "refusal": None, "annotations": []},
                        "logprobs": {"content": lp, "refusal": None} if logprobs else None})
    return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": choices, "usage": _usage(result.prompt_tokens, result.completion_tokens),
            "system_fingerprint": FINGERPRINT}


def sse(deltas, completion_id: str, created: int, model: str, include_usage: bool):
    """The stream's events, from the engine's StreamDeltas."""
    def event(delta: dict, finish_reason=None, logprobs=None, usage=None, choices=True) -> str:
        body = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model,
                "system_fingerprint": FINGERPRINT,
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
