"""The API process: `create_app(settings)` builds the FastAPI app; its lifespan starts and
stops the worker process and keeps it alive. Routes find their services on `app.state`:
`settings`, `db`, `jobs` (the job service), `engine` (chat inference, made on first use)
and `worker`.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import subprocess
import sys
import time

from fastapi import FastAPI

from ftutils import __version__
from ftutils.local import errors, headers
from ftutils.local.db import Database
from ftutils.local.jobs import Jobs
from ftutils.local.process import stop
from ftutils.local.routers import build_router
from ftutils.local.routers.files import sweep_orphans
from ftutils.local.settings import Settings
from ftutils.local.worker import ENV

log = logging.getLogger("ftutils.local")


def create_app(settings: Settings) -> FastAPI:
    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        sweep_orphans(settings, app.state.db)
        watcher = None
        if settings.run_worker:
            app.state.worker.start()
            watcher = asyncio.create_task(_watch(app.state.worker))
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            # The worker checkpoints the running job and re-queues it before it exits.
            await asyncio.to_thread(app.state.worker.stop)

    app = FastAPI(title="ftutils local backend", version=__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.db = Database(settings.db_path)
    app.state.jobs = Jobs(app.state.db, settings.org)
    app.state.engine = None
    app.state.worker = WorkerProcess(settings)
    errors.install(app)
    headers.install(app)
    app.include_router(build_router())

    @app.get("/health", include_in_schema=False)
    def health():
        worker = app.state.worker.proc
        alive = worker is not None and worker.poll() is None
        return {"status": "ok", "version": __version__, "worker": "running" if alive else "stopped",
                "worker_pid": worker.pid if alive else None}

    return app


async def _watch(worker: WorkerProcess) -> None:
    while True:
        await asyncio.sleep(0.5)
        try:
            worker.ensure_running()
        except Exception:  # a failed restart is retried on the next tick
            log.exception("could not restart the worker")


class WorkerProcess:
    """The API process's handle on its worker: start, restart if it dies, stop on shut-down."""

    RESTART_DELAY = 2.0

    def __init__(self, settings: Settings):
        self.settings = settings
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._died_at: float | None = None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "FTUTILS_API_KEY"}  # the worker needs no key
        env[ENV] = self.settings.to_json()
        self.proc = subprocess.Popen([sys.executable, "-m", "ftutils.local.worker"], env=env)

    def ensure_running(self) -> None:
        if self.proc is None or self.proc.poll() is None:
            return
        if self._died_at is None:
            self._died_at = time.monotonic()
            log.warning("worker exited with code %s; restarting", self.proc.returncode)
        if time.monotonic() - self._died_at >= self.RESTART_DELAY:
            self._died_at = None
            self.restarts += 1
            self.start()

    def stop(self, timeout: float = 30) -> None:
        if self.proc is not None:
            stop(self.proc, timeout)
