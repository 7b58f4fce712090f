"""The local backend: an OpenAI-compatible fine-tuning API that really trains, offline.

`ftutils serve` runs it (`ftutils.local.cli`); `create_app(settings)` builds the app
(`ftutils.local.app`); `Settings` says where its state lives (`ftutils.local.settings`).
Importing this package stays light: torch and FastAPI load only with the parts that need them.
"""
import ftutils.threads  # noqa: F401  (every local process imports this before torch)
from ftutils.local.settings import Settings

__all__ = ["Settings"]
