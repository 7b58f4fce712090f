"""The chat engine's dynamic batching (`ftutils.local.inference.scheduler`) on the tiny model: concurrent
requests share forward passes and get the answers they would get alone."""
from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ftutils.local.inference.engine import InferenceEngine

TINY = "tiny-smollm2"
SYSTEM = {"role": "system", "content": "Classify the support ticket into one word: billing, account, bug or shipping. "
                                       "Answer with the word only, in lower case, and nothing else at all."}
ITEMS = [[SYSTEM, {"role": "user", "content": f"Ticket {i}: {text}"}] for i, text in enumerate(
    ["My card was charged twice", "How do I reset my password?", "The app crashes on start", "Where is my parcel?",
     "I want a refund", "Please close my account", "Login code never arrives", "Do you ship to Norway?",
     "Hi", "The invoice shows the wrong VAT number and the wrong address, and it is late again", "?", "Cancel"])]


@pytest.fixture(scope="module")
def engine(ml_data_dir):
    return InferenceEngine(ml_data_dir)


def answers(engine, items, concurrent: bool, **kwargs):
    def one(messages):
        return engine.generate(TINY, None, messages, **kwargs)
    if not concurrent:
        return [one(m) for m in items]
    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(one, items))


def test_greedy_answers_are_identical_with_and_without_concurrency(engine):
    kwargs = dict(temperature=0, max_tokens=12, logprobs=True, top_logprobs=5)
    alone = answers(engine, ITEMS, False, **kwargs)
    before = engine.scheduler.max_batch
    together = answers(engine, ITEMS, True, **kwargs)
    assert engine.scheduler.max_batch > max(before, 1)  # they really were batched
    for a, b in zip(alone, together):
        assert a.choices[0].text == b.choices[0].text and a.choices[0].finish_reason == b.choices[0].finish_reason
        assert (a.prompt_tokens, a.completion_tokens) == (b.prompt_tokens, b.completion_tokens)
        assert [t.token for t in a.choices[0].logprobs] == [t.token for t in b.choices[0].logprobs]
        for x, y in zip(a.choices[0].logprobs, b.choices[0].logprobs):  # padding changes sums' order, no more
            assert x.logprob == pytest.approx(y.logprob, abs=1e-4)
            assert [t for t, _, _ in x.top_logprobs] == [t for t, _, _ in y.top_logprobs]
    assert engine.scheduler.prefixes.hits > 0  # the shared system prompt was prefilled once and reused


SHOTS = [{"role": "user", "content": "My card was charged twice"}, {"role": "assistant", "content": "billing"},
         {"role": "user", "content": "The app crashes on start"}, {"role": "assistant", "content": "bug"}]


def test_few_shot_turns_before_the_last_user_message_are_prefilled_once(engine):
    items = [[SYSTEM, *SHOTS, m[-1]] for m in ITEMS[:6]]
    kwargs = dict(temperature=0, max_tokens=4, logprobs=True, top_logprobs=3)
    hits = engine.scheduler.prefixes.hits
    cached = answers(engine, items, False, **kwargs)
    assert engine.scheduler.prefixes.hits == hits + len(items) - 1  # system and shots prefilled once for all six
    fresh = InferenceEngine(engine.data_dir)
    fresh.scheduler.prefixes.put = lambda *a, **k: None  # nothing kept: every prompt prefilled whole
    alone = answers(fresh, items, False, **kwargs)
    for a, b in zip(alone, cached):
        assert a.choices[0].text == b.choices[0].text
        for x, y in zip(a.choices[0].logprobs, b.choices[0].logprobs):
            assert x.logprob == pytest.approx(y.logprob, abs=1e-4)


def test_each_request_keeps_its_own_max_tokens_stop_and_sampling(engine):
    alone = [engine.generate(TINY, None, ITEMS[0], temperature=0, max_tokens=3),
             engine.generate(TINY, None, ITEMS[1], temperature=0, max_tokens=20, stop=[" "]),
             engine.generate(TINY, None, ITEMS[2], temperature=1.0, seed=5, n=3, max_tokens=6),
             engine.generate(TINY, None, ITEMS[3], temperature=0, max_tokens=1, logprobs=True, top_logprobs=20)]
    calls = [lambda: engine.generate(TINY, None, ITEMS[0], temperature=0, max_tokens=3),
             lambda: engine.generate(TINY, None, ITEMS[1], temperature=0, max_tokens=20, stop=[" "]),
             lambda: engine.generate(TINY, None, ITEMS[2], temperature=1.0, seed=5, n=3, max_tokens=6),
             lambda: engine.generate(TINY, None, ITEMS[3], temperature=0, max_tokens=1, logprobs=True, top_logprobs=20)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda f: f(), calls))
    for a, b in zip(alone, together):
        assert [c.text for c in a.choices] == [c.text for c in b.choices]
        assert [c.finish_reason for c in a.choices] == [c.finish_reason for c in b.choices]
    assert together[0].completion_tokens == 3 and " " not in together[1].choices[0].text
    assert len(together[2].choices) == 3 and len(together[3].choices[0].logprobs[0].top_logprobs) == 20


def test_streams_interleave_and_match_whole_answers(engine):
    whole = [engine.generate(TINY, None, m, temperature=0, max_tokens=10).choices[0].text for m in ITEMS[:4]]
    streamed = [None] * 4

    def read(i):
        streamed[i] = "".join(d.text for d in engine.stream(TINY, None, ITEMS[i], temperature=0, max_tokens=10))
    threads = [threading.Thread(target=read, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert streamed == whole
    # a stream the client stops reading leaves the batch; the engine goes on serving
    stream = engine.stream(TINY, None, ITEMS[5], temperature=0, max_tokens=200)
    next(stream)
    stream.close()
    assert engine.generate(TINY, None, ITEMS[0], temperature=0, max_tokens=10).choices[0].text == whole[0]


def test_fine_tunes_and_base_batch_per_model_with_the_lru(ml_data_dir, adapter):
    engine = InferenceEngine(ml_data_dir, max_cached=1)
    ask = [[{"role": "user", "content": f"Is {n} a number?"}] for n in (3, 12, 40, 77)]
    alone = [(engine.generate(TINY, adapter, m, temperature=0, max_tokens=4).choices[0].text,
              engine.generate(TINY, None, m, temperature=0, max_tokens=4).choices[0].text) for m in ask]
    jobs = [(a, m) for m in ask for a in (adapter, None)]
    with ThreadPoolExecutor(len(jobs)) as pool:
        got = list(pool.map(lambda j: engine.generate(TINY, j[0], j[1], temperature=0, max_tokens=4).choices[0].text,
                            jobs))
    assert [tuple(got[i:i + 2]) for i in range(0, len(got), 2)] == alone
    assert all(tuned == "yes" for tuned, _ in alone) and engine.cached_fine_tunes == 1
