from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.schemas import RecordKind
from app.registry.schemas import ModelVersionOut
from grin_engine.config import UnlearnConfig
from grin_engine.evaluation.verdict import VerdictPolicy


class MethodSpec(BaseModel):
    """`grin` localizes, perturbs and fine-tunes the masked weights; `baseline` runs the same objective on all
    weights without noise (the comparison point). `config` overrides the preset's hyperparameters."""

    model_config = ConfigDict(extra="forbid")

    preset: Literal["grin", "baseline"] = "grin"
    config: UnlearnConfig = Field(default_factory=UnlearnConfig)

    def resolve(self) -> UnlearnConfig:
        if self.preset == "grin":
            return self.config
        return UnlearnConfig.baseline(self.config.finetune.objective,
                                      **self.config.model_dump(exclude_unset=True))


class UnlearnRequest(BaseModel):
    """An unlearning request. Sent as JSON, or as multipart/form-data with this object (without `forget`
    and `holdout`) in a `request` part and the records as JSON Lines in `forget` and `holdout` file parts."""

    model_config = ConfigDict(extra="forbid")

    model_id: uuid.UUID
    base_version_id: uuid.UUID | None = Field(None, description="default: the model's current version")
    kind: RecordKind = Field(description="qa: {question, answer}; text: {text}; harmful: {prompt, response}")
    forget: list[Any] = Field(default_factory=list, description="the records to forget (required)")
    holdout: list[Any] | None = Field(None, description="records of the same kind the model never saw")
    retain_dataset_id: uuid.UUID | None = None
    method: MethodSpec = Field(default_factory=MethodSpec)
    evaluation: VerdictPolicy = Field(default_factory=VerdictPolicy)
    subject_reference: str | None = Field(None, max_length=500, description="opaque, for the audit trail")
    legal_basis: str | None = Field(None, max_length=500)
    metadata: dict[str, Any] = Field(default_factory=dict)
    require_approval: bool | None = Field(None, description="wait in `awaiting_approval` for POST .../approve "
                                                            "before the new version becomes current; default: "
                                                            "the tenant's setting")


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True, populate_by_name=True)

    id: uuid.UUID
    model_id: uuid.UUID
    base_version_id: uuid.UUID
    result_version_id: uuid.UUID | None
    retain_dataset_id: uuid.UUID | None
    kind: RecordKind
    status: str
    stage: str | None
    progress: float = Field(ge=0.0, le=1.0)
    attempts: int
    max_attempts: int
    cancel_requested: bool
    error: str | None
    metrics: dict[str, Any] | None = Field(description="metric summary once evaluated")
    method: dict[str, Any] = Field(description="the resolved engine UnlearnConfig")
    evaluation: dict[str, Any] = Field(description="the verdict policy")
    subject_reference: str | None
    legal_basis: str | None
    metadata: dict[str, Any] = Field(validation_alias="request_metadata")
    forget_count: int
    forget_merkle_root: str
    holdout_count: int
    request_sha256: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime
    require_approval: bool = Field(False, description="the approval gate applies to this job")
    base_pinned: bool = Field(False, description="the client chose base_version_id; else it is the model's "
                                                 "current version when the job starts running")
    reviewed_by: str | None = Field(None, description="API key prefix that approved or rejected the job")


class RejectRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(None, max_length=500, description="recorded in the job's error and history")


class SignedReport(BaseModel):
    """Where the signed audit report is: sha256 keys in the artifact store and the endpoints serving them."""

    report_sha256: str
    html_sha256: str | None
    envelope_sha256: str | None
    links: dict[str, str]


class JobEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    type: str
    stage: str | None
    data: dict[str, Any]
    created_at: datetime


class ForgetSummary(BaseModel):
    count: int
    merkle_root: str
    record_sha256: list[str] = Field(description="sha256 of each record's canonical JSON, in submission order")


class MaskSummary(BaseModel):
    sha256: str
    summary: dict[str, Any]


class EvaluationSummary(BaseModel):
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None


class JobReport(BaseModel):
    """The audit report of a job (JSON; signed HTML comes with the compliance work)."""

    generated_at: datetime
    job: JobOut
    model_name: str
    base_version: ModelVersionOut
    result_version: ModelVersionOut | None
    forget: ForgetSummary
    mask: MaskSummary | None
    evaluation: EvaluationSummary
    history: list[JobEventOut] = Field(description="the job's status changes")
    signed: SignedReport | None = Field(None, description="the signed audit report (report.json, report.html, "
                                                          "report.dsse.json) once issued")
