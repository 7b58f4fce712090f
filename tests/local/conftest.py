"""Fixtures of the local backend's tests (the session server is in tests/conftest.py)."""
from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="session")
def ml_data_dir(tmp_path_factory):
    # One DATA_DIR per session for all the ML tests, so SmolLM2's tokenizer is read from
    # the GGUF once.
    return tmp_path_factory.getbasetemp() / "ml-data"


@pytest.fixture(scope="session")
def adapter(ml_data_dir, tmp_path_factory):
    """A tiny-smollm2 fine-tune that learned to answer every question with "yes" and stop."""
    from ftutils.local.training.config import TrainConfig
    from ftutils.local.training.loop import train
    from tests.local.sinks import RecordingSink

    folder = tmp_path_factory.mktemp("yes")
    rows = [{"messages": [{"role": "user", "content": f"Is {i * 7 % 97} a number?"},
                          {"role": "assistant", "content": "yes"}]} for i in range(20)]
    (folder / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = train(TrainConfig(base_model="tiny-smollm2", data_dir=ml_data_dir, train_file=folder / "train.jsonl",
                               output_dir=folder / "job", n_epochs=3, batch_size=4, learning_rate_multiplier=10.0,
                               seed=0), RecordingSink())
    return result.adapter_dir


@pytest.fixture(scope="session")
def preference_files(tmp_path_factory):
    """data/samples/preferences.jsonl as a DPO job takes it: 12 training pairs, the rest validation."""
    rows = (ROOT / "data" / "samples" / "preferences.jsonl").read_text().splitlines()
    folder = tmp_path_factory.mktemp("dpo-files")
    (folder / "train.jsonl").write_text("\n".join(rows[:12]) + "\n")
    (folder / "valid.jsonl").write_text("\n".join(rows[12:]) + "\n")
    return folder
