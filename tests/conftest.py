"""Shared fixtures: an isolated environment and one real local server per test session.

The server is the real thing (`python -m ftutils serve` on a free loopback port, its own
SQLite and data dir); tests talk to it through the official `openai` client.
"""
from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

from ftutils.local.server_process import spawn, stop

ROOT = Path(__file__).resolve().parents[1]
TEST_KEY = "ftutils-test-key-0123456789abcdef"  # not a secret: only this test server knows it


@pytest.fixture(scope="session", autouse=True)
def _isolated_env(tmp_path_factory):
    """No real OpenAI key, no user data dir: every test runs against throwaway state."""
    home = tmp_path_factory.mktemp("ftutils-home")
    saved = dict(os.environ)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "FTUTILS_BACKEND", "FTUTILS_API_KEY"):
        os.environ.pop(name, None)
    os.environ["FTUTILS_DATA_DIR"] = str(home / "local")
    # OpenAI's wind-down dates are read against today: the suite runs on one fixed day (the day
    # these tests were written against) so it says the same thing after 2027-01-06 as before.
    os.environ["FTUTILS_TODAY"] = "2026-12-07"
    os.environ.setdefault("MPLBACKEND", "Agg")
    # Nobody clicks in a test: widgets render their static form unless a test says otherwise.
    os.environ["FTUTILS_INTERACTIVE"] = "0"
    yield
    os.environ.clear()
    os.environ.update(saved)


@dataclass
class LocalServer:
    base_url: str  # ends in /v1, as the openai client wants it
    api_key: str
    data_dir: Path
    process: subprocess.Popen
    log: Path

    def client(self, **kwargs):
        import openai
        return openai.OpenAI(base_url=self.base_url, api_key=self.api_key, **kwargs)


def start_server(data_dir: Path, port: int | None = None, env: dict | None = None, timeout: float = 60,
                 args: tuple[str, ...] = ()) -> LocalServer:
    env = {"FTUTILS_API_KEY": TEST_KEY, **(env or {})}
    server = spawn(data_dir, port=port, env=env, timeout=timeout, cwd=ROOT, args=args)
    return LocalServer(server.url, env["FTUTILS_API_KEY"], Path(data_dir), server.process, server.log)


def stop_server(server: LocalServer) -> None:
    stop(server.process)


@pytest.fixture(scope="session")
def local_server(tmp_path_factory):
    """One real server for the session; tests must not assume they are alone on it."""
    # The data dir notebooks and connect() use, so they find and reuse this server.
    os.environ.pop("FTUTILS_KEEP_CHECKPOINTS", None)  # the shared server keeps its own default (3)
    server = start_server(Path(os.environ["FTUTILS_DATA_DIR"]))
    # The server takes its key from FTUTILS_API_KEY and then writes no api_key file, so
    # connect() here and in notebook kernels (which inherit os.environ) needs it set too.
    os.environ["FTUTILS_API_KEY"] = server.api_key
    yield server
    stop_server(server)


@pytest.fixture()
def client(local_server):
    return local_server.client(max_retries=0)


@pytest.fixture()
def recorder():
    """Every response of `api` checked against OpenAI's spec (see tests/local/helpers.py)."""
    from tests.local.helpers import SpecRecorder
    return SpecRecorder()


@pytest.fixture()
def api(local_server, recorder):
    """The real openai client on the session server, its responses checked against the spec."""
    from tests.local.helpers import checked_client
    return checked_client(local_server, recorder)


@pytest.fixture(autouse=True)
def _servers_keep_their_own_checkpoint_default(monkeypatch):
    # `import ftutils.train` under ipykernel (which some tests import) and `ftutils run` in-process
    # set FTUTILS_KEEP_CHECKPOINTS=all for the rest of the process; each test starts from the
    # server's own default (3, as OpenAI) unless it sets the variable itself.
    monkeypatch.delenv("FTUTILS_KEEP_CHECKPOINTS", raising=False)
