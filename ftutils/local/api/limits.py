"""A request body too large to be honest is refused before it is read and parsed.

An 8192-token context is ~40 KB of text; 4 MiB leaves room for any honest chat request while
a 20 MB body is answered at once instead of being read and parsed (seconds, +1.5 GB). A plain
ASGI middleware: it refuses from Content-Length when there is one, and otherwise reads a
chunked body here, up to the limit, and hands the route the bytes it read.
"""
from __future__ import annotations

from fastapi.responses import JSONResponse

from ftutils.local.api import errors

MAX_BODY_BYTES = 4 * 2**20
LIMITED = {("POST", "/v1/chat/completions")}


def too_large() -> JSONResponse:
    error = errors.APIError(413, f"The request body is too large: the limit for chat completions on this server "
                                 f"is {MAX_BODY_BYTES} bytes.", param="messages", code="request_too_large")
    return JSONResponse(error.body(), status_code=413, headers={"Connection": "close"})


class BodyLimit:
    def __init__(self, app, limit: int = MAX_BODY_BYTES):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or (scope["method"], scope["path"]) not in LIMITED:
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit() or int(declared) > self.limit:
                return await too_large()(scope, receive, send)
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away: the route will see it too
                return await self.app(scope, _replay([message], receive), send)
            size += len(message.get("body", b""))
            if size > self.limit:
                return await too_large()(scope, receive, send)
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = {"type": "http.request", "body": b"".join(chunks), "more_body": False}
        return await self.app(scope, _replay([body], receive), send)


def _replay(messages: list, receive):
    """`receive` that first gives back what was read already."""
    async def replayed():
        return messages.pop(0) if messages else await receive()
    return replayed


def install(app) -> None:
    app.add_middleware(BodyLimit)
