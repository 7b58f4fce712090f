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
from ftutils.evaluate.classify import label_scores, normalize_answer, score_depth

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


def test_a_one_token_label_and_the_alternatives_that_begin_one_label_only():
    top = [("b", -1.0), ("Bill", -2.0), (" refund", -0.5), ("x", -3.0), ("s", -4.0)]
    scores, unresolved = label_scores(_first(top) + [("<", [("<", -0.1)])], ["billing", "refund", "shipping"])
    assert scores["refund"] == pytest.approx(-0.5)  # the answer spelled it whole, then left it: done at "refund"
    assert scores["billing"] == pytest.approx(math.log(math.exp(-1) + math.exp(-2)))
    assert scores["shipping"] == pytest.approx(-4.0)
    assert None not in scores and not unresolved


LONG = ["report_fraud", "report_lost_card", "refund"]


def test_labels_sharing_a_beginning_are_scored_where_they_differ():
    steps = [("report", [("report", -0.2), ("ref", -2.0)]),
             ("_", [("_", -0.01), (" ", -5.0)]),
             ("lost", [("lost", -0.5), ("f", -1.0), ("x", -3.0)]),
             ("_card", [("_card", -0.001)])]
    scores, unresolved = label_scores(steps, LONG)
    assert not unresolved
    assert scores["report_lost_card"] == pytest.approx(-0.2 - 0.01 - 0.5 - 0.001)  # the whole path
    assert scores["report_fraud"] == pytest.approx(-0.2 - 0.01 - 1.0)  # up to where it branched off
    assert scores["refund"] == pytest.approx(-2.0)  # "ref" begins refund only
    assert max(scores, key=scores.get) == "report_lost_card"


def test_an_answer_that_leaves_every_label_is_no_label():
    # "damaged" begins damaged_card only, but the answer goes on "_meal": no label, as generation says
    steps = [("damaged", [("damaged", -0.1), ("new", -3.0)]), ("_meal", [("_meal", -0.4), ("_card", -1.5)])]
    scores, unresolved = label_scores(steps, ["damaged_card", "new_card"])
    assert not unresolved and max(scores, key=scores.get) is None
    assert scores[None] == pytest.approx(-0.5) and scores["damaged_card"] == pytest.approx(-1.6)
    # prose from the first token: no label either, whatever label tokens were less likely
    scores, _ = label_scores([("The", [("The", -0.3), ("new", -2.0)])], ["damaged_card", "new_card"])
    assert max(scores, key=scores.get) is None and scores["new_card"] == -2.0


def test_an_answer_cut_off_inside_a_label_is_unresolved_and_one_that_stopped_there_is_no_label():
    steps = [("report", [("report", -0.1), ("ref", -3.0)])]
    assert label_scores(steps, LONG, ended=False)[1]
    scores, unresolved = label_scores(steps, LONG, ended=True)
    assert not unresolved and max(scores, key=scores.get) is None


def test_a_label_that_a_longer_one_begins_needs_the_end_of_the_answer():
    labels = ["card", "card_declined"]
    steps = [("card", [("card", -0.2), ("c", -2.0)])]
    assert label_scores(steps, labels, ended=True) == ({"card": pytest.approx(-0.2)}, False)
    scores, _ = label_scores(steps + [("_declined", [("_declined", -0.1)])], labels)
    assert max(scores, key=scores.get) == "card_declined"


def test_case_and_separators_do_not_split_a_label():
    steps = [("Report", [("Report", -0.3)]), (" Lost", [(" Lost", -0.2), (" fraud", -2.0)]), (" card", [(" card", -0.1)])]
    scores, unresolved = label_scores(steps, LONG)
    assert not unresolved and scores["report_lost_card"] == pytest.approx(-0.6)
    assert scores["report_fraud"] == pytest.approx(-2.3)


def test_score_depth_is_the_longest_label_and_one_more():
    # the local tokenizer is not known here: a word or a separator per token
    assert score_depth("smollm2-135m-instruct", LONG) == 1 + 5  # report _ lost _ card
    # tiktoken knows gpt-4o-mini's tokens exactly
    encoding = encoding_for("gpt-4o-mini-2024-07-18")[0]
    assert score_depth("gpt-4o-mini-2024-07-18", LONG) == 1 + max(len(encoding.encode_ordinary(x)) for x in LONG)


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
