"""Request and response bodies, field for field as openai-python's types.

Responses: FileObject, FileDeleted (openai.types), FineTuningJob (+ Error, Hyperparameters,
Method), FineTuningJobEvent, FineTuningJobCheckpoint (+ Metrics), Model, ModelDeleted,
ChatCompletion. Fields the spec marks required but nullable are always sent (as null);
optional ones the spec does not allow to be null are left out when empty (`dump`).
`from_row` builds a response from the store's row (`ftutils.local.store`).
"""
from __future__ import annotations

from typing import Any, ClassVar, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from ftutils.openai_rules import JobStatus

FilePurpose = Literal["assistants", "assistants_output", "batch", "batch_output", "fine-tune",
                      "fine-tune-results", "vision", "user_data"]
UploadPurpose = Literal["assistants", "batch", "fine-tune", "vision", "user_data", "evals"]


class Out(BaseModel):
    omit_if_none: ClassVar[tuple[str, ...]] = ()

    def dump(self) -> dict:
        data = self.model_dump()
        for name in self.omit_if_none:
            if data.get(name) is None:
                data.pop(name, None)
        return data


class FileObject(Out):
    omit_if_none = ("expires_at", "status_details")
    id: str
    bytes: int
    created_at: int
    filename: str
    object: Literal["file"] = "file"
    purpose: FilePurpose
    status: Literal["uploaded", "processed", "error"]
    expires_at: Optional[int] = None
    status_details: Optional[str] = None

    @classmethod
    def from_row(cls, row: dict) -> "FileObject":
        return cls(id=row["id"], bytes=row["bytes"], created_at=row["created_at"], filename=row["filename"],
                   purpose=row["purpose"], status=row["status"])


class FileDeleted(Out):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class JobError(Out):
    code: str
    message: str
    param: Optional[str] = None


class Hyperparameters(Out):
    batch_size: Union[Literal["auto"], int, None] = None
    learning_rate_multiplier: Union[Literal["auto"], float, None] = None
    n_epochs: Union[Literal["auto"], int, None] = None


class Method(Out):
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: Optional[dict] = None
    dpo: Optional[dict] = None


class FineTuningJob(Out):
    omit_if_none = ("integrations",)
    id: str
    created_at: int
    error: Optional[JobError] = None
    fine_tuned_model: Optional[str] = None
    finished_at: Optional[int] = None
    hyperparameters: Hyperparameters
    model: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
    organization_id: str
    result_files: list[str]
    seed: int
    status: JobStatus
    trained_tokens: Optional[int] = None
    training_file: str
    validation_file: Optional[str] = None
    estimated_finish: Optional[int] = None
    integrations: Optional[list] = None
    metadata: Optional[dict[str, str]] = None
    method: Method

    @classmethod
    def from_row(cls, row: dict, org: str) -> "FineTuningJob":
        return cls(
            id=row["id"], created_at=row["created_at"], error=row["error"], fine_tuned_model=row["fine_tuned_model"],
            finished_at=row["finished_at"], hyperparameters=row["hyperparameters"], model=row["model"],
            organization_id=org, result_files=row["result_files"], seed=row["seed"], status=row["status"],
            trained_tokens=row["trained_tokens"], training_file=row["training_file"],
            validation_file=row["validation_file"],
            estimated_finish=row["estimated_finish"] if row["status"] == "running" else None,
            metadata=row["metadata"], method=row["method"], integrations=row.get("integrations"))

    def dump(self) -> dict:
        data = super().dump()
        data["method"] = self.method.dump()
        for kind in ("supervised", "dpo"):  # only the job's own method's entry
            if data["method"][kind] is None:
                data["method"].pop(kind)
        return data


class FineTuningJobEvent(Out):
    id: str
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    data: dict = Field(default_factory=dict)
    type: Literal["message", "metrics"] = "message"

    @classmethod
    def from_row(cls, row: dict) -> "FineTuningJobEvent":
        return cls(id=row["id"], created_at=row["created_at"], level=row["level"], message=row["message"],
                   data=row["data"] or {}, type=row["type"])


class CheckpointMetrics(Out):
    omit_if_none = ("full_valid_loss", "full_valid_mean_token_accuracy", "step", "train_loss",
                    "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy")
    full_valid_loss: Optional[float] = None
    full_valid_mean_token_accuracy: Optional[float] = None
    step: Optional[float] = None
    train_loss: Optional[float] = None
    train_mean_token_accuracy: Optional[float] = None
    valid_loss: Optional[float] = None
    valid_mean_token_accuracy: Optional[float] = None


class FineTuningJobCheckpoint(Out):
    id: str
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: CheckpointMetrics
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    step_number: int

    @classmethod
    def from_row(cls, row: dict) -> "FineTuningJobCheckpoint":
        return cls(id=row["id"], created_at=row["created_at"], fine_tuned_model_checkpoint=row["fine_tuned_model_checkpoint"],
                   fine_tuning_job_id=row["job_id"], metrics=row["metrics"], step_number=row["step_number"])

    def dump(self) -> dict:
        return {**super().dump(), "metrics": self.metrics.dump()}


class Model(Out):
    # shutdown_date is always sent, null when none is announced, as OpenAI's GET /v1/models does.
    id: str
    created: int
    object: Literal["model"] = "model"
    owned_by: str
    shutdown_date: Optional[str] = None


class ModelDeleted(Out):
    id: str
    deleted: bool
    object: str = "model"


def page(items: list[Out], has_more: bool, *, first_last: str | None = None) -> dict:
    """OpenAI's list envelope; `first_id`/`last_id` only where the spec has them.

    first_last="nullable": null on an empty page (checkpoints); "string": the spec makes
    them required strings (files), so an empty page says "".
    """
    body: dict[str, Any] = {"object": "list", "data": [i.dump() for i in items], "has_more": has_more}
    if first_last:
        empty = None if first_last == "nullable" else ""
        body["first_id"] = items[0].id if items else empty
        body["last_id"] = items[-1].id if items else empty
    return body


# -- requests ---------------------------------------------------------------------------
class CreateFineTuningJobRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    training_file: str
    validation_file: Optional[str] = None
    hyperparameters: Optional[dict[str, Any]] = None
    method: Optional[dict[str, Any]] = None
    suffix: Optional[str] = Field(None, min_length=1, max_length=64)
    seed: Optional[int] = Field(None, ge=0, le=2147483647)
    metadata: Optional[dict[str, str]] = None
    integrations: Optional[list] = None


class ChatCompletionRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    max_tokens: Optional[int] = Field(None, ge=1)
    max_completion_tokens: Optional[int] = Field(None, ge=1)
    temperature: Optional[float] = Field(None, ge=0, le=2)
    top_p: Optional[float] = Field(None, gt=0, le=1)
    seed: Optional[int] = Field(None, ge=-2**63, lt=2**63)  # a 64-bit integer, as OpenAI takes
    stop: Union[str, list[str], None] = None
    n: Optional[int] = Field(None, ge=1, le=8)
    logprobs: Optional[bool] = None
    top_logprobs: Optional[int] = Field(None, ge=0, le=20)
    stream: Optional[bool] = None
    stream_options: Optional[dict[str, Any]] = None
    response_format: Optional[dict[str, Any]] = None  # text | json_object | json_schema (local.inference.structured)
    logit_bias: Optional[dict[str, int]] = None  # token id -> -100..100, checked by the engine
    # Accepted so ordinary client calls work; they change nothing on a local model.
    user: Optional[str] = None
    store: Optional[bool] = None
    metadata: Optional[dict[str, str]] = None
    frequency_penalty: Optional[float] = Field(None, ge=-2, le=2)
    presence_penalty: Optional[float] = Field(None, ge=-2, le=2)
