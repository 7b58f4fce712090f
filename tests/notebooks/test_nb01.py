"""01_access run by papermill: on the local backend by default, and on the OpenAI code path
(the local server posing as the remote API) with the key kept out of the executed notebook."""
import json
from pathlib import Path

import nbformat
import pytest

from tests.conftest import TEST_KEY

pytestmark = pytest.mark.slow


def test_local_backend(notebook_run, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    values = notebook_run("01_access", backend="local")
    conn, check = values["connection"], values["check"]
    assert conn["backend"] == "local" and check["ok"] is True
    assert len(check["models"]) >= 2 and values["base_model"] == "tiny-smollm2"
    assert {"smollm2-135m-instruct", "tiny-smollm2"} <= set(check["fine_tunable"])
    # Before anything else: what works where today, with OpenAI's dates and their source.
    text = Path(values["_executed"]).read_text()
    assert "What works where today (2026-12-07)" in text and "a new key gets a refusal" in text
    assert "2027-01-06 (in 30 days): no organisation can create new fine-tuning jobs" in text
    assert "https://developers.openai.com/api/docs/deprecations" in text
    # The pretrained model answered the three questions (its own words, whatever they are).
    book = nbformat.read(values["_executed"], as_version=4)  # sources and texts as strings
    [asked] = [c for c in book["cells"] if "chat.completions.create" in "".join(c["source"])]
    printed = "".join(o.get("text", "") for o in asked["outputs"] if o["output_type"] == "stream")
    assert printed.count("tiny-smollm2: ") == 3 and "the task: my card got declined at the store" in printed


def test_openai_path_never_shows_the_key(notebook_run, local_server, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    monkeypatch.setenv("OPENAI_API_KEY", TEST_KEY)
    monkeypatch.setenv("OPENAI_BASE_URL", local_server.base_url)
    monkeypatch.delenv("FTUTILS_BACKEND", raising=False)
    values = notebook_run("01_access", backend="auto", base_model="tiny-smollm2")
    conn, check = values["connection"], values["check"]
    assert conn["backend"] == "openai" and conn["key_source"] == "env" and check["ok"] is True
    assert conn["base_url"] == local_server.base_url and len(check["models"]) >= 2

    executed = Path(values["_executed"])
    text = executed.read_text()
    assert TEST_KEY not in text
    book = json.loads(text)
    assert TEST_KEY not in json.dumps(book["metadata"]["papermill"]["parameters"])
    assert "ftu…cdef" in text  # the masked key is what the reader sees
    results = Path(values["_run_dir"]) / "results" / "01_access.json"
    assert TEST_KEY not in results.read_text()
