"""06_preference run by papermill on the tiny model: a real DPO job to the end, its loss from
ln 2 at the first step, and the held-out prompts answered before and after. 06 needs nothing
from the notebooks before it, so it runs on its own (on the session's server)."""
import json
import math
from pathlib import Path

import pytest

from tests.conftest import TEST_KEY
from tests.notebooks.conftest import TINY

pytestmark = pytest.mark.slow


def test_preference_tiny(notebook_run, monkeypatch):
    monkeypatch.setenv("FTUTILS_INTERACTIVE", "0")
    values = notebook_run("06_preference")
    params = TINY["06_preference"]
    assert values["status"] == "succeeded", values
    assert values["fine_tuned_model"].startswith("ft:tiny-smollm2:local:preference:")
    assert values["job_id"].startswith("ftjob-")
    n_train = params["n_pairs"] - params["n_validation"]
    assert values["n_train_pairs"] == n_train
    assert values["n_epochs"] == params["n_epochs"] and values["beta"] == 0.1
    assert values["n_steps"] == params["n_epochs"] * math.ceil(n_train / params["batch_size"])
    # At the first step the adapter is zero: the model is its own reference, the loss ln 2
    # (bf16 rounding aside); a broken reference or margin would start elsewhere.
    assert abs(values["first_train_loss"] - math.log(2)) < 0.02, values
    # And it falls, on the held-out pairs too: the preferred replies (long, helpful) gain on the
    # curt ones, even for the random-weight model.
    assert 0 < values["last_train_loss"] < values["first_train_loss"]
    assert 0 < values["best_full_valid_loss"] < math.log(2)
    assert values["n_checkpoints"] >= 1
    # The table compares both models on every held-out prompt.
    assert values["n_compared"] == params["n_validation"]
    assert values["answer_columns"] == ["user", "preferred", "non_preferred", "base model", "after DPO"]
    assert 0 <= values["n_changed"] <= values["n_compared"]

    book = json.loads(Path(values["_executed"]).read_text())
    outputs = [o for c in book["cells"] if c["cell_type"] == "code" for o in c.get("outputs", [])]
    assert not [o for o in outputs if o["output_type"] == "error"]
    # The answers table was shown with both models' answers.
    tables = [o["data"]["text/plain"] for o in outputs if "after DPO" in "".join(o.get("data", {}).get("text/plain", ""))]
    assert tables and "base model" in "".join(tables[-1])
    assert TEST_KEY not in json.dumps(book)
