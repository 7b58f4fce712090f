"""`ftutils migrate [--from URL] [--from-key-env NAME] [--to URL] [--to-key-env NAME] [--model BASE]
[--jobs ID ...] [--out DIR] [--wait]`: exit 0 when every job migrated (and, with --wait, every
replay succeeded), 1 otherwise, 2 when a service cannot be reached or has no key."""
from __future__ import annotations

import os
import sys

OPENAI_URL = "https://api.openai.com/v1"


def register(subparsers) -> None:
    p = subparsers.add_parser("migrate", help="bring the fine-tuning jobs of one service (OpenAI by default) "
                                              "to another (the local backend by default)")
    p.add_argument("--from", dest="source", metavar="URL", default=OPENAI_URL, help=f"the source's base URL (default {OPENAI_URL})")
    p.add_argument("--from-key-env", metavar="NAME", default="OPENAI_API_KEY", help="the variable holding the source's key")
    p.add_argument("--to", dest="target", metavar="URL", help="the target's base URL (default: the local server that is "
                                               "running, as DATA_DIR/server.json names it)")
    p.add_argument("--to-key-env", metavar="NAME", help="the variable holding the target's key (default: FTUTILS_API_KEY, "
                                        "else the local backend's DATA_DIR/api_key)")
    p.add_argument("--model", metavar="BASE", help="the target base model for every replay (default: the source job's model, "
                                   "which the local backend accepts as an alias)")
    p.add_argument("--jobs", nargs="+", metavar="ID", help="only these source jobs")
    p.add_argument("--out", metavar="DIR", help="where each job's files go (default: runs/migration in the project)")
    p.add_argument("--wait", action="store_true", help="follow the target jobs to their end and print the table")
    p.set_defaults(func=run_migrate)


def _healthy(url: str) -> bool:
    import httpx

    try:
        return httpx.get(url.rstrip("/").removesuffix("/v1") + "/health", timeout=3).status_code == 200
    except httpx.HTTPError:
        return False


def _target(args) -> tuple[str | None, str | None, str]:
    """(URL, key, what to say if either is missing) of the target."""
    from ftutils import home

    directory = home.data_dir()
    url = args.target
    if not url:
        url = (home.read_server_info(directory) or {}).get("url")
        if not url or not _healthy(url):
            return None, None, (f"no local server is running for {directory}: start one with `ftutils serve` "
                                "(or pass --to URL)")
    if args.to_key_env:
        return url, os.environ.get(args.to_key_env), f"{args.to_key_env} is not set"
    key, _ = home.find_key(directory)
    return url, key or None, f"no key for {url}: set FTUTILS_API_KEY or pass --to-key-env NAME"


def run_migrate(args) -> int:
    import openai

    from ftutils.migrate import MigrationError, migrate
    from ftutils.migrate.state import StateError

    source_key = os.environ.get(args.from_key_env)
    if not source_key:
        print(f"error: {args.from_key_env} is not set: the source's key (see --from-key-env)", file=sys.stderr)
        return 2
    url, target_key, problem = _target(args)
    if not url or not target_key:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    if args.out is None:
        from ftutils.train.runs import project_path
        args.out = str(project_path("runs/migration"))
    source = openai.OpenAI(api_key=source_key, base_url=args.source)
    target = openai.OpenAI(api_key=target_key, base_url=url)
    print(f"migrating from {args.source} to {url} into {args.out}")
    try:
        summary = migrate(source, target, args.out, args.jobs, args.model, args.wait)
    except (StateError, MigrationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except openai.APIError as exc:  # listing the source's jobs, or following the target's
        print(f"error: {type(exc).__name__}: {exc.message}", file=sys.stderr)
        return 2 if isinstance(exc, (openai.APIConnectionError, openai.AuthenticationError)) else 1
    print(summary.table())
    for row in summary.rows:
        if row["error"]:
            print(f"error: {row['error']}", file=sys.stderr)
    return 0 if summary.ok else 1
