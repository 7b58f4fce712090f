"""Errors in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`, always.

FastAPI's own handlers answer 422 with `{"detail": [...]}` and 404 with `{"detail": ...}`;
the openai client would surface those as opaque bodies, so every path ends here instead.
The services' own errors become OpenAI's here too: `ModelNotFound` (the model registry) is
its 404 model_not_found, `InferenceError` (sampling, response_format, the prompt's length)
its 400, so routes need not catch them.
"""
from __future__ import annotations

import logging
import threading

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ftutils.local.inference.sampling import InferenceError
from ftutils.local.models.registry import ModelNotFound

log = logging.getLogger("ftutils.local")


class APIError(Exception):
    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error",
                 param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


def invalid(message: str, param: str | None = None, code: str | None = None) -> APIError:
    return APIError(400, message, param=param, code=code)


def not_found(kind: str, id: str, param: str | None = None) -> APIError:
    return APIError(404, f"No such {kind}: '{id}'", param=param, code=None)


def model_not_found(model: str) -> APIError:
    return APIError(404, f"The model `{model}` does not exist or you do not have access to it.",
                    param="model", code="model_not_found")


def missing_key() -> APIError:
    return APIError(401, "You didn't provide an API key. You need to provide your API key in an "
                         "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).")


def wrong_key() -> APIError:
    # OpenAI echoes a masked prefix of the key; we echo nothing, a key never leaves the server.
    return APIError(401, "Incorrect API key provided. The local server's key is FTUTILS_API_KEY, "
                         "else the one in DATA_DIR/api_key.", code="invalid_api_key")


def too_large(limit: int) -> APIError:
    return APIError(413, f"File is too large: the limit on this server is {limit} bytes.",
                    param="file", code="file_too_large")


def _param(loc: tuple) -> str | None:
    """("body", "messages", 0, "role") -> "messages[0].role", the way OpenAI names params."""
    out = ""
    for part in loc:
        if part in ("body", "query", "path", "header"):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


async def _api_error(request: Request, exc: APIError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status)


async def _model_not_found(request: Request, exc: ModelNotFound) -> JSONResponse:
    return await _api_error(request, model_not_found(exc.model_id))


async def _inference_error(request: Request, exc: InferenceError) -> JSONResponse:
    return await _api_error(request, invalid(str(exc), exc.param, exc.code))


async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
    param = _param(tuple(first.get("loc", ())))
    if first.get("type") == "extra_forbidden":
        return JSONResponse(_extra(request.url.path, param).body(), status_code=400)
    if first.get("type") == "missing":
        message = f"Missing required parameter: '{param}'."
        code = "missing_required_parameter"
    elif first.get("type") == "json_invalid":
        message, code, param = "We could not parse the JSON body of your request.", None, None
    else:
        message = f"Invalid value for '{param}': {first.get('msg')}."
        code = "invalid_value"
    return JSONResponse(invalid(message, param, code).body(), status_code=400)


def _openai_params(path: str) -> set[str]:
    """The request fields openai-python's own types know for this endpoint (one source, no copy)."""
    if path.endswith("/chat/completions"):
        from openai.types.chat import completion_create_params as params
        return set(params.CompletionCreateParamsStreaming.__annotations__)
    if path.endswith("/fine_tuning/jobs"):
        from openai.types.fine_tuning import job_create_params as params
        return set(params.JobCreateParams.__annotations__)
    return set()


def _warm_openai_types() -> None:
    # Importing openai's types takes over a second on a busy CPU; done once in the background
    # at start-up so the first refused parameter is answered as fast as any other error.
    for path in ("/chat/completions", "/fine_tuning/jobs"):
        _openai_params(path)


def _extra(path: str, param: str | None) -> APIError:
    """A field our schema lacks: OpenAI's own parameter we do not implement, or a typo."""
    if param in _openai_params(path):
        return APIError(400, f"Unsupported parameter: '{param}' is not supported by the local backend.",
                        param=param, code="unsupported_parameter")
    return APIError(400, f"Unrecognized request argument supplied: {param}", param=param, code="unknown_parameter")


async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    if exc.status_code == 404:
        message = f"Invalid URL ({request.method} {request.url.path})"
    elif exc.status_code == 405:
        message = f"Method {request.method} is not allowed on {request.url.path}"
    else:
        message = str(exc.detail)
    return JSONResponse(APIError(exc.status_code, message).body(), status_code=exc.status_code,
                        headers=getattr(exc, "headers", None))


async def unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error on %s %s", request.method, request.url.path)
    body = APIError(500, "The server had an error while processing your request.", type="server_error").body()
    return JSONResponse(body, status_code=500)


def install(app: FastAPI) -> None:
    threading.Thread(target=_warm_openai_types, name="warm-openai-types", daemon=True).start()
    app.add_exception_handler(APIError, _api_error)
    app.add_exception_handler(ModelNotFound, _model_not_found)
    app.add_exception_handler(InferenceError, _inference_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(Exception, unexpected)
