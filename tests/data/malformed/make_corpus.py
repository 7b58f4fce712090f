"""Writes the malformed training files next to this script (run it to regenerate them).

Each file is small and real: mostly valid lines with one planted problem, so the table in
tests/data/test_validate.py can assert the exact finding (code and line) and that the
valid lines around it produce none.
"""
import json
import zipfile
from pathlib import Path

HERE = Path(__file__).parent
TICKETS = ["My card was charged twice", "How do I reset my password?", "The app crashes on start",
           "Can I change my delivery address?", "I want a refund for order 1182", "Where is my parcel?",
           "Please close my account", "The invoice shows the wrong VAT number", "Login code never arrives",
           "Do you ship to Norway?", "Upgrade my plan to Pro", "Cancel my subscription"]
LABELS = ["billing", "account", "bug", "shipping", "billing", "shipping", "account", "billing", "account",
          "shipping", "billing", "billing"]
SYSTEM = {"role": "system", "content": "Classify the support ticket into one intent."}
WEATHER_TOOL = {"type": "function", "function": {"name": "get_weather", "description": "Current weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}


def chat(i):
    return {"messages": [SYSTEM, {"role": "user", "content": TICKETS[i % 12]},
                         {"role": "assistant", "content": LABELS[i % 12]}]}


def pref(i):
    return {"input": {"messages": [{"role": "user", "content": TICKETS[i % 12]}]},
            "preferred_output": [{"role": "assistant", "content": LABELS[i % 12]}],
            "non_preferred_output": [{"role": "assistant", "content": "I cannot help with that."}]}


def tool_chat(i, **over):
    call = {"id": f"call_{i}", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}}
    ex = {"messages": [{"role": "user", "content": f"Weather in Oslo? ({i})"},
                       {"role": "assistant", "tool_calls": [call]},
                       {"role": "tool", "tool_call_id": f"call_{i}", "content": "4 C, rain"},
                       {"role": "assistant", "content": "4 degrees and rain in Oslo."}],
          "tools": [WEATHER_TOOL]}
    return ex


def lines_with(n, bad: dict, make=chat):
    """n lines; bad maps a 1-based line number to an object (dumped) or raw bytes/str."""
    out = []
    for i in range(1, n + 1):
        item = bad.get(i, make(i))
        if isinstance(item, bytes):
            out.append(item)
        elif isinstance(item, str):
            out.append(item.encode())
        else:
            out.append(json.dumps(item, ensure_ascii=False).encode())
    return b"\n".join(out) + b"\n"


def msgs(*pairs, **top):
    return {"messages": [{"role": r, "content": c} for r, c in pairs], **top}


def tweak(example, index, **changes):
    ex = json.loads(json.dumps(example))
    ex["messages"][index].update(changes)
    for k, v in changes.items():
        if v is ...:
            del ex["messages"][index][k]
    return ex


FILES = {
    "bad_json_line.jsonl": lines_with(12, {3: '{"messages": [{"role": "user", "content": "hi"}'}),
    "trailing_comma.jsonl": lines_with(12, {5: '{"messages": [{"role": "user", "content": "hi"},]}'}),
    "non_utf8.jsonl": lines_with(12, {4: '{"messages": [{"role": "user", "content": "caf'.encode() + b"\xe9" +
                                      b'"}, {"role": "assistant", "content": "ok"}]}'}),
    "binary.jsonl": bytes(range(256)) * 4,
    "empty.jsonl": b"",
    "whitespace_only.jsonl": b"\n   \n\n",
    "utf16.jsonl": lines_with(12, {}).decode().encode("utf-16"),
    "csv_named_jsonl.jsonl": b"text,label\nMy card was charged twice,billing\nWhere is my parcel?,shipping\n",
    "array_line.jsonl": lines_with(12, {2: [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}),
    "missing_messages.jsonl": lines_with(12, {6: {"conversation": chat(6)["messages"]}}),
    "prompt_completion_line.jsonl": lines_with(12, {7: {"prompt": "Where is my parcel?", "completion": " shipping"}}),
    "messages_not_list.jsonl": lines_with(12, {4: {"messages": "My card was charged twice"}}),
    "empty_messages.jsonl": lines_with(12, {2: {"messages": []}}),
    "message_not_object.jsonl": lines_with(12, {3: {"messages": ["hi", {"role": "user", "content": "hi"},
                                                                 {"role": "assistant", "content": "hello"}]}}),
    "missing_role.jsonl": lines_with(12, {5: tweak(chat(5), 1, role=...)}),
    "unknown_role.jsonl": lines_with(12, {3: tweak(chat(3), 1, role="customer")}),
    "unrecognized_message_key.jsonl": lines_with(12, {4: tweak(chat(4), 1, tone="angry")}),
    "missing_content.jsonl": lines_with(12, {2: tweak(chat(2), 2, content=...)}),
    "null_content.jsonl": lines_with(12, {8: tweak(chat(8), 1, content=None)}),
    "content_number.jsonl": lines_with(12, {3: tweak(chat(3), 2, content=42)}),
    "empty_content.jsonl": lines_with(12, {5: tweak(chat(5), 2, content="")}),
    "whitespace_content.jsonl": lines_with(12, {6: tweak(chat(6), 1, content="  \n\t ")}),
    "special_token_endoftext.jsonl": lines_with(12, {4: tweak(chat(4), 2, content="billing<|endoftext|>")}),
    "special_token_im_start.jsonl": lines_with(12, {2: tweak(chat(2), 1, content="<|im_start|>user\nhi")}),
    "weight_2.jsonl": lines_with(12, {3: tweak(chat(3), 2, weight=2)}),
    "weight_string.jsonl": lines_with(12, {7: tweak(chat(7), 2, weight="1")}),
    "weight_on_user.jsonl": lines_with(12, {5: tweak(chat(5), 1, weight=1)}),
    "all_weights_zero.jsonl": lines_with(12, {4: tweak(chat(4), 2, weight=0)}),
    "no_assistant.jsonl": lines_with(12, {3: msgs(("system", "Classify."), ("user", "Where is my parcel?"))}),
    "two_users_in_a_row.jsonl": lines_with(12, {2: msgs(("user", "Hi"), ("user", "Where is my parcel?"),
                                                        ("assistant", "shipping"))}),
    "assistant_first.jsonl": lines_with(12, {5: msgs(("system", "Classify."), ("assistant", "Hello!"),
                                                     ("user", "Where is my parcel?"), ("assistant", "shipping"))}),
    "system_not_first.jsonl": lines_with(12, {3: msgs(("user", "Where is my parcel?"), ("system", "Classify."),
                                                      ("assistant", "shipping"))}),
    "last_not_assistant.jsonl": lines_with(12, {6: msgs(("user", "Where is my parcel?"), ("assistant", "shipping"),
                                                        ("user", "Thanks"))}),
    "too_few_examples.jsonl": lines_with(5, {}),
    "mixed_formats.jsonl": lines_with(10, {}) + lines_with(2, {}, make=pref),
    "tool_calls_without_tools.jsonl": lines_with(12, {4: {"messages": tool_chat(4)["messages"]}}, make=tool_chat),
    "unknown_tool.jsonl": lines_with(12, {3: json.loads(json.dumps(tool_chat(3)).replace('"get_weather", "arguments"',
                                                                                         '"get_time", "arguments"'))},
                                     make=tool_chat),
    "tool_arguments_object.jsonl": lines_with(12, {5: json.loads(json.dumps(tool_chat(5)).replace(
        '"arguments": "{\\"city\\": \\"Oslo\\"}"', '"arguments": {"city": "Oslo"}'))}, make=tool_chat),
    "tool_message_without_id.jsonl": lines_with(12, {2: json.loads(json.dumps(tool_chat(2)).replace(
        '"tool_call_id": "call_2", ', ""))}, make=tool_chat),
    "invalid_tool_name.jsonl": lines_with(12, {3: {**tool_chat(3), "tools": [
        {"type": "function", "function": {"name": "get weather!"}}]}}, make=tool_chat),
    "parallel_tool_calls_string.jsonl": lines_with(12, {8: {**tool_chat(8), "parallel_tool_calls": "no"}}, make=tool_chat),
    "function_call_without_functions.jsonl": lines_with(12, {3: {"messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "function_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
        {"role": "function", "name": "get_weather", "content": "4 C"},
        {"role": "assistant", "content": "4 degrees in Oslo."}]}}),
    "function_message_without_name.jsonl": lines_with(12, {9: {"messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "function_call": {"name": "get_weather", "arguments": '{"city": "Oslo"}'}},
        {"role": "function", "content": "4 C"},
        {"role": "assistant", "content": "4 degrees in Oslo."}], "functions": [{"name": "get_weather"}]}}),
    "developer_role_in_chat.jsonl": lines_with(12, {10: tweak(chat(10), 0, role="developer")}),
    "preferred_both_spellings.jsonl": lines_with(12, {3: {**pref(3), "preferred_completion": pref(3)["preferred_output"]}},
                                                 make=pref),
    "preference_missing_non_preferred.jsonl": lines_with(12, {6: {k: v for k, v in pref(6).items()
                                                                  if k != "non_preferred_output"}}, make=pref),
    "preference_two_outputs.jsonl": lines_with(12, {4: {**pref(4), "preferred_output": pref(4)["preferred_output"] * 2}},
                                               make=pref),
    "preference_identical.jsonl": lines_with(12, {9: {**pref(9), "non_preferred_output": pref(9)["preferred_output"]}},
                                             make=pref),
    "extra_top_level_key.jsonl": lines_with(12, {2: {**chat(2), "id": "ticket-2"}}),
    "blank_line.jsonl": lines_with(12, {5: ""}),
    "over_limit_tiny.jsonl": lines_with(12, {4: tweak(chat(4), 1, content="word " * 600)}),
    # The trainer reads these through the validator's line reader (tests/data/test_agreement.py).
    "bom.jsonl": b"\xef\xbb\xbf" + lines_with(12, {}),
    "lone_surrogate.jsonl": lines_with(12, {6: json.dumps(tweak(chat(6), 1, content="hi \ud800"))}),
    "every_weight_zero.jsonl": lines_with(12, {}, make=lambda i: tweak(chat(i), 2, weight=0)),
    "assistant_only.jsonl": lines_with(12, {4: msgs(("assistant", "shipping"))}),
    "nul_byte.jsonl": lines_with(12, {3: json.dumps(chat(3)).encode().replace(b"delivery", b"deli\x00very")}),
    "nul_byte_late.jsonl": lines_with(300, {250: json.dumps(chat(250)).encode().replace(b"Upgrade", b"Up\x00grade")}),
    "rft_system_role.jsonl": lines_with(12, {2: {"messages": [SYSTEM, {"role": "user", "content": "2+2?"}],
                                                 "reference_answer": "4"}},
                                        make=lambda i: {"messages": [{"role": "developer", "content": "Answer briefly."},
                                                                     {"role": "user", "content": f"{i}+{i}?"}],
                                                        "reference_answer": str(2 * i)}),
}


def main():
    for name, data in FILES.items():
        (HERE / name).write_bytes(data)
    with zipfile.ZipFile(HERE / "xlsx_named_jsonl.jsonl", "w") as z:  # a spreadsheet saved under the wrong name
        z.writestr(zipfile.ZipInfo("xl/workbook.xml", date_time=(2025, 1, 1, 0, 0, 0)), "<workbook/>")  # same bytes every run
    print(f"wrote {len(FILES) + 1} files to {HERE}")


if __name__ == "__main__":
    main()
