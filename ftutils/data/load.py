"""Reading raw data: tables (CSV, TSV, JSON, JSONL, XLSX) and JSONL streams.

Every problem is reported by file and line, because the person fixing it opens the file
in an editor, not a traceback. `iter_jsonl` never stops at a bad line, so a validator can
list them all in one pass; `read_jsonl` stops at the first.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

TABLE_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".xlsx")
BLANK_LINE = "blank line"


class DataError(ValueError):
    """Bad input, named by file, line and field so it can be found and fixed."""

    def __init__(self, message: str, path=None, line: int | None = None, field: str | None = None,
                 record: int | None = None):
        where = ", ".join(p for p in (str(path) if path else "", f"line {line}" if line else "",
                                      f"record {record}" if record else "", f"field {field}" if field else "") if p)
        super().__init__(f"{where}: {message}" if where else message)
        self.path, self.line, self.field, self.record = path, line, field, record


@dataclass(frozen=True)
class JsonlLine:
    line: int
    """1-based line number in the file."""
    obj: dict | None
    """The parsed object, or None when the line is not one."""
    error: str | None
    """Why the line is not an object (not UTF-8, not JSON, a list, blank), else None."""


def _check_file(path) -> Path:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    if path.is_dir():
        raise IsADirectoryError(f"{path}: is a folder, not a file")
    return path


def describe_json_error(exc: json.JSONDecodeError) -> str:
    return f"not valid JSON: {exc.msg} (column {exc.colno})"


def parse_line(raw: bytes) -> tuple[dict | None, str | None]:
    """Parse one JSONL line (bytes, newline included or not) into (object, error)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return None, f"not UTF-8: byte 0x{raw[exc.start]:02X} at column {exc.start + 1}; re-save the file as UTF-8"
    if not text.strip():
        return None, BLANK_LINE
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        return None, describe_json_error(exc)
    except RecursionError:
        return None, "not valid JSON: nested too deeply"
    if not isinstance(obj, dict):
        return None, f"a JSON {type_name(obj)}, not an object; each line must be one {{...}} example"
    return obj, None


def type_name(value) -> str:
    """The JSON name of a parsed value's type, for messages aimed at people who wrote JSON."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def iter_jsonl(path) -> Iterator[JsonlLine]:
    """Stream a JSONL file line by line, reporting each bad line instead of stopping.

    A UTF-8 byte-order mark on the first line is skipped (Excel and Notepad write one).
    A final newline does not make an extra line.
    """
    path = _check_file(path)
    with path.open("rb") as f:
        for number, raw in enumerate(f, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]
            obj, error = parse_line(raw)
            yield JsonlLine(number, obj, error)


def read_jsonl(path) -> list[dict]:
    """All objects of a JSONL file; raises DataError naming the file and line of the first bad one.

    Blank lines are skipped: they carry nothing and editors add them at the end."""
    out = []
    for item in iter_jsonl(path):
        if item.error == BLANK_LINE:
            continue
        if item.error:
            raise DataError(item.error, path, item.line)
        out.append(item.obj)
    return out


def _read_json(path: Path):
    import pandas as pd

    try:
        data = json.loads(path.read_bytes().decode("utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise DataError(f"not UTF-8 (byte at offset {exc.start}); re-save the file as UTF-8", path) from None
    except json.JSONDecodeError as exc:
        hint = " (one object per line? name it .jsonl)" if exc.msg == "Extra data" else ""
        raise DataError(describe_json_error(exc) + hint, path, exc.lineno) from None
    if isinstance(data, dict):
        # {"data": [...]} and similar wrappers: take the one list of records inside.
        lists = [k for k, v in data.items() if isinstance(v, list)]
        if len(lists) != 1:
            raise DataError("expected a list of records or an object holding exactly one list, "
                            f"found an object with keys {sorted(data)[:10]}", path)
        data = data[lists[0]]
    if not isinstance(data, list):
        raise DataError(f"expected a list of records, found a JSON {type_name(data)}", path)
    for i, row in enumerate(data):
        if not isinstance(row, dict):
            raise DataError(f"record {i + 1} is a JSON {type_name(row)}, not an object", path)
    return pd.DataFrame.from_records(data)


def read_table(path, **kw):
    """Read a table by its extension: .csv, .tsv, .json (a list of records), .jsonl, .xlsx.

    Extra keyword arguments go to the pandas reader of CSV, TSV and XLSX (`sheet_name=`, `sep=`, ...).
    Text columns stay strings: ids like "007" must not become 7.
    """
    import pandas as pd

    path = _check_file(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise DataError(f"unsupported extension {suffix or '(none)'}; expected one of {', '.join(TABLE_SUFFIXES)}", path)
    if path.stat().st_size == 0:
        raise DataError("the file is empty", path)
    if suffix in (".csv", ".tsv"):
        kw.setdefault("sep", "\t" if suffix == ".tsv" else ",")
        kw.setdefault("dtype", str)
        kw.setdefault("keep_default_na", False)
        kw.setdefault("encoding", "utf-8-sig")
        try:
            return pd.read_csv(path, **kw)
        except UnicodeDecodeError as exc:
            raise DataError(f"not UTF-8 (byte at offset {exc.start}); re-save the file as UTF-8", path) from None
        except pd.errors.ParserError as exc:
            raise DataError(f"cannot parse as {suffix[1:].upper()}: {exc}", path) from None
    if suffix == ".xlsx":
        kw.setdefault("dtype", str)
        try:
            return pd.read_excel(path, **kw)
        except (ValueError, KeyError, OSError) as exc:  # openpyxl's zip errors subclass these
            raise DataError(f"cannot read as an Excel workbook: {exc}", path) from None
        except Exception as exc:  # zipfile.BadZipFile: a renamed CSV, a truncated download
            raise DataError(f"cannot read as an Excel workbook: {type(exc).__name__}: {exc}", path) from None
    if suffix == ".jsonl":
        return pd.DataFrame.from_records(read_jsonl(path))
    return _read_json(path)
