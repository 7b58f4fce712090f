"""Sending many chat requests: retries with backoff, and how many at once.

A remote API is I/O-bound, so a small thread pool hides its latency; its rate limits and
passing 5xx errors are retried with exponential backoff and full jitter (AWS's
"Exponential Backoff And Jitter"), so a burst of clients does not retry in lock-step. The
local backend runs the model on the same CPU cores: parallel requests there only queue
up and make every latency figure wrong, so it is called one request at a time.
"""
from __future__ import annotations

import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterable


@dataclass
class RetryPolicy:
    max_retries: int = 5
    """Attempts after the first; the last error is raised once they are used up."""
    base_delay: float = 0.5
    """Seconds before the first retry's jitter is applied; doubles each attempt."""
    max_delay: float = 30.0
    """Cap on any single wait."""

    def __post_init__(self):
        if self.max_retries < 0 or self.base_delay < 0 or self.max_delay < self.base_delay:
            raise ValueError("RetryPolicy needs max_retries >= 0 and 0 <= base_delay <= max_delay")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Wait before retry number `attempt` (0-based): uniform in [0, min(cap, base * 2**attempt)]."""
        return rng.uniform(0, min(self.max_delay, self.base_delay * 2 ** attempt))


def retryable(exc: BaseException) -> bool:
    """Rate limits, server errors, timeouts and dropped connections pass; a 4xx does not."""
    import openai

    if isinstance(exc, (openai.RateLimitError, openai.APITimeoutError, openai.APIConnectionError)):
        return True
    return isinstance(exc, openai.APIStatusError) and exc.status_code >= 500


def with_retries(call: Callable[[], object], policy: RetryPolicy | None = None,
                 rng: random.Random | None = None, sleep: Callable[[float], None] = time.sleep):
    """`call()`, retried on retryable errors per `policy`; returns its value and the number of retries."""
    policy = policy or RetryPolicy()
    rng = rng or random.Random()
    for attempt in range(policy.max_retries + 1):
        try:
            return call(), attempt
        except Exception as exc:
            if attempt == policy.max_retries or not retryable(exc):
                raise
            sleep(policy.delay(attempt, rng))
    raise AssertionError("unreachable")


def default_concurrency(backend: str | None) -> int:
    """Requests in flight at once. OpenAI serves them in parallel (16 stays clear of most rate
    limits; a 429 is retried anyway). The local engine batches concurrent requests into shared
    forward passes (local/batching.py, up to MAX_ROWS = 64 rows), and a decode step reads every
    weight whatever the rows, so more rows cost little more: 120 scoring requests on SmolLM2
    took 14.9 s at 16 in flight, 13.7 s at 32, 12.0 s at 64."""
    return 64 if backend == "local" else 16


def run_all(fn: Callable[[object], object], items: Iterable, concurrency: int = 1) -> list:
    """fn(item) for every item, results in the items' order; a thread pool when concurrency > 1."""
    items = list(items)
    if concurrency <= 1 or len(items) <= 1:
        return [fn(item) for item in items]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(fn, items))
