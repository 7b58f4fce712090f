"""OpenAI's model ids as aliases of local bases: the table, its setting, and `ftutils serve`
refusing a table that points nowhere. (The aliases training and answering over HTTP are in
test_cookbook.py.)"""
from __future__ import annotations

import json
import subprocess
import sys

from ftutils import openai_rules
from ftutils.local.models import aliases
from ftutils.local.models.registry import Registry
from ftutils.local.settings import Settings
from tests.conftest import ROOT


def test_every_fine_tunable_chat_id_maps_to_the_default_base():
    table = aliases.alias_table()
    for model_id in (*openai_rules.FINE_TUNABLE_CHAT_SNAPSHOTS, *openai_rules.FINE_TUNABLE_SHORT_NAMES):
        assert table[model_id] == "smollm2-135m-instruct"
    assert {"gpt-4o-mini-2024-07-18", "gpt-4o-mini", "gpt-4.1-nano", "gpt-3.5-turbo-0613", "gpt-4o-2024-08-06"} <= set(table)
    assert "davinci-002" not in table  # prompt/completion files: not trained here


def test_overrides_change_one_id_all_ids_or_add_one():
    table = aliases.alias_table({"*": "tiny-smollm2", "gpt-4.1": "smollm2-135m-instruct", "my-alias": "tiny-smollm2"})
    assert table["gpt-4o-mini"] == "tiny-smollm2" and table["gpt-4.1"] == "smollm2-135m-instruct"
    assert aliases.local_base("my-alias", {"my-alias": "tiny-smollm2"}) == "tiny-smollm2"
    assert aliases.local_base("tiny-smollm2") == "tiny-smollm2"  # a base is its own


def test_what_can_be_fine_tuned_and_what_is_listed(tmp_path):
    assert Registry().can_fine_tune("gpt-4o-mini-2024-07-18") and not Registry().is_base("gpt-4o-mini-2024-07-18")
    assert not Registry().can_fine_tune("gpt-5-nonesuch")
    listed = {m.id: m.owned_by for m in Registry(model_aliases={"*": "tiny-smollm2"}).listed()}
    assert listed["gpt-4.1-nano-2025-04-14"] == "alias of tiny-smollm2" and listed["tiny-smollm2"] == "ftutils"
    line = aliases.describe_aliases({"*": "tiny-smollm2", "gpt-4.1": "smollm2-135m-instruct"})
    assert line.endswith("gpt-4.1 -> smollm2-135m-instruct") and "gpt-4o-mini-2024-07-18" in line


def test_the_setting_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FTUTILS_MODEL_ALIASES", json.dumps({"*": "tiny-smollm2"}))
    settings = Settings.load(tmp_path)
    assert settings.model_aliases == {"*": "tiny-smollm2"}
    assert Settings.from_json(settings.to_json()).model_aliases == {"*": "tiny-smollm2"}  # the worker sees it too


def test_serve_refuses_an_alias_to_nowhere(tmp_path):
    env = {"FTUTILS_MODEL_ALIASES": json.dumps({"gpt-4o-mini": "no-such-base"}), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run([sys.executable, "-m", "ftutils", "serve", "--port", "0", "--data-dir", str(tmp_path)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "'gpt-4o-mini' maps to 'no-such-base'" in proc.stderr and "tiny-smollm2" in proc.stderr
    bad = {**env, "FTUTILS_MODEL_ALIASES": json.dumps(["tiny-smollm2"])}
    proc = subprocess.run([sys.executable, "-m", "ftutils", "serve", "--port", "0", "--data-dir", str(tmp_path)],
                          cwd=ROOT, env=bad, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "must be a JSON object" in proc.stderr
