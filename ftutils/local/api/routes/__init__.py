"""The /v1 routes, one module per resource, each behind the bearer key: thin, a few lines each
over the services the app keeps on `app.state` (settings, store, models, engine, worker)."""
from __future__ import annotations

from fastapi import APIRouter, Depends

from ftutils.local.api.auth import require_key


def build_router() -> APIRouter:
    from ftutils.local.api.routes import chat, files, fine_tuning, models

    api = APIRouter(prefix="/v1", dependencies=[Depends(require_key)])
    for module in (files, fine_tuning, models, chat):
        api.include_router(module.router)
    return api
