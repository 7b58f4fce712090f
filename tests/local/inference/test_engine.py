"""Sampling from the tiny model and a LoRA fine-tune of it."""
from __future__ import annotations

import threading

import pytest

from ftutils.local.inference.engine import InferenceEngine, InferenceError
from ftutils.local.models import loading

TINY = "tiny-smollm2"
ASK = [{"role": "user", "content": "Is 5 a number?"}]


@pytest.fixture(scope="module")
def engine(ml_data_dir):
    return InferenceEngine(ml_data_dir)


def test_greedy_is_deterministic_and_its_logprobs_are_the_top_ones(engine):
    first = engine.generate(TINY, None, ASK, temperature=0, max_tokens=8, logprobs=True, top_logprobs=5)
    second = engine.generate(TINY, None, ASK, temperature=0, max_tokens=8, logprobs=True, top_logprobs=5)
    choice = first.choices[0]
    assert choice == second.choices[0]
    assert (choice.finish_reason, first.completion_tokens, len(choice.logprobs)) == ("length", 8, 8)
    tokenizer = engine.model(TINY)[1]
    prompt = tokenizer.apply_chat_template(ASK, tokenize=False, add_generation_prompt=True)
    assert first.prompt_tokens == len(tokenizer(prompt, add_special_tokens=False)["input_ids"])
    for entry in choice.logprobs:
        values = [lp for _, lp, _ in entry.top_logprobs]
        assert len(values) == 5 and values == sorted(values, reverse=True) and values[0] <= 0
        assert (entry.top_logprobs[0][0], entry.top_logprobs[0][2]) == (entry.token, entry.bytes)
        assert entry.logprob == pytest.approx(values[0])
    assert b"".join(bytes(e.bytes) for e in choice.logprobs).decode("utf-8", errors="replace") == choice.text


def test_seed_makes_sampling_reproducible(engine):
    def sample(seed):
        result = engine.generate(TINY, None, ASK, temperature=1.0, seed=seed, n=2, max_tokens=12)
        return [c.text for c in result.choices]
    texts = sample(11)
    assert texts == sample(11)
    assert texts != sample(12)
    assert texts[0] != texts[1]  # the n choices are separate samples


def test_tiny_top_p_keeps_only_the_most_likely_token(engine):
    greedy = engine.generate(TINY, None, ASK, temperature=0, max_tokens=10).choices[0].text
    nucleus = engine.generate(TINY, None, ASK, temperature=1.5, top_p=1e-6, seed=1, max_tokens=10).choices[0].text
    assert nucleus == greedy


def test_stop_string_cuts_the_text_in_generate_and_stream(engine):
    greedy = engine.generate(TINY, None, ASK, temperature=0, max_tokens=12).choices[0].text
    stop, other = greedy[5:8], greedy[7:10]
    expected = greedy[:min(greedy.find(stop), greedy.find(other))]
    cut = engine.generate(TINY, None, ASK, temperature=0, max_tokens=12, stop=["never-there", other, stop])
    assert (cut.choices[0].text, cut.choices[0].finish_reason) == (expected, "stop")  # the earliest stop wins
    deltas = list(engine.stream(TINY, None, ASK, temperature=0, max_tokens=12, stop=[stop, other]))
    assert "".join(d.text for d in deltas) == expected
    assert [d.finish_reason for d in deltas][-1] == "stop" and all(d.finish_reason is None for d in deltas[:-1])


def test_stream_yields_what_generate_returns(engine):
    whole = engine.generate(TINY, None, ASK, temperature=0.8, seed=3, max_tokens=10, logprobs=True, top_logprobs=2)
    deltas = list(engine.stream(TINY, None, ASK, temperature=0.8, seed=3, max_tokens=10, logprobs=True, top_logprobs=2))
    assert "".join(d.text for d in deltas) == whole.choices[0].text
    assert [lp for d in deltas for lp in d.logprobs] == whole.choices[0].logprobs
    last = deltas[-1]
    assert (last.finish_reason, last.prompt_tokens, last.completion_tokens) == ("length", whole.prompt_tokens, 10)


def test_the_fine_tune_answers_as_trained_and_stops(engine, adapter):
    tuned = engine.generate(TINY, adapter, ASK, temperature=0, max_tokens=5, logprobs=True, top_logprobs=3)
    base = engine.generate(TINY, None, ASK, temperature=0, max_tokens=5, logprobs=True, top_logprobs=3)
    assert (tuned.choices[0].text, tuned.choices[0].finish_reason) == ("yes", "stop")
    assert tuned.completion_tokens == 2  # "yes" and the end-of-turn token
    assert [e.token for e in tuned.choices[0].logprobs] == ["yes"]  # the end token is not listed
    assert base.choices[0].text != "yes"
    assert base.choices[0].logprobs[0].top_logprobs != tuned.choices[0].logprobs[0].top_logprobs
    other = [{"role": "user", "content": "Is 12 a number?"}]
    assert engine.generate(TINY, adapter, other, temperature=0, max_tokens=5).choices[0].text == "yes"


def test_fine_tunes_are_cached_up_to_max_cached(ml_data_dir, adapter):
    engine = InferenceEngine(ml_data_dir, max_cached=1)
    checkpoint = adapter.parent / "checkpoints" / "step-5"
    early = engine.generate(TINY, checkpoint, ASK, temperature=0, max_tokens=4).choices[0].text
    late = engine.generate(TINY, adapter, ASK, temperature=0, max_tokens=4).choices[0].text
    assert engine.cached_fine_tunes == 1
    assert engine.generate(TINY, checkpoint, ASK, temperature=0, max_tokens=4).choices[0].text == early
    assert late == "yes"
    base_weight = engine.model(TINY)[0].model.layers[0].self_attn.q_proj.weight
    assert base_weight.equal(loading.tiny_model().model.layers[0].self_attn.q_proj.weight)  # merging left the base alone


def test_concurrent_requests_get_their_own_answers(engine, adapter):
    expected = {None: engine.generate(TINY, None, ASK, temperature=0, max_tokens=6).choices[0].text, adapter: "yes"}
    got, errors = {}, []

    def ask(which):
        try:
            got[which] = engine.generate(TINY, which, ASK, temperature=0, max_tokens=6).choices[0].text
        except Exception as e:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(e)
    threads = [threading.Thread(target=ask, args=(which,)) for which in expected]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and got == expected


def test_bad_requests_raise_with_the_openai_param(engine):
    with pytest.raises(InferenceError) as error:
        engine.generate(TINY, None, [{"role": "user", "content": "word " * 9000}], max_tokens=5)
    assert (error.value.param, error.value.code) == ("messages", "context_length_exceeded")
    for kwargs, param in (({"temperature": 3}, "temperature"), ({"top_p": 0}, "top_p"), ({"n": 0}, "n"),
                          ({"top_logprobs": 21, "logprobs": True}, "top_logprobs"), ({"max_tokens": 0}, "max_tokens")):
        with pytest.raises(InferenceError) as error:
            engine.generate(TINY, None, ASK, **kwargs)
        assert error.value.param == param
    with pytest.raises(InferenceError):
        engine.stream(TINY, None, ASK, n=2)  # raised at the call, before any delta
