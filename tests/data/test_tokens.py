"""Token counting: offline vocabularies, model-aware encodings with visible fallbacks,
counts checked against tiktoken directly, limits and truncation."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import tiktoken

from ftutils.data import tokens as T
from tests.conftest import ROOT


def test_counts_offline_with_no_cache_and_a_dead_network(tmp_path):
    # A fresh process, no tiktoken cache, every proxy pointing at a closed port: any download would fail.
    env = {k: v for k, v in os.environ.items() if k not in ("TIKTOKEN_CACHE_DIR", "DATA_GYM_CACHE_DIR")}
    dead = "http://127.0.0.1:9"
    env.update(HTTP_PROXY=dead, HTTPS_PROXY=dead, http_proxy=dead, https_proxy=dead, ALL_PROXY=dead,
               NO_PROXY="", FTUTILS_CACHE=str(tmp_path / "cache"), HOME=str(tmp_path))
    code = textwrap.dedent("""
        import os
        from ftutils.data.tokens import encoding_for
        enc, note = encoding_for("gpt-4o-mini")
        enc35, _ = encoding_for("gpt-3.5-turbo")
        print(enc.name, len(enc.encode_ordinary("Hello, world!")), enc35.name, note, os.environ["TIKTOKEN_CACHE_DIR"])
    """)
    out = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    name, n, name35, note, cache = out.stdout.split()
    assert (name, int(n), name35, note) == ("o200k_base", 4, "cl100k_base", "None")
    assert cache == str(tmp_path / "cache" / "tiktoken")
    files = sorted(p.name for p in (tmp_path / "cache" / "tiktoken").iterdir())
    expected = sorted(hashlib.sha1(f"https://openaipublic.blob.core.windows.net/encodings/{n}.tiktoken".encode()).hexdigest()
                      for n in ("cl100k_base", "o200k_base"))
    assert files == expected


def test_user_cache_dir_holding_the_files_is_kept(tmp_path, monkeypatch):
    folder = T.ensure_offline_encodings()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(folder))
    assert T.ensure_offline_encodings() == folder
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))  # set but without the files: ours is used
    monkeypatch.setenv("FTUTILS_CACHE", str(tmp_path / "mine"))
    assert T.ensure_offline_encodings() == tmp_path / "mine" / "tiktoken"
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(tmp_path / "mine" / "tiktoken")


def test_a_corrupt_cached_file_is_replaced(tmp_path, monkeypatch):
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("FTUTILS_CACHE", str(tmp_path))
    folder = T.ensure_offline_encodings()
    victim = folder / T._cache_key("o200k_base")
    victim.write_bytes(b"garbage")
    T.ensure_offline_encodings()
    assert hashlib.sha256(victim.read_bytes()).hexdigest() == T.OFFLINE_ENCODINGS["o200k_base"]


@pytest.mark.parametrize("model, encoding, approximate", [
    ("gpt-4o-mini-2024-07-18", "o200k_base", False), ("gpt-4o-mini", "o200k_base", False),
    ("gpt-4.1-nano-2025-04-14", "o200k_base", False), ("o3-mini", "o200k_base", False),
    ("gpt-3.5-turbo-0125", "cl100k_base", False), ("gpt-4-0613", "cl100k_base", False),
    ("ft:gpt-4o-mini-2024-07-18:acme:support:abc123", "o200k_base", False),
    ("smollm2-135m-instruct", "o200k_base", True), ("tiny-smollm2", "o200k_base", True),
    ("ft:smollm2-135m-instruct:local:demo:x1y2z3", "o200k_base", True),
    ("my-own-model", "o200k_base", True), (None, "o200k_base", False),
])
def test_encoding_per_model_and_the_fallback_is_visible(model, encoding, approximate):
    enc, note = T.encoding_for(model)
    assert enc.name == encoding
    assert (note is not None) == approximate
    if approximate:
        assert "approximation" in note


def test_limits():
    assert T.limits_for("gpt-4o-mini")[0].max_training_tokens == 65_536
    assert T.limits_for("gpt-3.5-turbo-0125")[0].max_training_tokens == 16_385
    assert T.limits_for("gpt-4o")[0] == T.MODEL_LIMITS["gpt-4o-2024-08-06"]
    local = T.limits_for("smollm2-135m-instruct")[0]
    assert local.context_window == 8_192 and local.max_training_tokens <= local.context_window
    limits, note = T.limits_for("nobody-knows")
    assert limits.max_training_tokens == 65_536 and "no token limits known" in note


def test_known_count_checked_by_hand_against_tiktoken():
    enc = tiktoken.get_encoding("o200k_base")
    example = {"messages": [{"role": "system", "content": "You sort tickets."},
                            {"role": "user", "content": "My card was charged twice", "name": "ana"},
                            {"role": "assistant", "content": "billing"}]}
    n = lambda s: len(enc.encode(s))  # noqa: E731
    expected_total = (3 + n("system") + n("You sort tickets.")
                      + 3 + n("user") + n("My card was charged twice") + n("ana") + 1
                      + 3 + n("assistant") + n("billing") + 3)
    counted = T.count_example(example, "gpt-4o-mini")
    assert counted == T.ExampleTokens(expected_total, n("billing"), n("billing"))
    assert n("billing") == 1 and expected_total == 27  # pinned: a change in framing must be deliberate


def test_weight_zero_turns_are_not_trained():
    example = {"messages": [{"role": "user", "content": "hi"},
                            {"role": "assistant", "content": "hello there, friend", "weight": 0},
                            {"role": "user", "content": "bye"},
                            {"role": "assistant", "content": "goodbye"}]}
    t = T.count_example(example, "gpt-4o-mini")
    enc = tiktoken.get_encoding("o200k_base")
    assert t.assistant == len(enc.encode("hello there, friend")) + len(enc.encode("goodbye"))
    assert t.trained == len(enc.encode("goodbye"))


def test_tool_calls_and_tools_add_tokens():
    plain = {"messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "content": "sunny"}]}
    with_tools = {**plain, "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {}}}]}
    call = {"messages": [{"role": "user", "content": "weather?"}, {"role": "assistant", "tool_calls": [
        {"id": "c", "type": "function", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}]}
    assert T.count_example(with_tools).total > T.count_example(plain).total
    assert T.count_example(call).assistant > 0


def test_cl100k_and_o200k_differ_on_the_same_text():
    text = {"messages": [{"role": "user", "content": "Überprüfen Sie bitte meine Rechnung Nr. 1182 vom 3. März."},
                         {"role": "assistant", "content": "billing"}]}
    assert T.count_example(text, "gpt-3.5-turbo-0125").total != T.count_example(text, "gpt-4o-mini").total


def test_token_stats_frame():
    examples = [{"messages": [{"role": "user", "content": "word " * k}, {"role": "assistant", "content": "ok"}]}
                for k in (1, 100, 700)]
    df = T.token_stats(examples, "tiny-smollm2")
    assert list(df.columns) == ["n_messages", "n_tokens", "n_assistant_tokens", "n_trained_tokens", "over_limit"]
    assert df["n_messages"].tolist() == [2, 2, 2]
    assert df["over_limit"].tolist() == [False, False, True]
    assert df["n_tokens"].is_monotonic_increasing
    assert df.attrs["limit"] == T.MODEL_LIMITS["tiny-smollm2"].max_training_tokens
    assert "approximation" in df.attrs["note"]
    assert T.token_stats(examples, "gpt-4o-mini").attrs["note"] is None


def test_truncation_preview_cuts_from_the_end():
    example = {"messages": [{"role": "system", "content": "Be brief."},
                            {"role": "user", "content": " ".join(f"w{i}" for i in range(400))},
                            {"role": "assistant", "content": "final answer"}]}
    preview = T.truncation_preview(example, "gpt-4o-mini", limit=100)
    assert preview.truncated and preview.n_tokens > 100
    assert [m["role"] for m in preview.kept] == ["system", "user"]
    assert [m["role"] for m in preview.dropped] == ["assistant"]
    assert preview.kept[1]["content"].startswith("w0 w1") and preview.cut_text.endswith("w399")
    assert preview.kept[1]["content"] + preview.cut_text == example["messages"][1]["content"]
    kept = {"messages": preview.kept}
    assert T.count_example(kept, "gpt-4o-mini").total <= 100
    assert "cut" in str(preview) and "dropped whole: assistant" in str(preview)
    short = T.truncation_preview(example, "gpt-4o-mini")
    assert not short.truncated and "nothing is cut" in str(short)


def test_counter_cache_is_bounded():
    counter = T.TokenCounter("gpt-4o-mini")
    counter.MAX_CACHED = 10
    for i in range(35):
        assert counter(f"text {i}") == len(counter.encoding.encode_ordinary(f"text {i}"))
    assert len(counter._cache) <= 10


def test_unwritable_cache_falls_back_to_the_temp_dir(tmp_path, monkeypatch):
    import tempfile

    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should go")
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR")
    monkeypatch.setenv("FTUTILS_CACHE", str(blocker))
    folder = T.ensure_offline_encodings()
    assert folder == Path(tempfile.gettempdir()) / "ftutils-tiktoken"
    assert T._holds_encodings(folder) and os.environ["TIKTOKEN_CACHE_DIR"] == str(folder)
