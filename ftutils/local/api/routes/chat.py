"""Chat completions from base, fine-tuned and checkpoint models, whole or streamed (SSE).

Generation is CPU-bound and the engine batches concurrent requests in its own thread, so
both paths run in the thread pool (a sync route; a sync iterator for streaming) and the
event loop keeps answering other requests while a completion is being written. What can be
refused from the headers or cheap bounds is refused before any work: a body over the limit
(`limits`, before it is read), and a max_tokens above what the model can produce.
"""
from __future__ import annotations

import secrets
import time

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ftutils.local.api import completions, schemas

router = APIRouter(prefix="/chat")


@router.post("/completions")
def create_chat_completion(request: Request, body: schemas.ChatCompletionRequest):
    state = request.app.state
    base, adapter = state.models.resolve(body.model)
    messages = completions.messages(body.messages)
    params = completions.sampling_params(body)
    completions.check_max_tokens(state.models.context_length(base), body)
    completion_id, created = "chatcmpl-" + secrets.token_hex(12), int(time.time())
    if body.stream:
        # stream() loads the model and checks the prompt before returning, so errors
        # still get a proper status; after the first byte they can only go in-band.
        deltas = state.engine.get().stream(base, adapter, messages, params)
        include_usage = bool((body.stream_options or {}).get("include_usage"))
        return StreamingResponse(completions.sse(deltas, completion_id, created, body.model, include_usage),
                                 media_type="text/event-stream")
    result = state.engine.get().generate(base, adapter, messages, params)
    return completions.completion(result, completion_id, created, body.model, bool(body.logprobs))
