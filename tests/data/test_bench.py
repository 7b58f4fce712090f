"""The benchmark's three contenders count the same thing: the validator's token total equals
the Cookbook loop's on the benchmark's own data, so the speed ratios compare like with like."""
from __future__ import annotations

import importlib.util

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_validate", ROOT / "benchmarks" / "bench_validate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("shared", [True, False])
def test_validator_counts_exactly_what_the_cookbook_counts(bench, tmp_path, shared):
    path = tmp_path / "train.jsonl"
    bench.make_file(path, 300, shared=shared)
    n, total = bench.ours(path)
    n_ref, total_ref, format_errors, n_too_long = bench.cookbook(path)
    n_limit, content_tokens = bench.limit(path)
    assert n == n_ref == n_limit == 300
    assert total == total_ref
    assert format_errors == {} and n_too_long == 0
    # framing: 3 per message + the role + 3 for the reply, on top of the content tokens
    assert content_tokens < total < content_tokens + 300 * (3 + 5 * 4)
