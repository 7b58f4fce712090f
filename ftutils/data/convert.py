"""Turning raw records into OpenAI's chat format, and writing training files.

An example is `{"messages": [...]}`; converters may add top-level `"id"` and `"label"` so
evaluation can align predictions with the truth. `write_jsonl(strict=True)` drops those
for upload; `strict=False` keeps them (test.jsonl).

Every converter raises DataError naming the record (1-based) and the field at fault: a
silently skipped row is a silently different dataset.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path

from ftutils.data.load import DataError

# Top-level keys of OpenAI's per-line schemas (training-data-schemas.yaml).
CHAT_KEYS = ("messages", "tools", "parallel_tool_calls", "functions")
PREFERENCE_KEYS = ("input", "preferred_output", "non_preferred_output", "preferred_completion", "non_preferred_completion")
SHAREGPT_ROLES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant",
                  "chatgpt": "assistant", "model": "assistant", "system": "system"}


def _records(data) -> list[dict]:
    """Rows of a DataFrame or a list of dicts, as dicts."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):
        return data.to_dict("records")
    records = list(data)
    for i, row in enumerate(records, 1):
        if not isinstance(row, dict):
            raise DataError(f"a {type(row).__name__}, expected a dict", record=i)
    return records


def _missing(value) -> bool:
    """None, NaN, pandas NA, or blank text: all mean "no value" in a spreadsheet cell."""
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    try:
        import pandas as pd
        return bool(pd.isna(value)) if not isinstance(value, (list, dict, tuple)) else False
    except (TypeError, ValueError, ImportError):
        return False


def _text(value) -> str:
    """A cell as text; 3.0 read from a spreadsheet means the label 3, not "3.0"."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _field(row: dict, key: str, i: int) -> str:
    if key not in row:
        raise DataError(f"missing (keys: {', '.join(map(str, row))})", record=i, field=key)
    if _missing(row[key]):
        raise DataError("empty value", record=i, field=key)
    return _text(row[key])


def _require_columns(data, *keys) -> None:
    """A misspelt column of a table is one error up front, not one per row. (Records in a
    list may differ in keys; those are checked one by one.)"""
    if hasattr(data, "columns"):
        have = list(data.columns)
        for key in keys:
            if key is not None and key not in have:
                raise DataError(f"no column {key!r} (columns: {', '.join(map(str, have))})", field=key)


def _system(system_prompt: str | None) -> list[dict]:
    return [{"role": "system", "content": system_prompt}] if system_prompt else []


def from_text_label(df_or_records, text: str = "text", label: str = "label", system_prompt: str | None = None,
                    template: str | None = None, id: str | None = None) -> list[dict]:
    """Classification rows -> chat examples whose assistant reply is the label.

    `template` formats the user message, e.g. "Classify this support message:\\n{text}";
    `id` names a column of unique ids, else ids are generated as ex-00001, ex-00002, ...
    "record" in errors is the 1-based row (for a CSV, the data row, header not counted).
    """
    if template is not None and "{text}" not in template:
        raise DataError(f"template must contain {{text}}, got {template!r}", field="template")
    _require_columns(df_or_records, text, label, id)
    records = _records(df_or_records)
    examples, seen = [], {}
    for i, row in enumerate(records, 1):
        body, answer = _field(row, text, i), _field(row, label, i)
        ex_id = _field(row, id, i) if id else f"ex-{i:05d}"
        if ex_id in seen:
            raise DataError(f"duplicate id {ex_id!r} (also record {seen[ex_id]})", record=i, field=id)
        seen[ex_id] = i
        user = template.replace("{text}", body) if template else body
        messages = [*_system(system_prompt), {"role": "user", "content": user}, {"role": "assistant", "content": answer}]
        examples.append({"messages": messages, "id": ex_id, "label": answer})
    return examples


def from_prompt_completion(records, system_prompt: str | None = None) -> list[dict]:
    """Legacy {"prompt", "completion"} pairs -> chat examples (text kept as written;
    `advice` points out separators and stop sequences left over from the legacy format)."""
    out = []
    _require_columns(records, "prompt", "completion")
    for i, row in enumerate(_records(records), 1):
        _field(row, "prompt", i), _field(row, "completion", i)
        # Not _field's stripped text: in the legacy format whitespace was part of the data.
        prompt, completion = str(row["prompt"]), str(row["completion"])
        out.append({"messages": [*_system(system_prompt), {"role": "user", "content": prompt},
                                 {"role": "assistant", "content": completion}]})
    return out


def from_sharegpt(records) -> list[dict]:
    """ShareGPT conversations ({"conversations": [{"from": "human"|"gpt"|"system", "value": ...}]})."""
    out = []
    for i, row in enumerate(_records(records), 1):
        turns = row.get("conversations", row.get("conversation"))
        if not isinstance(turns, list) or not turns:
            raise DataError("expected a non-empty \"conversations\" list", record=i, field="conversations")
        messages = []
        for j, turn in enumerate(turns):
            where = f"conversations[{j}]"
            if not isinstance(turn, dict):
                raise DataError(f"expected an object, got {type(turn).__name__}", record=i, field=where)
            who = turn.get("from")
            role = SHAREGPT_ROLES.get(str(who).lower()) if who is not None else None
            if role is None:
                raise DataError(f"unknown speaker {who!r}; expected one of {sorted(set(SHAREGPT_ROLES))}",
                                record=i, field=where + ".from")
            if not isinstance(turn.get("value"), str):
                raise DataError("missing text", record=i, field=where + ".value")
            messages.append({"role": role, "content": turn["value"]})
        out.append({"messages": messages})
    return out


def from_alpaca(records) -> list[dict]:
    """Alpaca rows ({"instruction", "input"?, "output"}); input, when present, follows the
    instruction after a blank line, as Alpaca's own prompt template places it."""
    out = []
    _require_columns(records, "instruction", "output")
    for i, row in enumerate(_records(records), 1):
        instruction, output = _field(row, "instruction", i), _field(row, "output", i)
        extra = row.get("input")
        user = instruction if _missing(extra) else f"{instruction}\n\n{_text(extra)}"
        out.append({"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": output}]})
    return out


def _strict(example: dict) -> dict:
    keys = PREFERENCE_KEYS if "input" in example else CHAT_KEYS
    return {k: example[k] for k in keys if k in example}


def _jsonable(value):
    """numpy scalars (a label or id straight from a DataFrame) as plain Python values."""
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def write_jsonl(examples, path, strict: bool = True) -> Path:
    """Write one example per line (UTF-8, non-ASCII kept readable); returns the path.

    strict=True keeps only the keys of OpenAI's schema (drops "id", "label", ...): what
    you upload. strict=False keeps everything: what evaluation reads back. The file is
    written to a temporary name and renamed, so a crash never leaves half a training file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            for i, example in enumerate(examples, 1):
                if not isinstance(example, dict):
                    raise DataError(f"a {type(example).__name__}, expected a dict", path, record=i)
                try:
                    line = json.dumps(_strict(example) if strict else example, ensure_ascii=False, default=_jsonable)
                except (TypeError, ValueError) as exc:
                    raise DataError(f"cannot be written as JSON: {exc}", path, record=i) from None
                f.write(line + "\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def prompt_messages(example: dict) -> list[dict]:
    """What a model is asked: the messages before the final assistant turn (a preference
    example's input messages)."""
    if isinstance(example.get("input"), dict):
        return list(example["input"].get("messages") or [])
    messages = list(example.get("messages") or [])
    while messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        messages.pop()
        break
    return messages


def _content(message) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and isinstance(p.get("text"), str))
    return content if isinstance(content, str) else ""


def _last(messages, role: str) -> str | None:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == role:
            return _content(message)
    return None


def to_frame(examples):
    """One row per example, for looking at data: id, label, system, user (last), assistant
    (last; the preferred reply for preference data), n_messages."""
    import pandas as pd

    rows = []
    for i, example in enumerate(examples, 1):
        if isinstance(example.get("input"), dict):
            messages = list(example["input"].get("messages") or [])
            reply = example.get("preferred_output", example.get("preferred_completion")) or []
            messages += [m for m in reply if isinstance(m, dict)]
        else:
            messages = example.get("messages") or []
        rows.append({"id": example.get("id", f"ex-{i:05d}"), "label": example.get("label"),
                     "system": _last(messages, "system"), "user": _last(messages, "user"),
                     "assistant": _last(messages, "assistant"), "n_messages": len(messages)})
    return pd.DataFrame(rows, columns=["id", "label", "system", "user", "assistant", "n_messages"])
