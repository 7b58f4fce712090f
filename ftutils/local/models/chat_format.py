"""Chat examples to token ids and labels, with the loss only where OpenAI puts it.

OpenAI trains on assistant messages (those with `weight` 1, the default) and nothing
else. SmolLM2's chat template has no `{% generation %}` markers, so the spans come from
rendering prefixes of the conversation: the text an assistant message adds after its
`<|im_start|>assistant\\n` header, up to and including the end-of-turn token, is trained.
One tokenization of the whole text (with character offsets) then maps spans to tokens,
so the ids are exactly those the model sees at inference (`render` is what inference
prompts with, `encode` what training learns from, and `ftutils.data.tokenizers` shows both).
"""
from __future__ import annotations

import json
from dataclasses import dataclass

IGNORE = -100  # the label cross-entropy skips


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]
    truncated: bool
    """The conversation was longer than max_length and lost its end."""

    @property
    def n_trained(self) -> int:
        return sum(label != IGNORE for label in self.labels)


def normalize_messages(messages: list[dict]) -> list[dict]:
    """Messages the template can render: string contents, tool calls written as text.

    The local models have no tool-calling format, so an assistant's `tool_calls` become
    JSON lines after its content (the model still learns to emit them) and content
    parts are joined into one string.
    """
    out = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(part.get("text", "") for part in content if isinstance(part, dict))
        content = content or ""
        calls = message.get("tool_calls") or []
        if message.get("function_call"):
            calls = [*calls, {"function": message["function_call"]}]
        lines = [json.dumps({"name": c.get("function", {}).get("name"), "arguments": c.get("function", {}).get("arguments")})
                 for c in calls]
        content = "\n".join(([content] if content else []) + lines)
        out.append({"role": message.get("role", "user"), "content": content,
                    "weight": message.get("weight", 1)})
    return out


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    bare = [{"role": m["role"], "content": m["content"]} for m in messages]
    return tokenizer.apply_chat_template(bare, tokenize=False, add_generation_prompt=add_generation_prompt)


def trained_spans(tokenizer, messages: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    """The rendered conversation and the character spans the loss covers."""
    messages = normalize_messages(messages)
    text = render(tokenizer, messages)
    eos = tokenizer.eos_token or ""
    spans = []
    for i, message in enumerate(messages):
        if message["role"] != "assistant" or not message["weight"]:
            continue
        upto = render(tokenizer, messages[: i + 1])
        if i:
            header = render(tokenizer, messages[:i], add_generation_prompt=True)
        else:  # an example that opens with the assistant: the template cannot render zero messages
            header = _header_before_first(tokenizer, messages[0])
        start, end = len(header), len(upto)
        if not (text.startswith(header) and text.startswith(upto)):
            raise ValueError("the chat template does not render conversations prefix by prefix; "
                             "cannot tell which tokens are the assistant's")
        # The template closes a turn with "<|im_end|>\n": train on the end-of-turn token
        # (the model must learn to stop) but not on the separator after it.
        close = text.rfind(eos, start, end) if eos else -1
        if close >= 0:
            end = close + len(eos)
        spans.append((start, end))
    return text, spans


def _header_before_first(tokenizer, message: dict) -> str:
    """What the template renders before the content of a conversation's first message (its
    default system prompt and the turn header), found by rendering a marker in its place."""
    marker = "\ue000ftutils-content\ue000"  # private-use characters: in no real text
    text = render(tokenizer, [{**message, "content": marker}])
    at = text.find(marker)
    if at < 0:
        raise ValueError("the chat template drops the message content; cannot tell which tokens are the assistant's")
    return text[:at]


def encode(tokenizer, messages: list[dict], max_length: int) -> Encoded:
    """Token ids and labels (IGNORE outside the trained spans), cut to max_length."""
    text, spans = trained_spans(tokenizer, messages)
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    labels = []
    for token_id, (lo, hi) in zip(enc["input_ids"], enc["offset_mapping"]):
        # Overlap rather than containment: a token that straddles a span edge carries
        # answer text, and dropping it would leave a hole in what the model learns.
        inside = any(lo < end and hi > start for start, end in spans)
        labels.append(token_id if inside else IGNORE)
    ids = list(enc["input_ids"])
    truncated = len(ids) > max_length
    return Encoded(ids[:max_length], labels[:max_length], truncated)


def pad_batch(examples: list[Encoded], pad_id: int):
    """(input_ids, attention_mask, labels) tensors, right-padded to the longest example."""
    import torch

    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        mask[row, :n] = 1
        labels[row, :n] = torch.tensor(e.labels)
    return ids, mask, labels
