"""03_train run by papermill after 01 and 02, on the tiny model: a real job to the end, its
diagnosis, checkpoints, a few answers from the fine-tuned model and the run manifest."""
import json
from pathlib import Path

import pytest

from ftutils.train.runs import read_manifest
from tests.conftest import TEST_KEY

pytestmark = pytest.mark.slow


def test_train_tiny(notebook_run, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    values = notebook_run("03_train")
    assert values["status"] == "succeeded", values
    assert values["fine_tuned_model"].startswith("ft:tiny-smollm2:local:banking:")
    assert values["verdict"] in ("good", "overfitting", "underfitting", "unusable")
    assert values["n_checkpoints"] >= 1 and values["n_steps"] >= 2 and values["n_samples"] == 3
    # A real run: the loss moved (the tiny model starts from random weights, ~ln(vocab)).
    assert values["final_train_loss"] < values["first_train_loss"]
    # The validation loss of every epoch, measured on the whole file, and the epoch it was lowest at.
    assert len(values["epoch_valid_loss"]) == 2 and values["best_epoch"] in (1, 2)
    assert values["epoch_valid_loss"][values["best_epoch"] - 1] == min(values["epoch_valid_loss"])
    # What was trained: a small share of the parameters (LoRA), and of each example's tokens (the answer).
    assert 0 < values["lora_share"] < 0.05 and 0 < values["trained_share"] < 0.5
    assert values["trained_tokens"] > 0 and values["estimated_tokens"] > 0

    run_dir = Path(values["_run_dir"])
    manifest = read_manifest(run_dir)
    assert manifest["job_id"] == values["job_id"] and manifest["backend"] == "local"
    assert manifest["base_model"] == "tiny-smollm2"
    assert manifest["hyperparameters"]["n_epochs"] == 2 and manifest["hyperparameters"]["batch_size"] == 8
    assert manifest["files"]["train"]["id"].startswith("file-")
    assert manifest["files"]["test"]["path"].endswith("test.jsonl")
    assert manifest["checkpoints"][-1]["model"].startswith(manifest["fine_tuned_model"] + ":ckpt-step-")
    assert manifest["final_metrics"]["train_loss"] == values["final_train_loss"]
    assert manifest["diagnosis"]["verdict"] == values["verdict"] and manifest["diagnosis"]["findings"]
    assert TEST_KEY not in (run_dir / "run.json").read_text()

    book = json.loads(Path(values["_executed"]).read_text())
    outputs = [o for c in book["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    # The loss curves once (the monitor's own final figure is not shown twice).
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 1
    assert TEST_KEY not in json.dumps(book)
