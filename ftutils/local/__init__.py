"""The local backend: an OpenAI-compatible fine-tuning API that really trains, offline.

`ftutils serve` runs it (`ftutils.local.cli`); `create_app(settings)` builds the app
(`ftutils.local.app`); `Settings` says where its state lives (`ftutils.local.settings`).
Importing this package stays light: torch and FastAPI load only with the parts that need them.
"""
import os

# OpenMP threads that spin while waiting made small ops 7-100x slower on a shared 2-core CPU;
# it only takes effect if set before torch loads, and every local process imports this first.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ftutils.local.settings import Settings, default_data_dir, resolve_api_key

__all__ = ["Settings", "default_data_dir", "resolve_api_key"]
