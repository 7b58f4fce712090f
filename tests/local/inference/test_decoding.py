"""Tokens into text: bytes of multi-byte characters held back until they complete."""
from __future__ import annotations

import pytest

from ftutils.local.inference.decoding import ChoiceText, Vocab
from ftutils.local.models import loading


@pytest.fixture(scope="module")
def tokenizer(ml_data_dir):
    return loading.load_tokenizer("tiny-smollm2", ml_data_dir)


def test_multibyte_characters_split_across_tokens_decode_whole(tokenizer):
    vocab = Vocab(tokenizer)
    ids = tokenizer("你好 ü", add_special_tokens=False)["input_ids"]
    assert b"".join(vocab.bytes(i) for i in ids) == "你好 ü".encode()
    state = ChoiceText(stops=[], want_logprobs=False)
    deltas = [state.push(i, None, vocab, final=False).text for i in ids]
    assert "".join(deltas) == "你好 ü"
    assert "" in deltas and "\ufffd" not in "".join(deltas)  # partial characters were held back, not mangled
    partial = vocab.logprob(ids[0], -0.5, [])
    assert partial.bytes == list(vocab.bytes(ids[0])) and "\\x" in partial.token
