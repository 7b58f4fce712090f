"""Turning answers into labels: normalisation, scoring along the answer's log-probabilities,
how many tokens to read, and the retry policy (no model needed)."""
from __future__ import annotations

import math
import random

import httpx
import openai
import pytest

from ftutils.evaluate.calls import RetryPolicy, default_concurrency, retryable, run_all, with_retries
from ftutils.data.tokens import encoding_for
from ftutils.evaluate.classify import _common, label_scores, normalize_answer, score_depth

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


def _first(top):
    """A one-token answer: the likeliest token chosen."""
    return [(max(top, key=lambda t: t[1])[0], top)]


def test_label_scores_sum_the_tokens_that_begin_one_label_only():
    top = [("b", -1.0), ("Bill", -2.0), (" refund", -3.0), ("x", -0.5), ("s", -4.0)]
    scores, unresolved = label_scores(_first(top), LABELS)
    assert scores["billing"] == pytest.approx(math.log(math.exp(-1) + math.exp(-2)))
    assert scores["refund"] == pytest.approx(-3.0)
    assert scores["shipping"] == pytest.approx(-4.0)
    assert "account_access" not in scores and not unresolved


LONG = ["report_fraud", "report_lost_card", "refund"]


def test_labels_sharing_a_beginning_are_scored_along_the_answer():
    # "report" begins two labels; the answer goes on "_", then "lost" or "f(raud)" decide.
    steps = [("report", [("report", -0.2), ("ref", -2.0)]),
             ("_", [("_", -0.01), (" ", -5.0)]),
             ("lost", [("lost", -0.5), ("f", -1.0), ("x", -3.0)]),
             ("_card", [("_card", -0.001)])]
    scores, unresolved = label_scores(steps, LONG)
    assert not unresolved
    assert scores["report_lost_card"] == pytest.approx(-0.2 - 0.01 - 0.5)
    assert scores["report_fraud"] == pytest.approx(-0.2 - 0.01 - 1.0)
    assert scores["refund"] == pytest.approx(-2.0)  # "ref" begins refund only (report has no "f" there)
    # " " after "report" also continues both report labels: a shared branch not followed, less likely.
    assert max(scores, key=scores.get) == "report_lost_card"


def test_an_answer_that_stops_inside_a_shared_beginning_is_unresolved():
    scores, unresolved = label_scores([("report", [("report", -0.1), ("ref", -3.0)])], LONG)
    assert unresolved and scores == {"refund": -3.0}
    # the likeliest path leads to one label at once: resolved, whatever the shared branch holds
    _, unresolved = label_scores([("ref", [("ref", -0.1), ("report", -3.0)])], LONG)
    assert not unresolved


def test_case_and_separators_do_not_split_a_label():
    steps = [("Report", [("Report", -0.3)]), (" Lost", [(" Lost", -0.2), (" fraud", -2.0)])]
    scores, unresolved = label_scores(steps, LONG)
    assert not unresolved and set(scores) == {"report_lost_card", "report_fraud"}
    assert scores["report_lost_card"] == pytest.approx(-0.5)


def test_score_depth_reads_past_the_longest_shared_beginning():
    assert score_depth("smollm2-135m-instruct", LABELS) == 1  # first letters differ: one token
    # "report " is a word and a separator locally (tokenizer unknown), plus the deciding token and one spare
    assert score_depth("smollm2-135m-instruct", LONG) == 4
    # tiktoken knows gpt-4o-mini's tokens exactly: one past the shared tokens of "billing_"
    shared = len(_common(*(encoding_for("gpt-4o-mini-2024-07-18")[0].encode_ordinary(x)
                           for x in ("billing_dispute", "billing_question"))))
    assert shared >= 1
    assert score_depth("gpt-4o-mini-2024-07-18", ["billing_dispute", "billing_question", "refund"]) == shared + 1


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
