"""06_preference run by papermill on the tiny model: a real DPO job to the end, its loss from
ln 2 at the first step, its own plot (loss, reward margin, reward accuracy), and the held-out
prompts answered before and after, every answer whole. 06 needs nothing from the notebooks
before it, so it runs on its own (on the session's server)."""
import json
import math

import nbformat
import pytest

from tests.conftest import TEST_KEY
from tests.notebooks.conftest import TINY

pytestmark = pytest.mark.slow


def test_preference_tiny(notebook_run, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    values = notebook_run("06_preference")
    params = TINY["06_preference"]
    job, history, summary = values["job"], values["history"], values["summary"]
    assert job["status"] == "succeeded", job
    assert job["fine_tuned_model"].startswith("ft:tiny-smollm2:local:preference:") and job["id"].startswith("ftjob-")
    dpo = job["method"]["dpo"]["hyperparameters"]
    assert dpo["n_epochs"] == params["n_epochs"] and dpo["beta"] == 0.1
    n_train = params["n_pairs"] - params["n_validation"]
    assert [h["step"] for h in history] == list(range(1, params["n_epochs"] * math.ceil(n_train / params["batch_size"]) + 1))
    # At the first step the adapter is zero: the model is its own reference, the loss ln 2
    # (bf16 rounding aside); a broken reference or margin would start elsewhere.
    assert abs(summary["first_train_loss"] - math.log(2)) < 0.02, summary
    # And it falls, on the held-out pairs too: the preferred replies (long, helpful) gain on the
    # curt ones, even for the random-weight model; the margin with it.
    assert 0 < summary["last_train_loss"] < summary["first_train_loss"]
    assert 0 < summary["best_full_valid_loss"] < math.log(2)
    assert history[-1]["train_reward_margin"] > history[0]["train_reward_margin"]
    # Both models on every held-out prompt.
    assert len(values["answers"]) == params["n_validation"]
    assert list(values["answers"][0]) == ["user", "preferred", "non_preferred", "base model", "after DPO"]

    book = nbformat.read(values["_executed"], as_version=4)  # sources and texts as strings
    outputs = [o for c in book["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    # DPO's own figure (the monitor's), not the supervised diagnosis.
    [figure_cell] = [c for c in book["cells"] if "JobMonitor(conn.client, job.id).start()" in "".join(c["source"])]
    assert sum("image/png" in o.get("data", {}) for o in figure_cell["outputs"]) == 1
    assert "Diagnosis" not in json.dumps(book)
    # Every answer printed whole, not cut at a table's 50 characters.
    text = "".join(o.get("text", "") for o in outputs if o["output_type"] == "stream")
    for row in values["answers"]:
        assert " ".join(row["after DPO"].split()) in " ".join(text.split())
    assert TEST_KEY not in json.dumps(book)
