"""The conversion cache: a converted model appears whole or not at all, and once."""
from __future__ import annotations

import threading
import time

import pytest

from ftutils.local.models import cache


def test_cache_appears_whole_or_not_at_all(tmp_path):
    target = tmp_path / "models" / "thing"

    def crash(tmp):
        (tmp / "half.bin").write_bytes(b"x" * 10)
        raise RuntimeError("killed mid-conversion")
    with pytest.raises(RuntimeError):
        cache.cached(target, crash)
    assert not target.exists()
    assert not list(target.parent.glob(".tmp-*"))

    (target.parent / ".tmp-thing-stale").mkdir()  # what a killed process leaves behind
    cache.cached(target, lambda tmp: (tmp / "weights.bin").write_bytes(b"ok"))
    assert (target / "weights.bin").read_bytes() == b"ok"
    assert not list(target.parent.glob(".tmp-*"))


def test_racing_loaders_convert_once(tmp_path):
    target = tmp_path / "models" / "thing"
    calls = []

    def slow(tmp):
        calls.append(1)
        time.sleep(0.3)
        (tmp / "weights.bin").write_bytes(b"ok")
    threads = [threading.Thread(target=cache.cached, args=(target, slow)) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1
    assert (target / "weights.bin").read_bytes() == b"ok"
