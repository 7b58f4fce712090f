"""The training-file validator on real files: one planted problem per file in
tests/data/malformed/ (see make_corpus.py there), each asserted to the exact code and line,
with every other line producing no finding at all."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from ftutils.data.codes import CODES
from ftutils.data.validate import Finding, ValidationReport, validate_examples, validate_file

MALFORMED = Path(__file__).parent / "malformed"
SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"

# file -> the complete list of (code, line) expected; None = the whole file.
CASES = {
    "bad_json_line.jsonl": [("invalid_json", 3)],
    "trailing_comma.jsonl": [("invalid_json", 5)],
    "non_utf8.jsonl": [("invalid_utf8", 4)],
    "binary.jsonl": [("binary_file", None)],
    "xlsx_named_jsonl.jsonl": [("binary_file", None)],
    "empty.jsonl": [("empty_file", None)],
    "whitespace_only.jsonl": [("empty_file", None)],
    "utf16.jsonl": [("not_utf8", None)],
    "csv_named_jsonl.jsonl": [("not_jsonl", None), ("invalid_json", 1), ("invalid_json", 2), ("invalid_json", 3)],
    "array_line.jsonl": [("not_an_object", 2)],
    "blank_line.jsonl": [("blank_line", 5)],
    "missing_messages.jsonl": [("missing_messages", 6)],
    "prompt_completion_line.jsonl": [("legacy_prompt_completion", 7)],
    "messages_not_list.jsonl": [("invalid_type", 4)],
    "empty_messages.jsonl": [("empty_messages", 2)],
    "message_not_object.jsonl": [("message_not_object", 3)],
    "missing_role.jsonl": [("missing_role", 5)],
    "unknown_role.jsonl": [("unknown_role", 3)],
    "unrecognized_message_key.jsonl": [("unrecognized_message_key", 4)],
    "extra_top_level_key.jsonl": [("unrecognized_key", 2)],
    "missing_content.jsonl": [("missing_content", 2)],
    "null_content.jsonl": [("missing_content", 8)],
    "content_number.jsonl": [("invalid_content", 3)],
    "empty_content.jsonl": [("empty_content", 5)],
    "whitespace_content.jsonl": [("whitespace_content", 6)],
    "special_token_endoftext.jsonl": [("special_token", 4)],
    "special_token_im_start.jsonl": [("special_token", 2)],
    "weight_2.jsonl": [("invalid_weight", 3)],
    "weight_string.jsonl": [("invalid_weight", 7)],
    "weight_on_user.jsonl": [("weight_not_on_assistant", 5)],
    "all_weights_zero.jsonl": [("no_trained_tokens", 4)],
    "no_assistant.jsonl": [("missing_assistant_message", 3)],
    "two_users_in_a_row.jsonl": [("consecutive_roles", 2)],
    "assistant_first.jsonl": [("assistant_first", 5)],
    "system_not_first.jsonl": [("system_not_first", 3)],
    "last_not_assistant.jsonl": [("last_message_not_assistant", 6)],
    "too_few_examples.jsonl": [("too_few_examples", None)],
    "mixed_formats.jsonl": [("mixed_formats", 11)],
    "tool_calls_without_tools.jsonl": [("tool_calls_without_tools", 4)],
    "unknown_tool.jsonl": [("unknown_tool", 3)],
    "tool_arguments_object.jsonl": [("invalid_tool_call", 5)],
    "tool_message_without_id.jsonl": [("missing_tool_call_id", 2)],
    "invalid_tool_name.jsonl": [("invalid_tools", 3), ("unknown_tool", 3)],
    "parallel_tool_calls_string.jsonl": [("invalid_type", 8)],
    "function_call_without_functions.jsonl": [("function_call_without_functions", 3)],
    "function_message_without_name.jsonl": [("missing_function_name", 9)],
    "developer_role_in_chat.jsonl": [("unknown_role", 10)],
    "preferred_both_spellings.jsonl": [("conflicting_keys", 3)],
    "preference_missing_non_preferred.jsonl": [("missing_non_preferred_output", 6)],
    "preference_two_outputs.jsonl": [("invalid_preferred_output", 4)],
    "preference_identical.jsonl": [("identical_preference", 9)],
    "over_limit_tiny.jsonl": [("approximate_token_count", None), ("over_token_limit", 4)],
    "rft_system_role.jsonl": [("unknown_role", 2)],
    "bom.jsonl": [],
    "lone_surrogate.jsonl": [("invalid_unicode", 6)],
    "every_weight_zero.jsonl": [("nothing_to_train", None)] + [("no_trained_tokens", i) for i in range(1, 13)],
    "assistant_only.jsonl": [("assistant_first", 4)],
    "nul_byte.jsonl": [("invalid_json", 3)],
    "nul_byte_late.jsonl": [("invalid_json", 250)],
}
MODEL = {"over_limit_tiny.jsonl": "tiny-smollm2"}
METHOD = {"rft_system_role.jsonl": "reinforcement"}
FIELD = {"weight_on_user.jsonl": "messages[1].weight", "unknown_role.jsonl": "messages[1].role",
         "tool_arguments_object.jsonl": "messages[1].tool_calls[0].function.arguments",
         "preferred_both_spellings.jsonl": "preferred_completion", "special_token_endoftext.jsonl": "messages[2].content",
         "missing_content.jsonl": "messages[2].content", "two_users_in_a_row.jsonl": "messages[1].role",
         "lone_surrogate.jsonl": "messages[1].content"}


def test_corpus_is_complete():
    on_disk = {p.name for p in MALFORMED.glob("*.jsonl")}
    assert on_disk == set(CASES), on_disk ^ set(CASES)
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", sorted(CASES))
def test_malformed_file(name):
    report = validate_file(MALFORMED / name, model=MODEL.get(name), method=METHOD.get(name))
    assert sorted(((f.code, f.line) for f in report.findings), key=str) == sorted(CASES[name], key=str)
    for f in report.findings:
        assert f.severity == CODES[f.code][0]
        assert f.message and "Traceback" not in f.message
    if name in FIELD:
        assert report.findings[-1].field == FIELD[name]
    assert report.ok == (not any(CODES[code][0] == "error" for code, _ in CASES[name]))


def test_sample_broken_file_matches_its_readme():
    report = validate_file(SAMPLES / "broken_train.jsonl")
    expected = {2: "invalid_json", 3: "missing_messages", 4: "unknown_role", 5: "invalid_weight",
                6: "missing_assistant_message", 8: "empty_content", 9: "special_token", 10: "unrecognized_key",
                11: "legacy_prompt_completion", 12: "missing_role", 13: "missing_content", 14: "not_an_object",
                15: "empty_messages"}
    assert {f.line: f.code for f in report.findings} == expected
    assert (len(report.errors), len(report.warnings)) == (12, 1)


def chat(i, **assistant):
    return {"messages": [{"role": "system", "content": "Classify the ticket."},
                         {"role": "user", "content": f"ticket number {i}"},
                         {"role": "assistant", "content": "billing", **assistant}]}


def test_valid_examples_of_every_supported_shape_pass_clean():
    tool = {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
    examples = [chat(i) for i in range(4)] + [
        chat(4, weight=1), chat(5, weight=0) | {"messages": chat(5)["messages"] + [
            {"role": "user", "content": "and?"}, {"role": "assistant", "content": "refund", "weight": 1}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "what is this?"},
                                                   {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]},
                      {"role": "assistant", "content": [{"type": "text", "text": "a cat"}]}]},
        {"messages": [{"role": "user", "content": "look up 7", "name": "ana"},
                      {"role": "assistant", "content": None,
                       "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": "{}"}}]},
                      {"role": "tool", "tool_call_id": "c1", "content": "found"},
                      {"role": "assistant", "content": "Found it."}], "tools": [tool], "parallel_tool_calls": False},
        {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "refusal": "I can't."}]},
        {"messages": [{"role": "user", "content": "hi"},
                      {"role": "assistant", "function_call": {"name": "lookup", "arguments": "{}"}},
                      {"role": "function", "name": "lookup", "content": "x"},
                      {"role": "assistant", "content": "done"}], "functions": [{"name": "lookup"}]},
    ]
    report = validate_examples(examples)
    assert report.findings == [], str(report)
    assert report.ok and report.format == "chat" and report.n_examples == 10


def test_preference_both_spellings_each_valid_alone():
    out = [{"input": {"messages": [{"role": "user", "content": f"q{i}"}]},
            "preferred_output": [{"role": "assistant", "content": "good"}],
            "non_preferred_output": [{"role": "assistant", "content": "bad"}]} for i in range(6)]
    comp = [{"input": {"messages": [{"role": "user", "content": f"q{i}"}]},
             "preferred_completion": [{"role": "assistant", "content": "good"}],
             "non_preferred_completion": [{"role": "assistant", "content": "bad"}]} for i in range(6)]
    report = validate_examples(out + comp)
    assert report.findings == [] and report.format == "preference"


def test_numeric_weight_is_counted_not_crashed_on():
    # OpenAI's cookbook notebook calls encode() on every message value and crashes on weight.
    report = validate_examples([chat(i, weight=i % 2) for i in range(10)])
    assert report.ok and report.tokens["trained"] < report.tokens["total"]


def test_in_memory_lines_are_positions_and_non_dicts_are_findings():
    examples = [chat(i) for i in range(11)]
    examples[3] = "not a dict"
    examples[7]["messages"][1]["role"] = "bot"
    report = validate_examples(examples)
    assert [(f.code, f.line, f.field) for f in report.findings] == [
        ("not_an_object", 4, ""), ("unknown_role", 8, "messages[1].role")]
    assert report.n_examples == 10
    assert [(f.code, f.line) for f in validate_examples([]).findings] == [("empty_file", None)]


def test_findings_are_capped_but_counted(tmp_path):
    path = tmp_path / "big.jsonl"
    path.write_text("\n".join(json.dumps(chat(i, weight=5)) for i in range(300)) + "\n")
    report = validate_file(path)
    assert len(report.findings) == ValidationReport.MAX_PER_CODE
    assert report.counts["invalid_weight"] == 300 and report.n_errors == 300
    assert "300 error(s)" in str(report) and "more" in str(report)


def test_report_renders_for_terminal_notebook_and_json(tmp_path):
    report = validate_file(MALFORMED / "weight_2.jsonl")
    text = str(report)
    assert "invalid_weight" in text and "line 3" in text and "messages[2].weight" in text and "NOT OK" in text
    html = report._repr_html_()
    assert "<table>" in html and "invalid_weight" in html and "messages[2].weight" in html
    summary = report.summary()
    assert summary.loc[0, "code"] == "invalid_weight" and summary.loc[0, "count"] == 1 and summary.loc[0, "lines"] == "3"
    [item] = report.to_json()
    assert item["code"] == "invalid_weight" and item["line"] == 3 and json.dumps(item)
    assert report.first_error().describe("train.jsonl") == "train.jsonl: line 3, field messages[2].weight: weight must be 0 or 1, got 2"


def test_missing_file_or_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl: no such file"):
        validate_file(tmp_path / "nope.jsonl")
    with pytest.raises(IsADirectoryError, match="is a folder, not a file"):
        validate_file(tmp_path)


def test_reinforcement_lines_take_developer_messages_and_extra_keys():
    examples = [{"messages": [{"role": "developer", "content": "Answer with a number."},
                              {"role": "user", "content": f"{i} + {i}?"}], "reference_answer": str(2 * i)}
                for i in range(10)]
    report = validate_examples(examples, method="reinforcement")
    assert report.findings == [] and report.format == "reinforcement"
    # Read as a supervised file, the same lines have no reply to learn and use a foreign role.
    supervised = {f.code for f in validate_examples(examples).findings}
    assert supervised == {"unknown_role", "missing_assistant_message", "unrecognized_key"}


def test_finding_rejects_unknown_severity():
    with pytest.raises(ValueError, match="severity"):
        Finding("x", "fatal", 1, "", "m")


def test_token_totals_in_report_match_the_token_counter():
    from ftutils.data.tokens import count_example

    examples = [chat(i) for i in range(12)]
    report = validate_examples(examples, model="gpt-4o-mini")
    totals = [count_example(e, "gpt-4o-mini").total for e in examples]
    assert report.tokens["total"] == sum(totals) and report.tokens["max"] == max(totals)
    assert report.tokens["billed_per_epoch"] == sum(totals) and report.tokens["n_over_limit"] == 0


def test_billed_tokens_are_capped_at_the_training_limit():
    from ftutils.data.tokens import count_example

    report = validate_file(MALFORMED / "over_limit_tiny.jsonl", model="tiny-smollm2")
    examples = [json.loads(line) for line in (MALFORMED / "over_limit_tiny.jsonl").read_text().splitlines()]
    totals = [count_example(e, "tiny-smollm2").total for e in examples]
    limit = report.tokens["limit"]
    assert limit == 512 and sum(t > limit for t in totals) == report.tokens["n_over_limit"] == 1
    assert report.tokens["billed_per_epoch"] == sum(min(t, limit) for t in totals) < report.tokens["total"]


def test_method_fixes_the_expected_format():
    chat_lines = [chat(i) for i in range(10)]
    pref = {"input": {"messages": [{"role": "user", "content": "q"}]},
            "preferred_output": [{"role": "assistant", "content": "good"}],
            "non_preferred_output": [{"role": "assistant", "content": "bad"}]}
    assert validate_examples(chat_lines, method="supervised").findings == []
    report = validate_examples(chat_lines + [pref], method="supervised")
    assert [(f.code, f.line) for f in report.findings] == [("wrong_format", 11)]
    report = validate_examples(chat_lines, method="dpo")
    assert [(f.code, f.line) for f in report.findings] == [("wrong_format", n) for n in range(1, 11)]
    assert report.first_error().message == "a chat example in a file for dpo fine-tuning, which takes preference examples"
    with pytest.raises(ValueError, match="method must be one of"):
        validate_examples(chat_lines, method="sft")


def test_converter_keys_are_fine_in_memory_but_not_in_a_file(tmp_path):
    examples = [{**chat(i), "id": f"t{i}", "label": "billing"} for i in range(10)]
    assert validate_examples(examples).findings == []
    assert examples[0]["id"] == "t0"  # the caller's examples are untouched
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(e) + "\n" for e in examples))
    report = validate_file(path)
    assert report.ok and report.counts["unrecognized_key"] == 20
    assert {(f.line, f.field) for f in report.findings} == {(n, k) for n in range(1, 11) for k in ("id", "label")}


def test_json_documents_passed_as_jsonl_are_explained(tmp_path):
    examples = [chat(i) for i in range(12)]
    pretty = tmp_path / "pretty.jsonl"
    pretty.write_text(json.dumps(examples[0], indent=2))
    report = validate_file(pretty)
    [file_level] = [f for f in report.findings if f.line is None]
    assert file_level.code == "not_jsonl"
    assert file_level.message == "the whole file is one JSON object (pretty-printed?), not one object per line"
    array = tmp_path / "array.jsonl"
    array.write_text(json.dumps(examples))
    [finding] = validate_file(array).findings
    assert (finding.code, finding.line) == ("not_an_object", 1)
    assert "an array of 12 objects" in finding.message


def test_a_file_in_another_encoding_is_named_as_such(tmp_path):
    path = tmp_path / "latin1.jsonl"
    lines = [json.dumps({"messages": [{"role": "user", "content": f"Café n°{i}"},
                                      {"role": "assistant", "content": "réponse"}]}, ensure_ascii=False)
             for i in range(10)]
    path.write_bytes("\n".join(lines).encode("latin-1"))
    report = validate_file(path)
    assert [(f.code, f.line) for f in report.findings] == [("not_utf8", None)] + [("invalid_utf8", n) for n in range(1, 11)]
    assert "column 47" in report.findings[1].message and "0xe9" in report.findings[1].message
