"""`ftutils serve` as a child process: start it on a free loopback port, wait until it
answers /health, stop it cleanly. One way to do it for the client helper (`connect`), the
tests and the benchmarks."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass
class ServerProcess:
    process: subprocess.Popen
    url: str
    """Base URL for the openai client, ending in /v1."""
    log: Path
    """The server's stdout and stderr."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str, timeout: float = 2) -> bool:
    """Whether the server at `url` (with or without /v1) answers /health."""
    root = url.rstrip("/").removesuffix("/v1")
    try:
        return httpx.get(f"{root}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def spawn(data_dir: Path, *, port: int | None = None, env: dict | None = None, timeout: float = 60,
          cwd: Path | None = None, args: tuple[str, ...] = ()) -> ServerProcess:
    """Start a server for `data_dir` and return once it accepts requests.

    `env` entries are added to this process's environment (e.g. FTUTILS_API_KEY), `args` to
    `ftutils serve`'s (e.g. `--ray ADDRESS`). A server that exits or stays silent raises
    RuntimeError with the end of its log."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # private, as the server keeps it
    port = port or free_port()
    log = data_dir / "server.log"
    cmd = [sys.executable, "-m", "ftutils", "serve", "--host", "127.0.0.1", "--port", str(port),
           "--data-dir", str(data_dir), *args]
    with log.open("ab") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env={**os.environ, **(env or {})}, cwd=cwd)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the local server exited with code {proc.returncode}; its log ({log}) ends:\n"
                               + log.read_text(errors="replace")[-2000:])
        if healthy(url, timeout=1):
            return ServerProcess(proc, url, log)
        time.sleep(0.2)
    stop(proc)
    raise RuntimeError(f"the local server did not answer within {timeout:.0f}s; its log ({log}) ends:\n"
                       + log.read_text(errors="replace")[-2000:])


def stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM first, so it can shut down cleanly (a server removes server.json, a worker
    checkpoints its job); SIGKILL if it has not exited within `timeout` seconds."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
