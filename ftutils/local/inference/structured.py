"""`response_format` for chat completions: JSON by constrained decoding, as OpenAI promises it.

`{"type": "json_object"}` makes the answer one JSON object; `{"type": "json_schema",
"json_schema": {"name", "schema", "strict"}}` makes it conform to the schema. Each step the
inference engine asks a row's `JsonConstraint` to mask the logits (tokens that cannot continue
a valid answer get -inf) and tells it the token it sampled. Once the JSON is complete only
the end-of-turn tokens stay allowed, so the answer ends with finish_reason "stop"; an answer cut
by max_tokens ends with "length" and is incomplete JSON, as on OpenAI.

Why llguidance. Measured 2026-12-01 with `benchmarks/bench_structured.py --n 20 --max-tokens 200`
(one 6-field schema: bounded string, integer 0..150, enum, boolean, array maxItems 3, number|null;
20 sequences sampled from seeded random logits under each library's mask; SmolLM2's
49,152-token vocabulary; the shared 2-core CPU; each installed in a scratch venv over .venv):

| library (version) | install (s / size)           | compile | mask ms/token (median, p99) | valid |
|-------------------|------------------------------|---------|-----------------------------|-------|
| llguidance 1.9.1  | 7.3 s / 7.7 MB, no deps      | 8 ms    | 11.7, 26.5 (0.04 of a decode step) | 20/20 |
| xgrammar 0.2.9    | 48.6 s / 1015 MB (pulls triton, apache-tvm-ffi) | 58 ms | 8.5, 18.4 (0.03) | 18/20: raw control characters inside strings, which json.loads rejects |
| outlines-core 0.2.14 | 9.4 s / 5.3 MB            | 4.1 s   | 11.6, 68.0 (0.03)           | 8/20: minimum/maximum ignored (age 41679348); needs a hand-built byte vocabulary |
| lm-format-enforcer 0.11.3 | 13.5 s / 0.7 MB (+interegular) | 10 ms | 16.7, 87.5 (0.04) | 6/20: unbounded whitespace and raw control characters; its transformers integration fails to import on transformers 5 |

(a smollm2-135m decode step took 270-450 ms while other jobs shared the CPU.) llguidance is the
only one that produced 20/20 valid, conforming answers; it is small, has no dependencies,
compiles in milliseconds (a request's schema is compiled per request), reads a transformers 5
tokenizer directly, and is maintained (it is what OpenAI-compatible servers such as vLLM and
llama.cpp use for JSON schemas). xgrammar is slightly faster per token but brings a 1 GB
GPU compiler for a CPU-only project and let invalid JSON through.
"""
from __future__ import annotations

import json
import threading
import weakref

import llguidance
import llguidance.hf
import llguidance.torch as lltorch
import torch

from ftutils.local.inference.sampling import InferenceError

# Compact JSON (no whitespace between tokens): a model that could emit spaces forever
# (a random-weight one does) would never finish; answers stay valid JSON either way.
_JSON_OPTIONS = {"whitespace_flexible": False}
_tokenizers: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # hf tokenizer -> {(n_vocab, stops): LLTokenizer}
_lock = threading.Lock()


class ResponseFormatError(InferenceError):
    """A response_format OpenAI would refuse; `param` and `code` as its 400 names them."""

    def __init__(self, message: str, param: str = "response_format", code: str | None = None):
        super().__init__(message, param, code)


def grammar_for(response_format, messages: list[dict] | None = None) -> str | None:
    """The llguidance grammar a response_format asks for; None for plain text.

    Raises ResponseFormatError for what OpenAI answers 400 to: an unknown type, a json_schema
    without a name or schema, a strict schema outside the subset strict mode accepts, and a
    json_object request whose messages never say "json".
    """
    if response_format is None:
        return None
    if hasattr(response_format, "model_dump"):
        response_format = response_format.model_dump(exclude_none=True, by_alias=True)
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return None
    if kind == "json_object":
        if messages is not None and not any("json" in _text(m).lower() for m in messages):
            raise ResponseFormatError(
                "'messages' must contain the word 'json' in some form, to use 'response_format' of type "
                "'json_object'.", param="messages")
        return llguidance.LLMatcher.grammar_from_json_schema({"type": "object"}, defaults=_JSON_OPTIONS)
    if kind == "json_schema":
        spec = response_format.get("json_schema")
        if not isinstance(spec, dict) or not spec.get("name"):
            raise ResponseFormatError("Missing required parameter: 'response_format.json_schema.name'.",
                                      param="response_format.json_schema.name", code="missing_required_parameter")
        schema = spec.get("schema")
        if schema is None:  # OpenAI's default: any JSON object
            schema = {"type": "object"}
        if not isinstance(schema, dict):
            raise ResponseFormatError(f"Invalid schema for response_format '{spec['name']}': schema must be a "
                                      "JSON Schema object.")
        if spec.get("strict"):
            check_strict(spec["name"], schema)
        grammar = llguidance.LLMatcher.grammar_from_json_schema(schema, defaults=_JSON_OPTIONS)
        error = llguidance.LLMatcher.validate_grammar(grammar)
        if error and not error.startswith("WARNING"):
            raise ResponseFormatError(f"Invalid schema for response_format '{spec['name']}': {error}")
        return grammar
    raise ResponseFormatError(f"Invalid value: {kind!r}. Supported values are: 'text', 'json_object', and "
                              "'json_schema'.", param="response_format.type", code="invalid_value")


def check_strict(name: str, schema: dict) -> None:
    """OpenAI's strict-mode rules: the root is an object, every object lists all its
    properties as required and sets additionalProperties to false."""
    def fail(context, what):
        raise ResponseFormatError(f"Invalid schema for response_format '{name}': In context={tuple(context)!r}, {what}")

    if schema.get("type") != "object" or "anyOf" in schema:
        fail((), "schema must be a JSON Schema of 'type: \"object\"', got 'type: "
                 f"\"{schema.get('type')}\"'.")

    def walk(node, context):
        if isinstance(node, list):
            for i, item in enumerate(node):
                walk(item, [*context, str(i)])
            return
        if not isinstance(node, dict):
            return
        types = node.get("type") if isinstance(node.get("type"), list) else [node.get("type")]
        if "object" in types or "properties" in node:
            if node.get("additionalProperties") is not False:
                fail(context, "'additionalProperties' is required to be supplied and to be false.")
            missing = [k for k in node.get("properties", {}) if k not in node.get("required", [])]
            if missing:
                fail(context, "'required' is required to be supplied and to be an array including every key in "
                              f"properties. Missing '{missing[0]}'.")
        for key in ("properties", "$defs", "definitions"):
            for child, sub in (node.get(key) or {}).items():
                walk(sub, [*context, key, child])
        for key in ("items", "anyOf", "allOf"):
            if key in node:
                walk(node[key], [*context, key])

    walk(schema, [])


class JsonConstraint:
    """One answer's constraint: mask the logits before sampling, then advance by the token."""

    def __init__(self, grammar: str, tokenizer, n_vocab: int, stop_ids):
        self.matcher = llguidance.LLMatcher(_lltokenizer(tokenizer, n_vocab, stop_ids), grammar)
        if self.matcher.is_error():
            raise ResponseFormatError(f"Invalid schema for response_format: {self.matcher.get_error()}")
        self.bitmask = lltorch.allocate_token_bitmask(1, n_vocab)

    def apply(self, logits: torch.Tensor) -> None:
        """Set the logits of tokens that cannot continue a valid answer to -inf, in place.

        `logits` is this answer's row (vocab,) or (1, vocab), fp32 on the CPU.
        """
        lltorch.fill_next_token_bitmask(self.matcher, self.bitmask, 0)
        lltorch.apply_token_bitmask_inplace(logits, self.bitmask)

    def advance(self, token: int) -> None:
        if not self.matcher.consume_token(token):  # only if the engine sampled outside the mask
            raise RuntimeError(f"constrained decoding: token {token} refused: {self.matcher.get_error()}")

    @property
    def complete(self) -> bool:
        """The JSON is complete: only an end-of-turn token may follow."""
        return self.matcher.is_stopped()


def constraints_for(response_format, messages, tokenizer, n_vocab: int, stop_ids, n: int = 1):
    """One JsonConstraint per answer row, or None when the format is plain text."""
    grammar = grammar_for(response_format, messages)
    if grammar is None:
        return None
    return [JsonConstraint(grammar, tokenizer, n_vocab, stop_ids) for _ in range(n)]


def _lltokenizer(tokenizer, n_vocab: int, stop_ids):
    """llguidance's view of a tokenizer (seconds to build, so built once per tokenizer)."""
    key = (n_vocab, tuple(sorted(stop_ids)))
    with _lock:
        per = _tokenizers.setdefault(tokenizer, {})
        if key not in per:
            per[key] = llguidance.hf.from_tokenizer(tokenizer, n_vocab=n_vocab, eos_token=list(key[1]))
        return per[key]


def _text(message) -> str:
    content = message.get("content") if isinstance(message, dict) else getattr(message, "content", None)
    if isinstance(content, list):
        return " ".join(p.get("text", "") if isinstance(p, dict) else str(p) for p in content)
    return content if isinstance(content, str) else json.dumps(content or "")
