"""A stand-in for OpenAI as it answers an organisation that may no longer fine-tune: a real
HTTP server (FastAPI on uvicorn, a free loopback port) that lists models with their
`shutdown_date`, takes file uploads, and refuses `POST /fine_tuning/jobs` with OpenAI's
error object. Its model table and refusal are plain attributes a test may change.

Only the routes the client touches before and at job creation exist; anything else is 404,
as an unknown path is on OpenAI.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

KEY = "sk-standin-0123456789abcdef"  # not a secret: only this test server knows it
# As OpenAI's GET /v1/models answered an existing organisation in December 2026 (dates from
# its deprecations page): gpt-4.1-nano is gone, the four last bases carry 2027-01-14.
MODELS = {
    "gpt-4o-mini-2024-07-18": "2027-01-14", "gpt-4o-2024-08-06": "2027-01-14", "gpt-4.1-2025-04-14": "2027-01-14",
    "gpt-4.1-mini-2025-04-14": "2027-01-14", "gpt-3.5-turbo-0125": "2026-10-23", "gpt-6-luna": None,
}
REFUSAL = {"message": "Fine-tuning job creation is no longer available for this organization. See "
                      "https://developers.openai.com/api/docs/deprecations for details.",
           "type": "invalid_request_error", "param": None, "code": "fine_tuning_unavailable"}


def _error(status: int, message: str, param=None, code=None, kind="invalid_request_error") -> JSONResponse:
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status)


@dataclass
class StandIn:
    url: str = ""
    models: dict = field(default_factory=lambda: dict(MODELS))
    refusal: dict = field(default_factory=lambda: dict(REFUSAL))
    refusal_status: int = 403
    uploads: list = field(default_factory=list)
    """Filenames uploaded, in order."""
    job_requests: list = field(default_factory=list)
    """Bodies of every POST /fine_tuning/jobs."""


def create_app(standin: StandIn) -> FastAPI:
    app = FastAPI()

    @app.middleware("http")
    async def auth(request: Request, call_next):
        if request.headers.get("authorization") != f"Bearer {KEY}":
            return _error(401, "Incorrect API key provided.", code="invalid_api_key")
        return await call_next(request)

    def model(model_id: str, date):
        return {"id": model_id, "object": "model", "created": 1721260800, "owned_by": "system", "shutdown_date": date}

    @app.get("/v1/models")
    def list_models():
        return {"object": "list", "data": [model(m, d) for m, d in standin.models.items()]}

    @app.get("/v1/models/{model_id}")
    def retrieve_model(model_id: str):
        if model_id not in standin.models:
            return _error(404, f"The model '{model_id}' does not exist", "model", "model_not_found")
        return model(model_id, standin.models[model_id])

    @app.post("/v1/files")
    async def upload(request: Request):
        form = await request.form()
        data = await form["file"].read()
        standin.uploads.append(form["file"].filename)
        return {"id": f"file-{len(standin.uploads):04d}", "object": "file", "bytes": len(data), "created_at": 1765000000,
                "filename": form["file"].filename, "purpose": form["purpose"], "status": "processed"}

    @app.get("/v1/files/{file_id}")
    def retrieve_file(file_id: str):
        return {"id": file_id, "object": "file", "bytes": 1, "created_at": 1765000000, "filename": "upload.jsonl",
                "purpose": "fine-tune", "status": "processed"}

    @app.post("/v1/fine_tuning/jobs")
    async def create_job(request: Request):
        body = await request.json()
        standin.job_requests.append(body)
        if not str(body.get("training_file", "")).startswith("file-0"):
            # A wrong field stays OpenAI's own 400: the client must not dress it up as the wind-down.
            return _error(400, f"invalid training_file: {body.get('training_file')}", "training_file", "invalid_file")
        return JSONResponse({"error": standin.refusal}, standin.refusal_status)

    return app


def serve(standin: StandIn):
    """Run the stand-in on a free port in a daemon thread; returns the uvicorn Server (set
    `should_exit` to stop it)."""
    import uvicorn

    from ftutils.local.server_process import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(standin), host="127.0.0.1", port=port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the OpenAI stand-in did not start")
        time.sleep(0.05)
    standin.url = f"http://127.0.0.1:{port}/v1"
    return server
