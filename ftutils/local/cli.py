"""`ftutils serve`: the local backend in the foreground until SIGTERM or Ctrl-C.

The port is bound here, before anything starts, so "address in use" is one clear line and
exit code 1 rather than a worker started for nothing. `server.json` appears only once the
server accepts requests and goes away on a clean shut-down.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import socket
import sys


def register(subparsers) -> None:
    parser = subparsers.add_parser("serve", help="run the local fine-tuning backend (OpenAI-compatible API)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: loopback only)")
    parser.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0 picks a free one)")
    parser.add_argument("--data-dir", default=None, help="state directory (default $FTUTILS_DATA_DIR or ~/.ftutils/local)")
    parser.add_argument("--model", action="append", default=[], metavar="ID=DIR",
                        help="serve and fine-tune a local Hugging Face model folder as base model ID (repeatable)")
    parser.add_argument("--ray", default=None, metavar="auto|ADDRESS",
                        help="train each job on the Ray cluster at ADDRESS (auto: the one on this machine); "
                             "needs ftutils[cluster]")
    parser.set_defaults(func=serve)


def serve(args) -> int:
    from ftutils.local.settings import Settings

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The data dir holds the key, the uploaded training data and the models: ours alone. The
    # mask covers everything this process and its worker create (db.sqlite and its WAL too).
    os.umask(0o077)
    try:
        extra = {}
        for spec in args.model:
            model_id, sep, folder = spec.partition("=")
            if not sep or not model_id or not os.path.isdir(folder):
                raise ValueError(f"--model wants ID=DIR with an existing folder, got {spec!r}")
            extra[model_id] = os.path.abspath(folder)
        settings = Settings.load(args.data_dir, host=args.host, port=args.port,
                                 **({"extra_models": extra} if extra else {}),
                                 **({"ray_address": args.ray} if args.ray else {}))
        if settings.ray_address and importlib.util.find_spec("ray") is None:
            raise ValueError("training on Ray needs Ray: pip install 'ftutils[cluster]'")
        from ftutils.local.models.aliases import check_aliases
        check_aliases(settings.model_aliases, settings.extra_models)
    except (OSError, ValueError) as exc:
        print(f"ftutils serve: {exc}", file=sys.stderr)
        return 2
    if settings.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"ftutils serve: listening on {settings.host}, not loopback: anyone who can reach it and has "
              "the key can use it; the traffic is plain HTTP.", file=sys.stderr)
    sock = socket.socket(socket.AF_INET6 if ":" in settings.host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Headers and body leave in separate writes; with Nagle on, delayed ACKs add ~40 ms to
    # every response (measured: /health 48 ms -> 3 ms). Accepted sockets inherit this.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        print(f"ftutils serve: cannot listen on {settings.host}:{settings.port}: {exc.strerror}. "
              f"Is another server running? Try --port 0 or another port.", file=sys.stderr)
        sock.close()
        return 1
    other = _running_server(settings)
    if other:
        print(f"ftutils serve: another server (pid {other['pid']}) already serves {settings.data_dir} at "
              f"{other['url']}; stop it first or use another --data-dir.", file=sys.stderr)
        sock.close()
        return 1
    sock.listen(128)
    settings.port = sock.getsockname()[1]
    import uvicorn  # the heavy imports wait until we know the port is ours

    from ftutils.local.api.app import create_app
    server = _Server(uvicorn.Config(create_app(settings), log_level="info", access_log=False, lifespan="on"),
                     settings)
    server.run(sockets=[sock])
    return 0 if server.started else 1


class _Server:
    """uvicorn.Server that writes server.json once listening and removes it on the way out."""

    def __new__(cls, config, settings):
        import uvicorn

        class Server(uvicorn.Server):
            async def startup(self, sockets=None):
                await super().startup(sockets=sockets)
                if self.started:
                    _write_server_json(settings)

            async def shutdown(self, sockets=None):
                _remove_server_json(settings)
                await super().shutdown(sockets=sockets)

            @contextlib.contextmanager
            def capture_signals(self):
                # uvicorn re-raises SIGTERM/SIGINT after shutting down, so the process would
                # end "killed by signal"; a finished clean shut-down should exit 0 instead.
                with super().capture_signals():
                    yield
                    self._captured_signals.clear()

        return Server(config)


def _server_json(settings):
    return settings.data_dir / "server.json"


def _running_server(settings) -> dict | None:
    """What server.json says, if that server is alive and answering; a stale file (its server
    was killed with SIGKILL, or its pid is now another process) is removed with a warning."""
    from ftutils import home
    from ftutils.local.server_process import healthy

    info = home.read_server_info(settings.data_dir)
    if _server_json(settings).exists() and info is None:
        info = {}
    if info is None:
        return None
    if _alive(info.get("pid")) and isinstance(info.get("url"), str) and healthy(info["url"], timeout=2):
        return info
    logging.getLogger("ftutils.local").warning("replacing a stale server.json (pid %s is gone or %s does not answer)",
                                               info.get("pid"), info.get("url"))
    _server_json(settings).unlink(missing_ok=True)
    return None


def _alive(pid) -> bool:
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive, though not necessarily a server
        return True
    return True


def _write_server_json(settings) -> None:
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "") else settings.host
    if ":" in host:
        host = f"[{host}]"
    path = _server_json(settings)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": f"http://{host}:{settings.port}/v1", "pid": os.getpid()}))
    tmp.replace(path)
    from ftutils.local.models.aliases import describe_aliases
    print(f"ftutils local backend listening on http://{host}:{settings.port}/v1 (data in {settings.data_dir}); "
          f"OpenAI model ids train locally as: {describe_aliases(settings.model_aliases)}", flush=True)


def _remove_server_json(settings) -> None:
    path = _server_json(settings)
    try:
        if json.loads(path.read_text()).get("pid") == os.getpid():  # never remove another server's
            path.unlink()
    except (OSError, ValueError):
        pass
