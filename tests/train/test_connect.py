"""connect(): which backend and why, keys masked everywhere, the local server found or
started (and stopped at exit), and check() naming each kind of failure."""
import dataclasses
import datetime
import json
import logging
import os
import subprocess
import sys
import textwrap

import httpx
import pytest

from ftutils.train.connect import check, connect, mask
from ftutils.local.server_process import free_port
from tests.conftest import ROOT, TEST_KEY


def no_raw_key(conn, key):
    for text in (repr(conn), str(conn), conn._repr_html_(), json.dumps(dataclasses.asdict(conn))):
        assert key not in text
    assert conn.masked_key == mask(key) and conn.masked_key in str(conn)


def test_mask():
    assert mask("sk-" + "proj-abcdefghijklmnopqrstuvwxyz0123") == "sk-…0123"
    assert mask(TEST_KEY) == "ftu…cdef"
    assert mask("sk-short") == "…" * 4  # a short key would give most of itself away
    assert mask(None) == ""


def test_explicit_local_reuses_the_running_server(local_server):
    conn = connect("local", env_file=None)
    assert conn.backend == "local" and not conn.started_server
    assert conn.base_url == local_server.base_url
    assert conn.reason.startswith("you asked for the local backend") and "reusing" in conn.reason
    assert conn.key_source == "env FTUTILS_API_KEY"
    no_raw_key(conn, TEST_KEY)
    result = check(conn)
    assert result.ok, result.message
    assert {"smollm2-135m-instruct", "tiny-smollm2"} <= set(result.fine_tunable)
    assert conn.default_model == "smollm2-135m-instruct"


def test_ftutils_backend_env_beats_an_openai_key(local_server, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-" + "never-used-because-backend-is-local-0000")
    monkeypatch.setenv("FTUTILS_BACKEND", "local")
    conn = connect(env_file=None)
    assert conn.backend == "local" and conn.reason.startswith("FTUTILS_BACKEND is set to local")


def test_openai_key_in_env_takes_the_openai_path(local_server, monkeypatch, caplog):
    # The local server poses as the remote API: the OpenAI code path runs for real.
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", local_server.base_url)
    caplog.set_level(logging.DEBUG)
    conn = connect(env_file=None)
    assert (conn.backend, conn.key_source) == ("openai", "env")
    assert conn.reason == "OPENAI_API_KEY is set in the environment"
    assert conn.base_url == local_server.base_url
    assert conn.default_model == "gpt-4o-mini-2024-07-18"
    result = check(conn)
    assert result.ok and "tiny-smollm2" in result.models
    assert all(m.startswith(("gpt-", "davinci", "babbage", "ft:")) for m in result.fine_tunable)
    no_raw_key(conn, TEST_KEY)
    assert "connected: openai backend" in caplog.text
    assert TEST_KEY not in caplog.text


def test_openai_key_in_dotenv_is_not_exported(local_server, tmp_path, monkeypatch):
    env_file = tmp_path / ".env"
    env_file.write_text(f"OPENAI_API_KEY={TEST_KEY}\nOPENAI_BASE_URL={local_server.base_url}\n")
    monkeypatch.chdir(tmp_path)
    conn = connect()  # finds ./.env by name
    assert (conn.backend, conn.key_source) == ("openai", ".env")
    assert conn.reason == "OPENAI_API_KEY is set in the .env file"
    assert check(conn).ok
    assert "OPENAI_API_KEY" not in os.environ and "OPENAI_BASE_URL" not in os.environ


def test_no_key_anywhere_means_local(local_server, tmp_path):
    conn = connect(env_file=tmp_path / "missing.env")
    assert conn.backend == "local" and conn.reason.startswith("no OpenAI key was found")


def test_missing_key_is_explained(tmp_path):
    conn = connect("openai", env_file=None, prompt=False)
    assert conn.key_source == "missing" and conn.masked_key == ""
    result = check(conn)
    assert (result.ok, result.problem) == (False, "missing key")
    assert "OPENAI_API_KEY" in result.message


def test_wrong_key_is_explained(local_server):
    wrong = "sk-" + "wrong-key-000000000000000000001234"  # split so secret scanners skip a fake
    conn = connect("openai", api_key=wrong, base_url=local_server.base_url, env_file=None)
    result = check(conn)
    assert (result.ok, result.problem) == (False, "wrong key")
    assert "sk-…1234" in result.message and wrong not in result.message and "401" in result.message


def test_wrong_base_url_is_explained(local_server):
    root = local_server.base_url.removesuffix("/v1")
    result = check(connect("openai", api_key=TEST_KEY, base_url=f"{root}/not-the-api/v1", env_file=None))
    assert (result.ok, result.problem) == (False, "wrong base URL"), result.message


def test_connection_refused_is_explained():
    url = f"http://127.0.0.1:{free_port()}/v1"
    result = check(connect("openai", api_key=TEST_KEY, base_url=url, env_file=None))
    assert (result.ok, result.problem) == (False, "no connection")
    assert url in result.message


def test_bad_backend_name():
    with pytest.raises(ValueError, match="'openai', 'local' or 'auto'"):
        connect("azure", env_file=None)


@pytest.mark.slow
def test_autostart_reuse_and_stop_at_exit(tmp_path):
    """A fresh data dir: the first connect() starts a server, the second reuses it, and the
    server goes away when the Python process that started it exits."""
    data_dir = tmp_path / "fresh"
    script = textwrap.dedent("""
        import json
        from ftutils.train.connect import check, connect
        first = connect(env_file=None)
        second = connect(env_file=None)
        server = json.loads(open(first.data_dir + "/server.json").read())
        print(json.dumps({"url": first.base_url, "started": [first.started_server, second.started_server],
                          "same": first.base_url == second.base_url, "ok": check(second).ok,
                          "source": first.key_source, "pid": server["pid"], "repr": repr(first)}))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("FTUTILS_API_KEY", "OPENAI_API_KEY")}
    env["FTUTILS_DATA_DIR"] = str(data_dir)
    out = subprocess.run([sys.executable, "-c", script], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert info["started"] == [True, False] and info["same"] and info["ok"]
    assert info["source"] == "local api_key file"
    key = (data_dir / "api_key").read_text().strip()
    assert key not in info["repr"] and key not in out.stdout + out.stderr
    # Stopped at exit: server.json removed, the port closed, the process gone.
    assert not (data_dir / "server.json").exists()
    with pytest.raises(httpx.HTTPError):
        httpx.get(info["url"].removesuffix("/v1") + "/health", timeout=2)
    with pytest.raises(ProcessLookupError):
        os.kill(info["pid"], 0)


def test_password_prompt_in_a_terminal_is_not_echoed(local_server, tmp_path):
    """No key anywhere and backend "openai": connect() asks on the terminal, hidden."""
    import fcntl
    import pty
    import termios
    import time

    script = textwrap.dedent("""
        import json
        from ftutils.train.connect import check, connect
        conn = connect("openai", env_file=None)
        print("RESULT " + json.dumps({"source": conn.key_source, "masked": conn.masked_key, "ok": check(conn).ok}))
    """)
    env = {k: v for k, v in os.environ.items() if k not in ("OPENAI_API_KEY", "FTUTILS_BACKEND")}
    env.update(OPENAI_BASE_URL=local_server.base_url, FTUTILS_INTERACTIVE="0")
    master, slave = pty.openpty()

    def own_terminal():  # getpass reads /dev/tty: make the pty this process's terminal
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-c", script], stdin=slave, stdout=slave, stderr=slave, env=env,
                            cwd=ROOT, start_new_session=True, preexec_fn=own_terminal)
    os.close(slave)
    seen, sent = b"", False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(master, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
        if not sent and b"OpenAI API key (input hidden):" in seen:
            os.write(master, TEST_KEY.encode() + b"\n")
            sent = True
    proc.wait(timeout=30)
    os.close(master)
    text = seen.decode(errors="replace")
    assert sent and proc.returncode == 0, text[-2000:]
    assert TEST_KEY not in text  # not echoed, not printed
    info = json.loads(text.split("RESULT ", 1)[1].splitlines()[0])
    assert info == {"source": "prompt", "masked": "ftu…cdef", "ok": True}


def test_fine_tunable_on_openai_are_the_known_snapshots_and_your_models():
    from ftutils.train.connect import Connection, fine_tunable

    conn = Connection("openai", "https://api.openai.com/v1", "test", "env", "sk-…abcd")
    listed = ["gpt-4o-mini-2024-07-18", "gpt-4o-mini", "gpt-4.1-nano-2025-04-14", "dall-e-3", "whisper-1",
              "ft:gpt-4o-mini-2024-07-18:acme:support:abc123", "ft:gpt-4o-mini-2024-07-18:acme:support:abc123:ckpt-step-20"]
    before = datetime.date(2026, 10, 1)
    assert fine_tunable(conn, listed, day=before) == ["gpt-4.1-nano-2025-04-14", "gpt-4o-mini-2024-07-18",
                                                      "ft:gpt-4o-mini-2024-07-18:acme:support:abc123"]
    # gpt-4.1-nano shut down on 2026-10-23 (and a fine-tune goes with its base); what the
    # service lists wins over what ftutils knows; none at all once OpenAI stops creating jobs.
    assert fine_tunable(conn, listed) == ["gpt-4o-mini-2024-07-18", "ft:gpt-4o-mini-2024-07-18:acme:support:abc123"]
    assert fine_tunable(conn, listed, {"gpt-4o-mini-2024-07-18": "2026-12-01"}) == [
        "ft:gpt-4o-mini-2024-07-18:acme:support:abc123"]
    assert fine_tunable(conn, listed, day=datetime.date(2027, 1, 6)) == []
