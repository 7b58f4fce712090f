"""The headers OpenAI puts on every response: `x-request-id` and `openai-processing-ms`.

The openai client reads `x-request-id` into `._request_id` (and into an error's
`.request_id`), which is what people log and quote in bug reports; it must be there on
errors too. A plain ASGI middleware rather than `@app.middleware("http")`: it adds the
headers to streamed responses without buffering them, and it sees an unexpected
exception before Starlette's outermost error handler would answer without our headers.
"""
from __future__ import annotations

import secrets
import time

from starlette.datastructures import MutableHeaders
from starlette.requests import Request

from ftutils.local.api import errors


def new_request_id() -> str:
    return "req_" + secrets.token_hex(16)  # OpenAI's shape: req_ + 32 hex digits


class RequestHeaders:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, request_id, started = time.perf_counter(), new_request_id(), False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                headers["x-request-id"] = request_id
                # Time to the first byte: for a stream, what the server spent before answering.
                headers["openai-processing-ms"] = str(round((time.perf_counter() - start) * 1000))
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        except Exception as exc:
            if started:  # mid-stream: nothing more can be said in this response
                raise
            response = await errors.unexpected(Request(scope), exc)
            await response(scope, receive, send_with_headers)


def install(app) -> None:
    app.add_middleware(RequestHeaders)
