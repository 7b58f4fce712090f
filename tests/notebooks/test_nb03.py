"""03_train run by papermill after 01 and 02, on the tiny model: a real job to the end, created
with the raw openai calls, its noise-checked diagnosis, the advice, checkpoints, a few answers
from the fine-tuned model and the run manifest."""
import json
from pathlib import Path

import nbformat
import pytest

from ftutils.evaluate.policy_rules import violations
from ftutils.train.runs import read_manifest
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.slow


def test_train_tiny(notebook_run, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    values = notebook_run("03_train")
    run_dir = Path(values["_run_dir"])
    manifest = read_manifest(run_dir)
    assert manifest["status"] == "succeeded", manifest
    assert manifest["fine_tuned_model"].startswith("ft:tiny-smollm2:local:banking:")
    assert manifest["backend"] == "local" and manifest["base_model"] == "tiny-smollm2"
    assert manifest["hyperparameters"]["n_epochs"] == 2 and manifest["hyperparameters"]["batch_size"] == 8
    assert manifest["files"]["train"]["id"].startswith("file-") and manifest["files"]["test"]["path"].endswith("test.jsonl")
    # Every epoch's checkpoint kept (a notebook-started server keeps them all), the last under the final model.
    assert [c["step"] for c in manifest["checkpoints"]][-1] == manifest["final_metrics"]["step"]
    assert len(manifest["checkpoints"]) == 2
    assert manifest["checkpoints"][-1]["model"].startswith(manifest["fine_tuned_model"] + ":ckpt-step-")
    # A real run: the loss moved (the tiny model starts from random weights, ~ln(vocab)).
    assert manifest["final_metrics"]["train_loss"] < manifest["final_metrics"]["first_train_loss"]

    diagnosis = manifest["diagnosis"]
    assert diagnosis["verdict"] in ("good", "overfitting", "underfitting", "can't tell", "unusable")
    # The per-item validation losses of both epochs, with their intervals, and the verdict's comparison.
    assert [e["epoch"] for e in diagnosis["epochs"]] == [1, 2]
    scored = [e for e in diagnosis["epochs"] if e["item_loss"] is not None]
    assert scored and all(e["item_loss_lo"] <= e["item_loss"] <= e["item_loss_hi"] for e in scored)
    if diagnosis["verdict"] in ("overfitting", "underfitting"):
        assert diagnosis["comparison"]["clears_noise"] is True
    assert violations_of(manifest) == []

    # What was trained: a small share of the parameters (LoRA), and of each example's tokens (the answer).
    assert 0 < values["lora"]["share"] < 0.05 and 0 < values["trained_share"] < 0.5
    assert values["moved"]["n"] > 0  # the adapter was read (the random test model has no ||W|| on disk)
    assert manifest["trained_tokens"] > 0 and values["estimated_tokens"] > 0
    assert len(values["samples"]) == 3
    assert TEST_KEY not in (run_dir / "run.json").read_text()

    book = nbformat.read(values["_executed"], as_version=4)  # sources and texts as strings
    sources = ["".join(c["source"]) for c in book["cells"]]
    assert any("conn.client.files.create(" in s for s in sources)
    assert any("conn.client.fine_tuning.jobs.create(" in s for s in sources)
    assert any("chat.completions.create(model=job.fine_tuned_model" in s for s in sources)
    outputs = [o for c in book["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    # The loss curves once (the monitor's own final figure is not shown twice), and the LoRA update sizes.
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    assert TEST_KEY not in json.dumps(book)
    assert "recorded" not in json.dumps([o for o in outputs if o["output_type"] == "stream"])


def violations_of(manifest):
    from ftutils.evaluate.policy import advise

    return violations(advise(manifest), manifest)
