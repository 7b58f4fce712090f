"""Chats to tokens and labels: the loss covers exactly what OpenAI trains."""
from __future__ import annotations

import itertools

import pytest

from ftutils.local.models import chat_format, loading


@pytest.fixture(scope="module")
def tokenizer(ml_data_dir):
    return loading.load_base("tiny-smollm2", ml_data_dir)[1]


def trained_text(tokenizer, encoded):
    """The decoded runs of labelled tokens, one string per contiguous run."""
    runs = itertools.groupby(zip(encoded.input_ids, encoded.labels), key=lambda pair: pair[1] != chat_format.IGNORE)
    return [tokenizer.decode([label for _, label in run]) for inside, run in runs if inside]


def test_loss_covers_exactly_the_weighted_assistant_turns(tokenizer):
    messages = [{"role": "system", "content": "Be brief."},
                {"role": "user", "content": "Say hi ü"},
                {"role": "assistant", "content": "Hi there, 你好!"},
                {"role": "user", "content": "Again"},
                {"role": "assistant", "content": "SKIPPED ANSWER", "weight": 0},
                {"role": "user", "content": "Call the tool"},
                {"role": "assistant", "content": None,
                 "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{\"q\": 1}"}}]}]
    encoded = chat_format.encode(tokenizer, messages, max_length=1024)

    assert trained_text(tokenizer, encoded) == [
        "Hi there, 你好!<|im_end|>", '{"name": "lookup", "arguments": "{\\"q\\": 1}"}<|im_end|>']
    full = tokenizer.decode(encoded.input_ids)
    assert full == chat_format.render(tokenizer, chat_format.normalize_messages(messages))
    masked = tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label == chat_format.IGNORE])
    for text in ("Be brief.", "Say hi ü", "SKIPPED ANSWER", "<|im_start|>assistant\n", "Again"):
        assert text in masked
    assert encoded.labels[-1] == chat_format.IGNORE  # the newline after <|im_end|>
    assert not encoded.truncated


def test_default_system_prompt_is_masked_and_truncation_is_flagged(tokenizer):
    messages = [{"role": "user", "content": "word " * 50}, {"role": "assistant", "content": "done"}]
    encoded = chat_format.encode(tokenizer, messages, max_length=1024)
    assert trained_text(tokenizer, encoded) == ["done<|im_end|>"]
    assert "SmolLM" in tokenizer.decode(encoded.input_ids)  # the template's own system prompt
    short = chat_format.encode(tokenizer, messages, max_length=20)
    assert short.truncated and len(short.input_ids) == 20 and short.n_trained == 0
