"""ftutils.data.load: tables by extension, JSONL streamed with every bad line reported."""
from __future__ import annotations

import json

import pandas as pd
import pytest

from ftutils.data.load import BLANK_LINE, DataError, iter_jsonl, read_jsonl, read_table

ROWS = [{"id": "007", "text": "Où est ma commande ?", "label": "shipping"},
        {"id": "008", "text": "I was charged twice, please help", "label": "billing"}]


def _expected():
    return pd.DataFrame(ROWS)


@pytest.mark.parametrize("suffix", [".csv", ".tsv", ".json", ".jsonl", ".xlsx"])
def test_read_table_every_format_gives_the_same_frame(tmp_path, suffix):
    path = tmp_path / f"data{suffix}"
    df = _expected()
    if suffix == ".csv":
        df.to_csv(path, index=False)
    elif suffix == ".tsv":
        df.to_csv(path, index=False, sep="\t")
    elif suffix == ".json":
        path.write_text(json.dumps(ROWS, ensure_ascii=False), encoding="utf-8")
    elif suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    else:
        df.to_excel(path, index=False)
    got = read_table(path)
    pd.testing.assert_frame_equal(got.reset_index(drop=True), df, check_dtype=False)
    assert got["id"].tolist() == ["007", "008"]  # ids stay text, leading zeros kept


def test_read_table_json_wrapped_in_an_object(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps({"data": ROWS, "version": 2}), encoding="utf-8")
    assert read_table(path)["label"].tolist() == ["shipping", "billing"]


def test_read_table_csv_with_bom_and_empty_cells(tmp_path):
    path = tmp_path / "excel.csv"
    path.write_bytes("\ufeffid,text,label\n1,hello,\n".encode("utf-8"))
    df = read_table(path)
    assert list(df.columns) == ["id", "text", "label"]
    assert df.loc[0, "label"] == ""


@pytest.mark.parametrize("name, content, needle", [
    ("data.txt", b"a,b\n", "unsupported extension .txt"),
    ("empty.csv", b"", "the file is empty"),
    ("latin1.csv", "id,text\n1,caf\xe9\n".encode("latin-1"), "not UTF-8"),
    ("lines.json", b'{"a": 1}\n{"a": 2}\n', "name it .jsonl"),
    ("scalar.json", b"42", "expected a list of records"),
    ("mixed.json", b'[{"a": 1}, 3]', "record 2 is a JSON number"),
    ("fake.xlsx", b"id,text\n1,hello\n", "cannot read as an Excel workbook"),
    ("bad.jsonl", b'{"a": 1}\n{"a": \n', "line 2"),
])
def test_read_table_bad_input_names_the_file(tmp_path, name, content, needle):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as err:
        read_table(path)
    assert str(path) in str(err.value)
    assert needle in str(err.value)


def test_read_table_missing_file_and_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        read_table(tmp_path / "nope.csv")
    with pytest.raises(IsADirectoryError):
        read_table(tmp_path)


def test_iter_jsonl_reports_every_bad_line_and_keeps_going(tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + b'{"ok": 1}\n'     # 1: BOM is skipped
                     b'{"ok": \n'                          # 2: truncated JSON
                     b'{"text": "caf\xe9"}\n'              # 3: latin-1 byte
                     b'[1, 2]\n'                           # 4: not an object
                     b'   \n'                              # 5: blank
                     b'{"ok": 6}')                         # 6: no final newline
    items = list(iter_jsonl(path))
    assert [i.line for i in items] == [1, 2, 3, 4, 5, 6]
    assert items[0].obj == {"ok": 1} and items[0].error is None
    assert items[1].obj is None and items[1].error.startswith("not valid JSON") and "column" in items[1].error
    assert "not UTF-8" in items[2].error and "0xE9" in items[2].error and "column 14" in items[2].error
    assert "JSON array, not an object" in items[3].error
    assert items[4].error == BLANK_LINE
    assert items[5].obj == {"ok": 6}


def test_read_jsonl_stops_at_the_first_bad_line_and_skips_blank_ones(tmp_path):
    path = tmp_path / "train.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\n', encoding="utf-8")
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    path.write_text('{"a": 1}\n{"a": 2}\nnot json\n{"a": 4}\n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_jsonl(path)
    assert err.value.line == 3 and err.value.path == path
    assert str(err.value).startswith(f"{path}, line 3: not valid JSON")


def test_read_table_csv_row_with_too_many_fields_names_the_line(tmp_path):
    path = tmp_path / "ragged.csv"
    path.write_text("id,text,label\n1,hello,a\n2,oops, extra,b\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"ragged\.csv: cannot parse as CSV: .*line 3"):
        read_table(path)
