"""The local backend: an OpenAI-compatible fine-tuning API that really trains, offline.

Its rooms: `models` (the one table of base models, loading them, the registry of every id),
`store` (SQLite and the job service), `training` (`train(config, sink)`), `inference` (chat
completions), `worker` (the process that trains queued jobs) and `api` (`create_app(settings)`).
`ftutils serve` runs it (`ftutils.local.cli`); `Settings` says where its state lives and how it
runs (`ftutils.local.settings`); `server_process` starts one as a child process; `export` writes
a fine-tune out. docs/architecture.md draws the rooms and the rules between them.
Importing this package stays light: torch and FastAPI load only with the parts that need them.
"""
import ftutils.threads  # noqa: F401  (every local process imports this before torch)
from ftutils.local.settings import Settings

__all__ = ["Settings"]
