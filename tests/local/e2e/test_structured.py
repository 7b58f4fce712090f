"""response_format over a real server with the real openai client: json_schema (strict) and
json_object answers from tiny-smollm2, whose random weights know no JSON, so the constraint
alone must make them valid."""
from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from ftutils.local.inference import structured

SCHEMA = {
    "type": "object",
    "properties": {
        "answer": {"type": "string", "enum": ["yes", "no", "maybe"]},
        "confidence": {"type": "integer", "minimum": 0, "maximum": 100},
        "reason": {"type": "string", "maxLength": 12},
        "flags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 3},
        "detail": {"anyOf": [{"type": "null"},
                             {"type": "object", "properties": {"score": {"type": "number", "minimum": 0, "maximum": 1}},
                              "required": ["score"], "additionalProperties": False}]},
    },
    "required": ["answer", "confidence", "reason", "flags", "detail"],
    "additionalProperties": False,
}
FORMAT = {"type": "json_schema", "json_schema": {"name": "verdict", "strict": True, "schema": SCHEMA}}
ASK = [{"role": "user", "content": "Is the sky green? Answer as the schema says."}]


def test_json_schema_strict_answers_parse_and_conform(api):
    response = api.chat.completions.create(model="tiny-smollm2", messages=ASK, response_format=FORMAT,
                                           n=4, seed=7, temperature=1.0, max_tokens=200)
    assert len(response.choices) == 4
    answers = []
    for choice in response.choices:
        assert choice.finish_reason == "stop", choice.message.content
        value = json.loads(choice.message.content)
        jsonschema.validate(value, SCHEMA)
        answers.append(value)
    assert len({json.dumps(a, sort_keys=True) for a in answers}) > 1  # sampled, not one canned answer


def test_json_schema_greedy_and_streamed(client):
    greedy = client.chat.completions.create(model="tiny-smollm2", messages=ASK, response_format=FORMAT,
                                            temperature=0, max_tokens=200)
    jsonschema.validate(json.loads(greedy.choices[0].message.content), SCHEMA)
    chunks = client.chat.completions.create(model="tiny-smollm2", messages=ASK, response_format=FORMAT,
                                            temperature=0, max_tokens=200, stream=True)
    text, reasons = "", []
    for chunk in chunks:
        for choice in chunk.choices:
            text += choice.delta.content or ""
            reasons.append(choice.finish_reason)
    assert reasons[-1] == "stop"
    assert text == greedy.choices[0].message.content  # the same mask whether streamed or not


def test_json_object_gives_objects(client):
    response = client.chat.completions.create(
        model="tiny-smollm2", messages=[{"role": "user", "content": "Reply in JSON."}],
        response_format={"type": "json_object"}, n=8, seed=3, max_tokens=64)
    finished = [c for c in response.choices if c.finish_reason == "stop"]
    # A random model may write a string that outlasts max_tokens (cut, as OpenAI cuts);
    # every answer that ended is one JSON object, and every other is a prefix of one.
    assert finished
    for choice in response.choices:
        text = choice.message.content
        assert text.startswith("{")
        if choice.finish_reason == "stop":
            assert isinstance(json.loads(text), dict)
        else:
            with pytest.raises(json.JSONDecodeError):
                json.loads(text)


def test_text_format_is_unconstrained(client):
    texts = [client.chat.completions.create(model="tiny-smollm2", messages=ASK, seed=1, max_tokens=8,
                                            **extra).choices[0].message.content
             for extra in ({"response_format": {"type": "text"}}, {})]
    assert texts[0] == texts[1]


@pytest.mark.parametrize("response_format, messages, param, needle", [
    ({"type": "json_schema", "json_schema": {"name": "loose", "strict": True,
                                             "schema": {"type": "object", "properties": {"a": {"type": "string"}},
                                                        "required": ["a"]}}},
     ASK, "response_format",
     "Invalid schema for response_format 'loose': In context=(), 'additionalProperties' is required to be supplied "
     "and to be false."),
    ({"type": "json_schema", "json_schema": {"name": "partial", "strict": True,
                                             "schema": {"type": "object", "additionalProperties": False,
                                                        "properties": {"a": {"type": "string"},
                                                                       "b": {"type": "integer"}},
                                                        "required": ["a"]}}},
     ASK, "response_format", "Missing 'b'"),
    ({"type": "json_object"}, [{"role": "user", "content": "hello"}], "messages",
     "'messages' must contain the word 'json'"),
    ({"type": "yaml"}, ASK, "response_format.type", "Supported values are"),
])
def test_bad_response_formats_answer_400(client, response_format, messages, param, needle):
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="tiny-smollm2", messages=messages, response_format=response_format,
                                       max_tokens=5)
    error = caught.value.body
    assert error["param"] == param
    assert needle in error["message"]
    assert error["type"] == "invalid_request_error"


def test_strict_rules_reach_nested_objects():
    nested = {"type": "object", "additionalProperties": False, "required": ["inner"],
              "properties": {"inner": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}}}
    with pytest.raises(structured.ResponseFormatError, match=r"context=\('properties', 'inner'\)"):
        structured.check_strict("n", nested)
    nested["properties"]["inner"]["additionalProperties"] = False
    structured.check_strict("n", nested)  # now within strict mode's subset
