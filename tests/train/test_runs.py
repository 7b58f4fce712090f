"""Run folders and the run manifest: where relative paths point, what the manifest holds for a
job, and that nothing that looks like a credential ever reaches it."""
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from openai.types.fine_tuning import FineTuningJob

from ftutils.train import runs
from ftutils.train.connect import Connection
from ftutils.train.diagnose import diagnose
from ftutils.train.metrics import COLUMNS
from tests.conftest import ROOT


def a_job(**changes) -> FineTuningJob:
    """A job as the API answers it (openai's own type, validated from its JSON)."""
    data = {"id": "ftjob-abc123", "object": "fine_tuning.job", "created_at": 1_700_000_000, "finished_at": 1_700_000_600,
            "model": "tiny-smollm2", "organization_id": "org-local", "status": "succeeded", "seed": 7,
            "fine_tuned_model": "ft:tiny-smollm2:local:support:abc123", "trained_tokens": 4096,
            "training_file": "file-train", "validation_file": "file-valid", "result_files": ["file-result"],
            "error": None, "hyperparameters": {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"},
            "method": {"type": "supervised", "supervised": {"hyperparameters": {
                "n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 2.0}}}}
    return FineTuningJob.model_validate({**data, **changes})


CONN = Connection(backend="local", base_url="http://127.0.0.1:8765/v1", reason="test", key_source="env",
                  masked_key="sk-…abcd")


def history(n=40):
    df = pd.DataFrame({c: math.nan for c in COLUMNS}, index=range(n))
    df["step"] = range(1, n + 1)
    df["train_loss"] = [2.0 * 0.9 ** i + 0.3 for i in range(n)]
    return df


def checkpoints():
    return pd.DataFrame([{"step": s, "model": f"ft:tiny-smollm2:local:support:abc123:ckpt-step-{s}", "id": f"ftckpt-{s}",
                          "created_at": pd.Timestamp(1_700_000_000 + s, unit="s"), "train_loss": 0.5, "valid_loss": v,
                          "train_mean_token_accuracy": None, "valid_mean_token_accuracy": None,
                          "full_valid_loss": None, "full_valid_mean_token_accuracy": None}
                         for s, v in ((20, 0.7), (40, math.nan))])


def test_manifest_from_job_takes_every_field_from_the_job(tmp_path):
    df, cps = history(), checkpoints()
    d = diagnose(df, cps, n_epochs=2)
    fields = runs.manifest_from_job(CONN, a_job(), tmp_path / "data", df, cps, d)
    assert fields["backend"] == "local" and fields["base_url"] == CONN.base_url
    assert fields["base_model"] == "tiny-smollm2" and fields["job_id"] == "ftjob-abc123"
    assert fields["files"] == {"train": {"id": "file-train", "path": str(tmp_path / "data" / "train.jsonl")},
                               "validation": {"id": "file-valid", "path": str(tmp_path / "data" / "validation.jsonl")},
                               "test": {"path": str(tmp_path / "data" / "test.jsonl")}}
    # As resolved by the job (method.supervised), not the "auto" it was asked for.
    assert fields["hyperparameters"] == {"n_epochs": 2, "batch_size": 8, "learning_rate_multiplier": 2.0}
    assert fields["status"] == "succeeded" and fields["error"] is None and fields["trained_tokens"] == 4096
    assert [c["step"] for c in fields["checkpoints"]] == [20, 40]
    assert fields["checkpoints"][1]["metrics"]["valid_loss"] is None  # NaN is not JSON
    assert fields["final_metrics"]["step"] == 40
    assert fields["final_metrics"]["first_train_loss"] == pytest.approx(2.3)
    assert fields["diagnosis"]["verdict"] == d.verdict

    written = runs.write_manifest(tmp_path / "run", **fields)
    assert json.loads((tmp_path / "run" / runs.MANIFEST).read_text()) == json.loads(json.dumps(written))
    assert runs.read_manifest(tmp_path / "run")["fine_tuned_model"] == "ft:tiny-smollm2:local:support:abc123"
    assert "sk-" not in (tmp_path / "run" / runs.MANIFEST).read_text()


def test_manifest_of_a_failed_job_without_validation(tmp_path):
    job = a_job(status="failed", fine_tuned_model=None, validation_file=None, trained_tokens=None,
                error={"code": "invalid_training_file", "message": "train.jsonl: line 3, field messages: no assistant",
                       "param": "training_file"})
    fields = runs.manifest_from_job(CONN, job, tmp_path, history(0), checkpoints().iloc[:0], None)
    assert fields["files"]["validation"] is None
    assert fields["error"] == {"code": "invalid_training_file", "param": "training_file",
                               "message": "train.jsonl: line 3, field messages: no assistant"}
    assert fields["checkpoints"] == [] and fields["diagnosis"] is None
    assert fields["final_metrics"]["step"] is None and fields["final_metrics"]["train_loss"] is None


@pytest.mark.parametrize("fields", [
    {"api_key": "sk-x"},
    {"files": {"train": {"id": "file-1", "Authorization": "Bearer x"}}},
    {"checkpoints": [{"id": "c", "metrics": {}, "client_secret": "x"}]},
    {"backend": "openai", "OPENAI_APIKEY": "x"},
    {"notes": {"db_password": "x"}},
])
def test_manifest_refuses_credential_like_keys_and_writes_nothing(tmp_path, fields):
    runs.write_manifest(tmp_path, backend="local", job_id="ftjob-1")
    before = (tmp_path / runs.MANIFEST).read_text()
    with pytest.raises(ValueError, match="never go on disk"):
        runs.write_manifest(tmp_path, **fields)
    assert (tmp_path / runs.MANIFEST).read_text() == before


def test_manifest_merges_and_keeps_other_keys(tmp_path):
    runs.write_manifest(tmp_path, backend="local", status="running")
    merged = runs.write_manifest(tmp_path, status="succeeded", note="kept as given")
    assert merged == {"backend": "local", "status": "succeeded", "note": "kept as given"}
    assert runs.read_manifest(tmp_path) == merged
    assert runs.read_manifest(tmp_path / "nothing-here") == {}


def test_project_path_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("FTUTILS_PROJECT_ROOT", raising=False)
    # The repository the package sits in (it has notebooks/), whatever the current directory.
    monkeypatch.chdir(tmp_path)
    assert runs.project_root() == ROOT
    assert runs.project_path("runs/demo") == ROOT / "runs" / "demo"
    assert runs.project_path(tmp_path / "x") == tmp_path / "x"  # absolute paths as given
    monkeypatch.setenv("FTUTILS_PROJECT_ROOT", str(tmp_path / "elsewhere"))
    assert runs.project_path("runs/demo") == tmp_path / "elsewhere" / "runs" / "demo"
    assert not (tmp_path / "elsewhere").exists()  # resolving creates nothing
    made = runs.run_path("runs/demo")
    assert made == tmp_path / "elsewhere" / "runs" / "demo" and made.is_dir()


def test_record_merges_per_notebook(tmp_path):
    assert runs.record(tmp_path, "03_train", status="running", n_steps=1) is None  # a notebook cell shows nothing
    runs.record(tmp_path, "03_train", status="succeeded", path=Path("a/b"))
    assert runs.load_record(tmp_path, "03_train") == {"status": "succeeded", "n_steps": 1, "path": "a/b"}
    # Objects as a notebook has them: a dataclass as its fields, a DataFrame as records.
    import pandas as pd
    from ftutils.train.diagnose import Diagnosis
    runs.record(tmp_path, "03_train", diagnosis=Diagnosis("good", ["fine"]), table=pd.DataFrame({"a": [1, 2]}))
    stored = runs.load_record(tmp_path, "03_train")
    assert stored["diagnosis"]["verdict"] == "good" and stored["table"] == [{"a": 1}, {"a": 2}]
    assert runs.load_record(tmp_path, "04_evaluate") == {}
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["03_train.json"]
