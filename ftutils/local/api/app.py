"""The API process: `create_app(settings)` builds the FastAPI app; its lifespan starts and
stops the worker process and keeps it alive. Routes find their services on `app.state`:
`settings`, `store` (SQLite and the job service: `ftutils.local.store`), `models` (the model
registry, which turns any model id into a base and an adapter), `engine` (chat inference,
made on first use) and `worker` (the handle on the worker process).
"""
from __future__ import annotations

import asyncio
import contextlib
import threading

from fastapi import FastAPI

from ftutils import __version__
from ftutils.local.api import errors, headers, limits
from ftutils.local.api.routes import build_router
from ftutils.local.models.registry import Registry
from ftutils.local.settings import Settings
from ftutils.local.store import Store
from ftutils.local.worker.process import WorkerProcess


class LazyEngine:
    """The inference engine, loaded by the first chat completion (two at once load it once)."""

    def __init__(self, settings: Settings):
        self.settings, self._engine, self._lock = settings, None, threading.Lock()

    def get(self):
        with self._lock:
            if self._engine is None:
                from ftutils.local.inference.engine import InferenceEngine

                self._engine = InferenceEngine(self.settings.data_dir, self.settings.extra_models)
        return self._engine


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.store.files.sweep_orphans()
        watcher = None
        if settings.run_worker:
            app.state.worker.start()
            watcher = asyncio.create_task(app.state.worker.watch())
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            # The worker checkpoints the running job and re-queues it before it exits.
            await asyncio.to_thread(app.state.worker.stop)

    app = FastAPI(title="ftutils local backend", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    store = Store.open(settings.db_path, settings.files_dir, settings.jobs_dir, settings.org)
    app.state.settings, app.state.store = settings, store
    app.state.models = Registry(settings.extra_models, settings.model_aliases, store.fine_tunes)
    app.state.engine = LazyEngine(settings)
    app.state.worker = WorkerProcess(settings)
    errors.install(app)
    limits.install(app)
    headers.install(app)  # outermost: its headers go on every answer, the refusals above included
    app.include_router(build_router())

    @app.get("/health", include_in_schema=False)
    def health():
        pid = app.state.worker.pid
        return {"status": "ok", "version": __version__, "worker": "running" if pid else "stopped", "worker_pid": pid}

    return app
