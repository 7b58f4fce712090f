"""Turning answers into labels: normalisation, first-token scoring, tokenizer checks and
the retry policy (no model needed)."""
from __future__ import annotations

import math
import random

import httpx
import openai
import pytest

from ftutils.evaluate.calls import RetryPolicy, default_concurrency, retryable, run_all, with_retries
from ftutils.evaluate.classify import _shared, label_scores, normalize_answer, tiktoken_first_tokens

LABELS = ["account_access", "billing", "refund", "shipping", "technical_issue"]


@pytest.mark.parametrize("answer, expected", [
    ("billing", ("billing", "exact")),
    ("  Billing.\n", ("billing", "case")),
    ("'REFUND'", ("refund", "case")),
    ("This is a billing question.", ("billing", "contained")),
    ("technical issue", ("technical_issue", "contained")),
    ("Category: account-access", ("account_access", "contained")),
    ("biling", ("billing", "fuzzy")),
    ("shiping", ("shipping", "fuzzy")),
    ("refund or billing", (None, "unparseable")),
    ("bbbbbbbb", (None, "unparseable")),
    ("", (None, "unparseable")),
    (None, (None, "unparseable")),
])
def test_normalize_answer(answer, expected):
    assert normalize_answer(answer, LABELS) == expected


def test_a_label_inside_a_longer_label_is_not_a_second_match():
    assert normalize_answer("the answer is very positive", ["positive", "very positive", "negative"]) == \
        ("very positive", "contained")


def test_label_scores_sum_the_tokens_that_begin_one_label_only():
    top = [("b", -1.0), ("Bill", -2.0), (" refund", -3.0), ("x", -0.5), ("s", -4.0)]
    scores, shared = label_scores(top, LABELS)
    assert scores["billing"] == pytest.approx(math.log(math.exp(-1) + math.exp(-2)))
    assert scores["refund"] == pytest.approx(-3.0)
    assert scores["shipping"] == pytest.approx(-4.0)
    assert "account_access" not in scores and not shared


def test_a_likeliest_token_shared_by_two_labels_is_flagged():
    labels = ["billing_dispute", "billing_question", "refund"]
    scores, shared = label_scores([("billing", -0.1), ("ref", -3.0)], labels)
    assert shared and scores == {"refund": -3.0}
    _, shared = label_scores([("ref", -0.1), ("billing", -3.0)], labels)
    assert not shared


def test_tiktoken_knows_openai_first_tokens_and_not_local_ones():
    first = tiktoken_first_tokens("gpt-4o-mini-2024-07-18", ["billing_dispute", "billing_question", "refund"])
    assert first["billing_dispute"] == first["billing_question"] != first["refund"]
    assert _shared(first) == [f"billing_dispute, billing_question all start with {first['billing_dispute']!r}"]
    assert _shared(tiktoken_first_tokens("ft:gpt-4o-mini-2024-07-18:org::abc", LABELS)) == []
    assert tiktoken_first_tokens("smollm2-135m-instruct", LABELS) is None


def _status_error(cls, status):
    request = httpx.Request("POST", "http://127.0.0.1/v1/chat/completions")
    return cls("boom", response=httpx.Response(status, request=request), body=None)


def test_retries_back_off_on_429_and_5xx_then_succeed():
    errors = [_status_error(openai.RateLimitError, 429), _status_error(openai.InternalServerError, 503)]
    waits = []

    def call():
        if errors:
            raise errors.pop(0)
        return "done"

    value, retries = with_retries(call, RetryPolicy(max_retries=3, base_delay=1, max_delay=10), random.Random(0), waits.append)
    assert (value, retries) == ("done", 2)
    assert 0 <= waits[0] <= 1 and 0 <= waits[1] <= 2  # full jitter under base * 2**attempt


def test_client_errors_are_not_retried_and_exhaustion_raises():
    bad = _status_error(openai.BadRequestError, 400)
    assert not retryable(bad) and retryable(_status_error(openai.InternalServerError, 500))
    with pytest.raises(openai.BadRequestError):
        with_retries(lambda: (_ for _ in ()).throw(bad), RetryPolicy(), random.Random(0), lambda s: None)
    calls = []

    def always_429():
        calls.append(1)
        raise _status_error(openai.RateLimitError, 429)

    with pytest.raises(openai.RateLimitError):
        with_retries(always_429, RetryPolicy(max_retries=2), random.Random(0), lambda s: None)
    assert len(calls) == 3


def test_delays_are_capped_and_jittered():
    policy = RetryPolicy(max_retries=10, base_delay=1, max_delay=5)
    rng = random.Random(1)
    delays = [policy.delay(a, rng) for a in range(10)]
    assert max(delays) <= 5 and len(set(delays)) == 10
    with pytest.raises(ValueError):
        RetryPolicy(base_delay=10, max_delay=1)


def test_pool_keeps_order_and_every_backend_gets_concurrent_requests():
    assert run_all(lambda x: x * x, range(20), concurrency=4) == [x * x for x in range(20)]
    assert default_concurrency("local") > 1 and default_concurrency("openai") > 1
