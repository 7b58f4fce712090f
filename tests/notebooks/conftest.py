"""Papermill runs of the notebooks, chained as a user runs them: 01 -> 02 -> 03 -> 04 in
one temporary run folder, on the session's local server, with small parameters; 05 then
runs 02 -> 04 again into a second folder beside it and compares the two.

`notebook_run("03_train")` runs whatever came before it first (once per session) and
returns the values the notebook recorded with `ftutils.train.runs.record` (one short call at
its end); the tests read those, and the run folder's files.
"""
from __future__ import annotations

import pytest

from tests.conftest import ROOT

ORDER = ["01_access", "02_prepare", "03_train", "04_evaluate", "05_iterate"]

# Small parameters per notebook so the chain runs in a couple of minutes on 2 cores.
# Each notebook's owner keeps its entry in step with its parameters cell.
TINY = {
    "01_access": {"base_model": "tiny-smollm2"},
    "02_prepare": {"max_examples": 160},
    "03_train": {"base_model": "tiny-smollm2", "n_epochs": 2, "batch_size": 8},
    # The whole (small) test split: its out-of-scope items come after the in-scope ones.
    "04_evaluate": {"bootstrap_samples": 200},
}
# 05's second run: the same small parameters, and a data change of our own, so there is a
# second run whatever the tiny model's evaluation proposes.
TINY["05_iterate"] = {"extra_params": {**TINY["02_prepare"], **TINY["03_train"], **TINY["04_evaluate"]},
                      "changes": {"train_out_of_scope": True}, "bootstrap_samples": 200}
# 06 stands alone (its own pairs, no earlier notebook's files): a few pairs, short answers.
TINY["06_preference"] = {"base_model": "tiny-smollm2", "n_pairs": 12, "n_validation": 2, "n_epochs": 2,
                         "batch_size": 5, "max_tokens": 8}  # OpenAI's minimum: 10 training pairs


@pytest.fixture(scope="session")
def notebook_run(local_server, tmp_path_factory):
    import papermill as pm

    from ftutils.train.runs import load_record

    run_dir = tmp_path_factory.mktemp("run")
    out_dir = tmp_path_factory.mktemp("executed")
    done: dict[str, dict] = {}

    def run(name: str, **params) -> dict:
        for earlier in ORDER[: ORDER.index(name)] if name in ORDER else []:  # 06 needs none
            if earlier not in done:
                run(earlier)
        if name not in done or params:
            pm.execute_notebook(
                str(ROOT / "notebooks" / f"{name}.ipynb"),
                str(out_dir / f"{name}.ipynb"),
                parameters={"run_dir": str(run_dir), **TINY[name], **params},
                kernel_name="python3", cwd=str(ROOT), progress_bar=False,
            )
            done[name] = load_record(run_dir, name)
            done[name]["_executed"] = str(out_dir / f"{name}.ipynb")
            done[name]["_run_dir"] = str(run_dir)
        return done[name]

    return run
