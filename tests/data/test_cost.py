"""ftutils.data.cost: billed tokens and dollars, checked against tiktoken counts made here."""
from __future__ import annotations

import pytest
import tiktoken

from ftutils.data import cost, tokens
from ftutils.data.validate import validate_examples
from ftutils.openai_rules import HyperparameterError, auto_n_epochs


def _examples(n, words=12):
    return [{"messages": [{"role": "system", "content": "You label tickets."},
                          {"role": "user", "content": " ".join(f"word{i}x{k}" for k in range(words))},
                          {"role": "assistant", "content": "billing" if i % 2 else "refund"}]} for i in range(n)]


def _by_hand(example, encoding) -> int:
    """The cookbook's count: 3 per message + role + content, 3 to prime the reply."""
    return 3 + sum(3 + len(encoding.encode(m["role"])) + len(encoding.encode(m["content"])) for m in example["messages"])


def test_cost_matches_a_count_made_with_tiktoken_directly():
    examples = _examples(20)
    enc = tiktoken.get_encoding("o200k_base")
    per_epoch = sum(_by_hand(e, enc) for e in examples)
    est = cost.estimate_cost(examples, "gpt-4o-mini-2024-07-18")
    assert est.n_examples == 20
    assert est.n_epochs == auto_n_epochs(20) == 5  # 20 x 3 < 100 billed passes, so OpenAI raises the epochs
    assert est.tokens_per_epoch == per_epoch
    assert est.billed_tokens == 5 * per_epoch
    assert est.usd == pytest.approx(5 * per_epoch * 3.00 / 1e6, abs=1e-4)
    assert (est.price_per_million, est.price_date, est.model) == (3.00, cost.PRICE_DATE, "gpt-4o-mini-2024-07-18")
    assert est.note is None


def test_cl100k_models_count_with_their_own_encoding():
    examples = _examples(12)
    enc = tiktoken.get_encoding("cl100k_base")
    est = cost.estimate_cost(examples, "gpt-3.5-turbo-0125", n_epochs=2)
    assert est.tokens_per_epoch == sum(_by_hand(e, enc) for e in examples)
    assert est.usd == pytest.approx(2 * est.tokens_per_epoch * 8.00 / 1e6, abs=1e-4)


def test_each_example_is_billed_at_most_the_training_limit():
    limit = tokens.MODEL_LIMITS["tiny-smollm2"].max_training_tokens
    examples = _examples(10) + _examples(1, words=2000)  # one example far past the limit
    short = cost.estimate_cost(examples[:10], "tiny-smollm2", n_epochs=1).tokens_per_epoch
    est = cost.estimate_cost(examples, "tiny-smollm2", n_epochs=1)
    assert tokens.count_example(examples[-1], "tiny-smollm2").total > limit
    assert est.tokens_per_epoch == short + limit
    assert est.usd == 0.0 and est.price_per_million == 0.0
    assert "approximation" in est.note  # the local model's tokenizer is not o200k: said, not hidden


def test_report_and_token_stats_give_the_same_estimate_as_examples():
    examples = _examples(30)
    direct = cost.estimate_cost(examples, "gpt-4.1-mini-2025-04-14", n_epochs=3)
    from_stats = cost.estimate_cost(tokens.token_stats(examples, "gpt-4.1-mini"), "gpt-4.1-mini-2025-04-14", n_epochs=3)
    from_report = cost.estimate_cost(validate_examples(examples, model="gpt-4.1-mini-2025-04-14"),
                                     "gpt-4.1-mini-2025-04-14", n_epochs=3)
    assert direct == from_stats == from_report
    assert direct.usd == pytest.approx(direct.billed_tokens * 5.00 / 1e6, abs=1e-4)


def test_counts_made_for_another_tokenizer_are_refused():
    stats = tokens.token_stats(_examples(10), "gpt-3.5-turbo-0125")
    with pytest.raises(ValueError, match="counted for 'gpt-3.5-turbo-0125'"):
        cost.estimate_cost(stats, "gpt-4o-mini-2024-07-18")
    report = validate_examples(_examples(10), model="gpt-3.5-turbo-0125")
    with pytest.raises(ValueError, match="validate again"):
        cost.estimate_cost(report, "gpt-4o-2024-08-06")


def test_price_table_lookup_and_edits(monkeypatch):
    assert cost.price_for("gpt-4o-mini") == ("gpt-4o-mini-2024-07-18", 3.00)
    assert cost.price_for("ft:gpt-4o-2024-08-06:acme:v1:abc123") == ("gpt-4o-2024-08-06", 25.00)
    expected = {"gpt-4o-mini-2024-07-18": 3.00, "gpt-4o-2024-08-06": 25.00, "gpt-4.1-2025-04-14": 25.00,
                "gpt-4.1-mini-2025-04-14": 5.00, "gpt-4.1-nano-2025-04-14": 1.50, "gpt-3.5-turbo-0125": 8.00}
    assert {m: cost.PRICES[m] for m in expected} == expected
    with pytest.raises(ValueError, match="no training price known for 'gpt-9'.*PRICES\\['gpt-9'\\]"):
        cost.estimate_cost(_examples(10), "gpt-9")
    monkeypatch.setitem(cost.PRICES, "gpt-4o-mini-2024-07-18", 6.00)  # a notebook correcting a stale price
    est = cost.estimate_cost(_examples(10), "gpt-4o-mini-2024-07-18", n_epochs=1)
    assert est.usd == pytest.approx(est.billed_tokens * 6.00 / 1e6, abs=1e-4)


@pytest.mark.parametrize("epochs", [0, 51, 2.5, "three"])
def test_epochs_outside_openai_range_are_rejected(epochs):
    with pytest.raises(HyperparameterError) as err:
        cost.estimate_cost(_examples(10), "gpt-4o-mini", n_epochs=epochs)
    assert err.value.param == "hyperparameters.n_epochs"


def test_str_shows_the_arithmetic():
    text = str(cost.estimate_cost(_examples(10), "gpt-4o-mini", n_epochs=2))
    assert "10 examples x 2 epoch(s)" in text and "$3.00/1M" in text and cost.PRICE_DATE in text
