"""ftutils.data.convert: raw records to OpenAI chat examples, and training files on disk."""
from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from ftutils.data.convert import (from_alpaca, from_prompt_completion, from_sharegpt, from_text_label,
                                  prompt_messages, to_frame, write_jsonl)
from ftutils.data.load import DataError, read_jsonl
from ftutils.data.validate import validate_file

TEMPLATE = "Classify this support message:\n{text}"


def test_from_text_label_builds_system_user_assistant_with_ids():
    df = pd.DataFrame({"ticket": ["t1", "t2"], "body": ["Card charged twice", "Parcel lost"],
                       "intent": ["billing", "shipping"]})
    examples = from_text_label(df, text="body", label="intent", system_prompt="Answer with one label.",
                               template=TEMPLATE, id="ticket")
    assert examples[0] == {
        "messages": [{"role": "system", "content": "Answer with one label."},
                     {"role": "user", "content": "Classify this support message:\nCard charged twice"},
                     {"role": "assistant", "content": "billing"}],
        "id": "t1", "label": "billing"}
    assert [e["id"] for e in examples] == ["t1", "t2"]


def test_from_text_label_generates_ids_and_reads_numeric_labels_as_text():
    records = [{"text": "one", "label": 1.0}, {"text": "two", "label": 2}]
    examples = from_text_label(records)
    assert [e["id"] for e in examples] == ["ex-00001", "ex-00002"]
    assert [e["label"] for e in examples] == ["1", "2"]  # 1.0 from a spreadsheet is the label "1"
    assert [m["role"] for m in examples[0]["messages"]] == ["user", "assistant"]


@pytest.mark.parametrize("records, kwargs, needle", [
    (pd.DataFrame({"text": ["a"], "label": ["x"]}), {"text": "body"}, "field body: no column 'body' (columns: text, label)"),
    ([{"text": "a", "label": "x"}, {"label": "y"}], {}, "record 2, field text: missing (keys: label)"),
    ([{"text": "a", "label": "x"}, {"text": "  ", "label": "y"}], {}, "record 2, field text: empty value"),
    ([{"text": "a", "label": "x"}, {"text": "b", "label": math.nan}], {}, "record 2, field label: empty value"),
    ([{"text": "a", "label": "x", "id": "k"}, {"text": "b", "label": "y", "id": "k"}], {"id": "id"},
     "record 2, field id: duplicate id 'k' (also record 1)"),
    ([{"text": "a", "label": "x"}], {"template": "Classify: {body}"}, "template must contain {text}"),
    (["just a string"], {}, "record 1: a str, expected a dict"),
])
def test_from_text_label_bad_input_names_record_and_field(records, kwargs, needle):
    with pytest.raises(DataError) as err:
        from_text_label(records, **kwargs)
    assert needle in str(err.value)


def test_from_prompt_completion_keeps_the_text_as_written():
    examples = from_prompt_completion([{"prompt": "2+2=\n\n###\n\n", "completion": " 4 END"}], system_prompt="Math.")
    assert examples == [{"messages": [{"role": "system", "content": "Math."},
                                      {"role": "user", "content": "2+2=\n\n###\n\n"},
                                      {"role": "assistant", "content": " 4 END"}]}]
    with pytest.raises(DataError, match="no column 'completion'"):
        from_prompt_completion(pd.DataFrame({"prompt": ["x"], "answer": ["y"]}))
    with pytest.raises(DataError, match="record 1, field completion: missing"):
        from_prompt_completion([{"prompt": "x", "answer": "y"}])


def test_from_sharegpt_maps_speakers_to_roles():
    rows = [{"conversations": [{"from": "system", "value": "Be brief."}, {"from": "human", "value": "Hi"},
                               {"from": "gpt", "value": "Hello!"}, {"from": "human", "value": "Bye"},
                               {"from": "gpt", "value": "Bye!"}]}]
    assert [(m["role"], m["content"]) for m in from_sharegpt(rows)[0]["messages"]] == [
        ("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello!"), ("user", "Bye"), ("assistant", "Bye!")]
    with pytest.raises(DataError, match=r"record 1, field conversations\[1\]\.from: unknown speaker 'bot'"):
        from_sharegpt([{"conversations": [{"from": "human", "value": "x"}, {"from": "bot", "value": "y"}]}])
    with pytest.raises(DataError, match=r"record 2, field conversations: expected a non-empty"):
        from_sharegpt([rows[0], {"conversations": []}])
    with pytest.raises(DataError, match=r"field conversations\[0\]\.value: missing text"):
        from_sharegpt([{"conversations": [{"from": "human"}]}])


def test_from_alpaca_puts_input_after_the_instruction():
    examples = from_alpaca([{"instruction": "Translate to French.", "input": "Good morning", "output": "Bonjour"},
                            {"instruction": "Name a colour.", "input": "", "output": "Blue"}])
    assert examples[0]["messages"][0]["content"] == "Translate to French.\n\nGood morning"
    assert examples[1]["messages"] == [{"role": "user", "content": "Name a colour."},
                                       {"role": "assistant", "content": "Blue"}]
    with pytest.raises(DataError, match="record 1, field output: empty value"):
        from_alpaca([{"instruction": "x", "output": None}])


def test_write_jsonl_strict_drops_extra_keys_and_lenient_keeps_them(tmp_path):
    records = [{"text": f"message number {i} ünïcödé", "label": "a" if i % 2 else "b"} for i in range(12)]
    examples = from_text_label(records, system_prompt="Label it.")
    train = write_jsonl(examples, tmp_path / "run" / "data" / "train.jsonl")
    test = write_jsonl(examples, tmp_path / "run" / "data" / "test.jsonl", strict=False)
    assert set(read_jsonl(train)[0]) == {"messages"}
    assert read_jsonl(test) == examples
    assert "ünïcödé" in train.read_text(encoding="utf-8")  # readable, not \u escapes
    assert validate_file(train).ok
    assert not list(train.parent.glob("*.tmp"))


def test_write_jsonl_keeps_tools_and_preference_keys(tmp_path):
    chat = {"messages": [{"role": "user", "content": "hi"}], "tools": [], "parallel_tool_calls": False, "id": "x"}
    pref = {"input": {"messages": [{"role": "user", "content": "hi"}]},
            "preferred_output": [{"role": "assistant", "content": "Hello!"}],
            "non_preferred_output": [{"role": "assistant", "content": "Go away."}], "label": "p"}
    path = write_jsonl([chat, pref], tmp_path / "mixed.jsonl")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert set(lines[0]) == {"messages", "tools", "parallel_tool_calls"}
    assert set(lines[1]) == {"input", "preferred_output", "non_preferred_output"}


def test_write_jsonl_failure_leaves_no_partial_file(tmp_path):
    path = tmp_path / "train.jsonl"
    with pytest.raises(DataError, match="record 2: a str, expected a dict"):
        write_jsonl([{"messages": []}, "oops"], path)
    assert not path.exists() and not list(tmp_path.iterdir())


def test_prompt_messages_and_to_frame():
    example = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
                            {"role": "assistant", "content": "A1"}, {"role": "user", "content": "Q2"},
                            {"role": "assistant", "content": "A2"}], "id": "e1", "label": "A2"}
    assert [m["content"] for m in prompt_messages(example)] == ["S", "Q1", "A1", "Q2"]
    pref = {"input": {"messages": [{"role": "user", "content": "Q"}]},
            "preferred_output": [{"role": "assistant", "content": "good"}]}
    assert prompt_messages(pref) == [{"role": "user", "content": "Q"}]
    df = to_frame([example, pref])
    assert list(df.columns) == ["id", "label", "system", "user", "assistant", "n_messages"]
    assert df.iloc[0].tolist() == ["e1", "A2", "S", "Q2", "A2", 5]
    assert df.iloc[1][["id", "user", "assistant", "n_messages"]].tolist() == ["ex-00002", "Q", "good", 2]


def test_write_jsonl_turns_numpy_scalars_into_json_and_names_what_cannot_be(tmp_path):
    import numpy as np

    examples = [{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}],
                 "id": np.int64(7), "score": np.float32(0.5)}]
    path = write_jsonl(examples, tmp_path / "test.jsonl", strict=False)
    assert read_jsonl(path) == [{**examples[0], "id": 7, "score": 0.5}]
    with pytest.raises(DataError, match=r"record 1: cannot be written as JSON: set is not JSON serialisable"):
        write_jsonl([{"messages": [], "tags": {"a"}}], tmp_path / "bad.jsonl", strict=False)
