"""What a fine-tuning job will cost before it is started.

OpenAI bills training tokens: every token of the training file, once per epoch, with each
example counted at most up to the model's training limit (longer ones are truncated).
Prices change; the table is dated so a reader can tell how stale it is, and it is a plain
dict so a notebook can correct it (`cost.PRICES["gpt-4o-mini-2024-07-18"] = ...`).
"""
from __future__ import annotations

from dataclasses import dataclass

from ftutils import openai_rules
from ftutils.openai_rules import auto_n_epochs, check
from ftutils.data import tokens
from ftutils.local.models import catalog

PRICE_DATE = openai_rules.PRICE_DATE
# USD per 1M training tokens: OpenAI's (`openai_rules.TRAINING_PRICES`), then the local
# backend's bases (their catalog's price: they train on your own CPU).
PRICES: dict[str, float] = {**openai_rules.TRAINING_PRICES,
                            **{m.id: m.price_per_million for m in catalog.local_models()}}


@dataclass(frozen=True)
class CostEstimate:
    n_examples: int
    n_epochs: int
    tokens_per_epoch: int
    """Tokens of the training file, each example capped at the training limit."""
    billed_tokens: int
    """tokens_per_epoch x n_epochs: what OpenAI charges for."""
    usd: float
    price_per_million: float
    price_date: str
    model: str = ""
    note: str | None = None
    """Set when the token count is an approximation (a model with its own tokenizer)."""

    def __str__(self) -> str:
        text = (f"{self.model}: {self.n_examples:,} examples x {self.n_epochs} epoch(s) x "
                f"{self.tokens_per_epoch:,} tokens/epoch = {self.billed_tokens:,} billed tokens "
                f"at ${self.price_per_million:.2f}/1M = ${self.usd:,.2f} (prices of {self.price_date})")
        return f"{text}\nnote: {self.note}" if self.note else text


def price_for(model: str) -> tuple[str, float]:
    """(priced model id, USD per 1M training tokens); "gpt-4o-mini" finds its dated id."""
    base = tokens.base_model(model)
    if base in PRICES:
        return base, PRICES[base]
    matches = [known for known in PRICES if known.startswith(base + "-")]
    if len(matches) == 1:
        return matches[0], PRICES[matches[0]]
    known = ", ".join(PRICES)
    raise ValueError(f"no training price known for {model!r}; known: {known}. "
                     f"Add it: ftutils.data.cost.PRICES[{base!r}] = <USD per 1M tokens>")


def _same_counting(a: str | None, b: str) -> bool:
    """True when counts made for model `a` hold for `b` (same encoding and limit), so
    "gpt-4o-mini" and "gpt-4o-mini-2024-07-18" are interchangeable."""
    return a is None or tokens.limits_for(a)[0] == tokens.limits_for(b)[0]


def _per_epoch(examples_or_stats, model: str) -> tuple[int, int, str | None]:
    """(n_examples, billed tokens per epoch, note) from examples, token_stats() or a ValidationReport."""
    limits, limit_note = tokens.limits_for(model)
    if hasattr(examples_or_stats, "tokens") and hasattr(examples_or_stats, "findings"):  # ValidationReport
        report = examples_or_stats
        if not _same_counting(report.model, model):
            raise ValueError(f"the report counted tokens for {report.model!r}, not {model!r}; "
                             f"validate again with model={model!r}")
        t = report.tokens
        if not t.get("n"):
            raise ValueError("the report has no token counts (the file had no valid examples)")
        return t["n"], t["billed_per_epoch"], limit_note
    if hasattr(examples_or_stats, "columns"):  # token_stats() DataFrame
        stats = examples_or_stats
        if "n_tokens" not in stats.columns:
            raise ValueError("expected token_stats() output with an 'n_tokens' column, "
                             f"got columns {list(stats.columns)}")
        counted_for = stats.attrs.get("model")
        if not _same_counting(counted_for, model):
            raise ValueError(f"the stats were counted for {counted_for!r}, not {model!r}")
        return len(stats), int(stats["n_tokens"].clip(upper=limits.max_training_tokens).sum()), stats.attrs.get("note")
    counter = tokens.TokenCounter(model)
    billed = n = 0
    for example in examples_or_stats:
        billed += min(tokens.count_example(example, counter=counter).total, limits.max_training_tokens)
        n += 1
    note = "; ".join(x for x in (counter.note, limit_note) if x) or None
    return n, billed, note


def estimate_cost(examples_or_stats, model: str, n_epochs: int | str = "auto") -> CostEstimate:
    """Training cost of a file for `model`.

    `examples_or_stats`: the examples, `tokens.token_stats(...)`'s DataFrame, or a
    `ValidationReport` (which already counted them). "auto" epochs resolve exactly as
    OpenAI's do (`ftutils.openai_rules.auto_n_epochs`).
    """
    priced, price = price_for(model)
    n, per_epoch, note = _per_epoch(examples_or_stats, model)
    if n_epochs == "auto":
        epochs = auto_n_epochs(n)
    else:
        check(n_epochs=n_epochs)
        epochs = int(n_epochs)
    billed = per_epoch * epochs
    return CostEstimate(n, epochs, per_epoch, billed, round(billed * price / 1e6, 4), price, PRICE_DATE, priced, note)
