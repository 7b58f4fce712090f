"""`ftutils validate` as a user runs it: a real subprocess, its output and exit code."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.conftest import ROOT

MALFORMED = Path(__file__).parent / "malformed"


def ftutils(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ftutils", "validate", *map(str, args)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_text_output_and_exit_1_on_errors():
    out = ftutils(MALFORMED / "weight_on_user.jsonl")
    assert out.returncode == 1, out.stderr
    assert "NOT OK" in out.stdout and "line 5" in out.stdout and "messages[1].weight" in out.stdout
    assert "weight_not_on_assistant" in out.stdout and "Traceback" not in out.stdout + out.stderr


def test_json_output_lists_findings():
    out = ftutils(MALFORMED / "invalid_tool_name.jsonl", "--json")
    assert out.returncode == 1, out.stderr
    findings = json.loads(out.stdout)
    assert [(f["code"], f["severity"], f["line"], f["field"]) for f in findings] == [
        ("invalid_tools", "error", 3, "tools[0].function.name"),
        ("unknown_tool", "error", 3, "messages[1].tool_calls[0].function.name")]
    assert all(f["message"] for f in findings)


def test_warnings_only_exit_0_and_model_option(tmp_path):
    out = ftutils(MALFORMED / "over_limit_tiny.jsonl", "--model", "tiny-smollm2", "--json")
    assert out.returncode == 0, out.stderr
    assert {(f["code"], f["line"]) for f in json.loads(out.stdout)} == {
        ("approximate_token_count", None), ("over_token_limit", 4)}
    # the same file for gpt-4o-mini (65,536-token limit) is clean
    clean = ftutils(MALFORMED / "over_limit_tiny.jsonl", "--json")
    assert clean.returncode == 0 and json.loads(clean.stdout) == []


def test_binary_file_is_a_finding_not_a_traceback():
    out = ftutils(MALFORMED / "binary.jsonl")
    assert out.returncode == 1 and "binary_file" in out.stdout and "Traceback" not in out.stderr


def test_missing_file_exits_2_with_a_clear_message(tmp_path):
    out = ftutils(tmp_path / "missing.jsonl")
    assert out.returncode == 2
    assert out.stderr.strip() == f"ftutils validate: {tmp_path / 'missing.jsonl'}: no such file"
    assert out.stdout == ""
