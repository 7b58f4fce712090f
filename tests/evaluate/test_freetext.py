"""Free-text metrics, the judge's score parsing, and the judge through the real local server."""
from __future__ import annotations

import pytest

from ftutils.evaluate.freetext import (evaluate_freetext, exact_match, judge, normalize_text, normalized_match,
                                       parse_score, token_f1)


def test_matches_and_token_f1_by_hand():
    assert exact_match(" Paris ", "Paris") and not exact_match("paris", "Paris")
    assert normalize_text("The  Eiffel-Tower, in PARIS!") == "eiffeltower in paris"
    assert normalized_match("the cat sat.", "Cat sat") and not normalized_match("a dog sat", "cat sat")
    # answer: cat sat on mat (4 words), reference: cat sat on red mat (5): 4 common -> P 1, R 0.8.
    assert token_f1("The cat sat on the mat", "a cat sat on a red mat") == pytest.approx(2 * 0.8 / 1.8)
    assert token_f1("cat cat", "cat") == pytest.approx(2 * 0.5 * 1 / 1.5)
    assert token_f1("", "") == 1.0 and token_f1("x", "") == 0.0 and token_f1("dog", "cat") == 0.0


@pytest.mark.parametrize("text, score", [
    ("Score: 4", 4.0), ("score=2.5", 2.5), ("I'd say 3", 3.0), ("Score: 9", None),
    ("between 2 and 3", None), ("great answer", None), ("", None), ("5/5", None),
])
def test_parse_score(text, score):
    assert parse_score(text, 1, 5) == score


def test_evaluate_freetext_summary():
    rows, summary = evaluate_freetext(["Paris", "the cat", "blue"], ["Paris", "Cat", "red"], ids=["a", "b", "c"])
    assert rows["id"].tolist() == ["a", "b", "c"]
    assert rows["exact"].tolist() == [True, False, False] and rows["normalized"].tolist() == [True, True, False]
    assert summary == {"n": 3, "exact_match": pytest.approx(1 / 3), "normalized_match": pytest.approx(2 / 3),
                       "token_f1": pytest.approx(2 / 3)}
    with pytest.raises(ValueError, match="2 answers but 1 references"):
        evaluate_freetext(["a", "b"], ["a"])


@pytest.mark.slow
def test_judge_through_the_local_server_counts_unparseable_replies(client):
    # The random-weight model cannot grade, so its replies are what a confused judge says:
    # every reply must come back raw, and a score only when one can really be read from it.
    rows, summary = evaluate_freetext(["Paris", "Lyon"], ["Paris", "Paris"], ["Capital of France?"] * 2,
                                      client=client, judge_model="tiny-smollm2", backend="local")
    assert summary["judge_model"] == "tiny-smollm2"
    assert summary["judge_unparseable"] == int(rows["judge_score"].isna().sum())
    for raw, score in zip(rows["judge_raw"], rows["judge_score"]):
        assert isinstance(raw, str) and (score is None or score != score or score == parse_score(raw))
    one = judge(client, "tiny-smollm2", "Capital of France?", "Paris", "Paris")
    assert one.score == parse_score(one.raw)
