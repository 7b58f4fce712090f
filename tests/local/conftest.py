"""Fixtures of the local backend's tests (the session server is in tests/conftest.py)."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def ml_data_dir(tmp_path_factory):
    # One DATA_DIR per session for all the ML tests, so SmolLM2's tokenizer is read from
    # the GGUF once.
    return tmp_path_factory.getbasetemp() / "ml-data"
