"""One example through OpenAI's encoding and SmolLM2's tokenizer, and the loss mask the
local trainer builds, decoded."""
import pytest

from ftutils.data import tokenizers
from ftutils.data.tokens import count_example

EXAMPLE = {"messages": [{"role": "system", "content": "Classify the message."},
                        {"role": "user", "content": "my card was declined at the store"},
                        {"role": "assistant", "content": "card_declined"}]}


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    return tokenizers.local_tokenizer(tmp_path_factory.mktemp("data"))


def test_both_tokenizers_count_the_same_example(tokenizer):
    frame = tokenizers.compare(EXAMPLE, "gpt-4o-mini-2024-07-18", tokenizer)
    openai, local = frame.to_dict("records")
    assert openai["tokenizer"].startswith("o200k_base") and local["tokenizer"].startswith("SmolLM2")
    assert openai["example_tokens"] == count_example(EXAMPLE, "gpt-4o-mini-2024-07-18").total
    pieces = eval(local["user_pieces"])  # a list of the pieces, as shown
    assert "".join(pieces) == "my card was declined at the store" and len(pieces) == local["user_tokens"]
    assert local["example_tokens"] > local["user_tokens"]


def test_the_loss_covers_the_answer_and_the_end_of_turn_only(tokenizer):
    mask = tokenizers.loss_mask(EXAMPLE, tokenizer)
    trained = "".join(mask.loc[mask["trained"], "token"])
    assert trained == "card_declined<|im_end|>"
    shown = tokenizers.describe_mask(mask)
    assert shown.endswith("[<|im_end|>]\n") or shown.endswith("[<|im_end|>]")
    assert "my card was declined at the store" in shown and "[my" not in shown
