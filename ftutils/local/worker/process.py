"""The API process's handle on its worker process: start it, restart it if it dies, stop it.

The worker runs as `python -m ftutils.local.worker.loop` with the settings as JSON in
FTUTILS_WORKER_SETTINGS (never the key: the worker needs none, and argv is visible to all).
"""
from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import time

from ftutils.local.server_process import stop

ENV = "FTUTILS_WORKER_SETTINGS"
PARENT_ENV = "FTUTILS_WORKER_PARENT"  # the API process's pid: the worker's orphan check
MODULE = "ftutils.local.worker.loop"
log = logging.getLogger("ftutils.local")


class WorkerProcess:
    RESTART_DELAY = 2.0

    def __init__(self, settings):
        self.settings = settings
        self.proc: subprocess.Popen | None = None
        self.restarts = 0
        self._died_at: float | None = None

    @property
    def pid(self) -> int | None:
        """The worker's pid while it runs, else None."""
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if k != "FTUTILS_API_KEY"}  # the worker needs no key
        env[ENV] = self.settings.to_json()
        # Passed, not read by the worker with getppid(): an API process killed while the worker
        # still imports would leave it adopted by init before it could note its parent.
        env[PARENT_ENV] = str(os.getpid())
        self.proc = subprocess.Popen([sys.executable, "-m", MODULE], env=env)

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

    async def watch(self) -> None:
        """Until cancelled: restart the worker whenever it has died (checked twice a second)."""
        while True:
            await asyncio.sleep(0.5)
            try:
                self.ensure_running()
            except Exception:  # a failed restart is retried on the next tick
                log.exception("could not restart the worker")

    def stop(self, timeout: float = 30) -> None:
        if self.proc is not None:
            stop(self.proc, timeout)
