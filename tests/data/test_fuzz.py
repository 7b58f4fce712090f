"""Bad input never becomes a traceback: seeded random damage to valid examples (wrong
types, missing and extra keys) and to valid files (flipped, cut, inserted bytes) must come
back as findings with known codes, and the token helpers must not crash on it either."""
from __future__ import annotations

import json
import random

import pytest

from ftutils.data.codes import CODES
from ftutils.data.tokens import count_example, token_stats, truncation_preview
from ftutils.data.validate import validate_examples, validate_file

VALID = [
    {"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u", "name": "n"},
                  {"role": "assistant", "content": "a", "weight": 1}]},
    {"messages": [{"role": "user", "content": [{"type": "text", "text": "x"}]},
                  {"role": "assistant", "tool_calls": [{"id": "c", "type": "function",
                                                        "function": {"name": "f", "arguments": "{}"}}]},
                  {"role": "tool", "tool_call_id": "c", "content": "r"}, {"role": "assistant", "content": "done"}],
     "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}], "parallel_tool_calls": True},
    {"input": {"messages": [{"role": "user", "content": "q"}], "tools": [{"type": "function", "function": {"name": "f"}}]},
     "preferred_output": [{"role": "assistant", "content": "g"}],
     "non_preferred_output": [{"role": "assistant", "content": "b"}]},
    {"messages": [{"role": "user", "content": "hi"},
                  {"role": "assistant", "function_call": {"name": "f", "arguments": "{}"}},
                  {"role": "function", "name": "f", "content": "x"}, {"role": "assistant", "content": "ok"}],
     "functions": [{"name": "f"}]},
]
VALUES = [None, 0, 1, 2, -1, 1.5, True, False, "", " \n", "<|endoftext|>", "user", "assistant", "tool", "system",
          "developer", [], {}, [1], {"a": 1}, ["x"], [{"type": "text"}], [{"type": "text", "text": 5}],
          {"name": 5}, [None], [[]]]


def _paths(obj, path=()):
    yield path
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, path + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, path + (i,))


def damaged(rng: random.Random) -> dict:
    obj = json.loads(json.dumps(rng.choice(VALID)))
    for _ in range(rng.randint(1, 3)):
        paths = [p for p in _paths(obj) if p]
        if not paths:
            break
        path = rng.choice(paths)
        parent = obj
        for key in path[:-1]:
            parent = parent[key]
        r = rng.random()
        if r < 0.2 and isinstance(parent, dict):
            del parent[path[-1]]
        elif r < 0.3 and isinstance(parent, dict):
            parent[f"extra{rng.randint(0, 3)}"] = json.loads(json.dumps(rng.choice(VALUES)))
        else:
            parent[path[-1]] = json.loads(json.dumps(rng.choice(VALUES)))
    return obj


def assert_known(report):
    for f in report.findings:
        assert f.code in CODES and f.severity == CODES[f.code][0] and f.message


def test_valid_seeds_are_clean():
    assert validate_examples([json.loads(json.dumps(v)) for v in VALID[:2] + VALID[3:]] * 4).findings == []


@pytest.mark.parametrize("seed", range(4))
def test_damaged_examples_become_findings(seed):
    rng = random.Random(seed)
    flagged, examples = 0, []
    for _ in range(250):
        example = damaged(rng)
        examples.append(example)
        report = validate_examples([example] * 10)
        assert_known(report)
        flagged += bool(report.findings)
        assert_known(validate_examples([example] * 10, method="reinforcement"))
        count_example(example)
        truncation_preview(example, limit=5)
    assert len(token_stats(examples)) == 250
    assert flagged > 200  # most damage is visible; the rest is damage that is still valid (e.g. a new name)


@pytest.mark.parametrize("seed", range(3))
def test_damaged_bytes_become_findings(tmp_path, seed):
    rng = random.Random(seed)
    good = b"".join(json.dumps(v).encode() + b"\n" for v in VALID * 3)
    for i in range(40):
        data = bytearray(good)
        for _ in range(rng.randint(1, 6)):
            at = rng.randrange(len(data))
            op = rng.random()
            if op < 0.4:
                data[at] = rng.randrange(256)
            elif op < 0.7:
                del data[at:at + rng.randint(1, 40)]
            else:
                data[at:at] = rng.choice([b"\x00", b"\xff\xfe", b"\n", b"{", b'"', b"\xe9", b"<|im_end|>"])
        path = tmp_path / f"damaged-{i}.jsonl"
        path.write_bytes(bytes(data))
        report = validate_file(path)
        assert_known(report)
        assert str(report) and report._repr_html_()
