"""The one metrics reader on result files in OpenAI's formats and on metrics events."""
import base64
import math

import pytest

from ftutils.train import metrics

# OpenAI's result file: validation measured only on some steps, empty cells elsewhere.
CSV = ("step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
       "1,1.52347,0.0,,\n2,0.57719,0.5,0.9,0.4\n3,3.63525,0.0,,\n4,1.72257,0.25,1.1,0.45\n")


def test_plain_csv():
    df = metrics.read_result_file(CSV.encode())
    assert list(df.columns) == metrics.COLUMNS
    assert df["step"].tolist() == [1, 2, 3, 4]
    assert df["train_loss"].tolist() == pytest.approx([1.52347, 0.57719, 3.63525, 1.72257])
    assert df["valid_loss"].dropna().tolist() == [0.9, 1.1]
    assert math.isnan(df.loc[0, "valid_mean_token_accuracy"])


def test_base64_csv_reads_the_same():
    encoded = base64.b64encode(CSV.encode())
    assert metrics.read_result_file(encoded).equals(metrics.read_result_file(CSV.encode()))


def test_legacy_column_names():
    legacy = ("step,elapsed_tokens,elapsed_examples,training_loss,training_sequence_accuracy,"
              "training_token_accuracy,validation_loss,validation_sequence_accuracy,validation_token_accuracy\n"
              "2,100,4,0.8,0.1,0.7,0.95,0.0,0.6\n1,50,2,1.2,0.0,0.5,,,\n")
    df = metrics.read_result_file(legacy.encode())
    assert df["step"].tolist() == [1, 2]
    assert df["train_loss"].tolist() == [1.2, 0.8]
    assert df["train_accuracy"].tolist() == [0.5, 0.7]
    assert df.loc[1, "valid_mean_token_accuracy"] == 0.6


def test_garbage_is_an_error():
    with pytest.raises(ValueError, match="neither CSV nor base64"):
        metrics.read_result_file(b"\xff\xfe not a result file at all!")


def test_events_as_the_server_sends_them():
    events = [
        {"type": "message", "message": "Job started", "data": {}},
        {"type": "metrics", "data": {"step": 2, "total_steps": 4, "train_loss": 0.5, "train_mean_token_accuracy": 0.6,
                                     "valid_loss": 0.7, "valid_mean_token_accuracy": 0.55}},
        {"type": "metrics", "data": {"step": 1, "total_steps": 4, "train_loss": 0.9, "train_mean_token_accuracy": 0.3}},
        {"type": "metrics", "data": {"step": 2, "total_steps": 4, "train_loss": 0.45, "train_mean_token_accuracy": 0.6,
                                     "full_valid_loss": 0.66, "full_valid_mean_token_accuracy": 0.5}},
    ]
    df = metrics.metrics_from_events(events)
    assert df["step"].tolist() == [1, 2]
    assert df["train_loss"].tolist() == [0.9, 0.45]  # a repeated step: the last event wins
    assert df["train_accuracy"].tolist() == [0.3, 0.6]
    assert df.loc[1, "full_valid_loss"] == 0.66
    assert metrics.summary(df)["first_train_loss"] == 0.9
    assert metrics.summary(df)["train_loss"] == 0.45


def test_no_metrics_events():
    df = metrics.metrics_from_events([{"type": "message", "data": None}])
    assert df.empty and list(df.columns) == metrics.COLUMNS


def test_checkpoint_rows_reads_every_form_the_same():
    """The table jobs.checkpoints returns, the manifest's records and raw API dicts give the
    same steps (sorted) and validation loss (full set first, then batch, else None)."""
    import pandas as pd

    table = pd.DataFrame({"step": [20, 10, 30], "valid_loss": [0.9, 1.1, math.nan],
                          "full_valid_loss": [0.8, math.nan, math.nan]})
    records = [{"id": "c2", "step": 20, "metrics": {"valid_loss": 0.9, "full_valid_loss": 0.8}},
               {"id": "c1", "step": 10, "metrics": {"valid_loss": 1.1, "full_valid_loss": None}},
               {"id": "c3", "step": 30, "metrics": {"valid_loss": None}}]
    raw = [{"step_number": 20, "metrics": {"full_valid_loss": 0.8}}, {"step_number": 10, "valid_loss": 1.1},
           {"step_number": 30}]
    expected = [{"step": 10, "valid": 1.1}, {"step": 20, "valid": 0.8}, {"step": 30, "valid": None}]
    for form in (table, records, raw):
        assert metrics.checkpoint_rows(form) == expected
    assert metrics.checkpoint_rows(None) == [] and metrics.checkpoint_rows([]) == []
