from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from app.datasets.schemas import RecordKind
from app.registry.schemas import ModelVersionOut
from grin_engine.config import UnlearnConfig
from grin_engine.evaluation.config import JudgeConfig
from grin_engine.evaluation.verdict import Criterion, VerdictPolicy, default_policy


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


class ProbeSets(BaseModel):
    """Evaluation data that is not forget data: what the before/after reports are measured on."""

    model_config = ConfigDict(extra="forbid")

    mcq: list[Any] | None = Field(None, description="WMDP rows {question, choices[4], answer} on the knowledge "
                                                     "to remove (text jobs)")
    mcq_retain: list[Any] | None = Field(None, description="WMDP rows on a control domain whose knowledge must "
                                                           "survive (text jobs)")
    harmful: list[Any] | None = Field(None, description="held-out harmful prompts: PKU-SafeRLHF rows or {prompt, "
                                                        "response} (harmful jobs; default: the holdout records)")
    normal: list[Any] | None = Field(None, description="normal prompts {question, answer} for utility (harmful jobs; "
                                                       "default: the retain records)")


PROBE_KINDS = {"mcq": "wmdp", "mcq_retain": "wmdp", "harmful": "harmful", "normal": "qa"}


class EvaluationSpec(BaseModel):
    """The verdict policy (`criteria` absent: the job kind's default, see `default_policy`), the probe sets it
    is measured on, and the judge of harmful responses (rules only through the API)."""

    model_config = ConfigDict(extra="forbid")

    criteria: list[Criterion] | None = Field(None, description="default: the policy of the job kind")
    missing_fails: bool | None = Field(None, description="default: that of the kind's policy")
    probes: ProbeSets = Field(default_factory=lambda: ProbeSets())
    judge: JudgeConfig | None = Field(None, description="rules judge: {kind: rules, patterns: [regex, ...]}")

    def resolve(self, kind: str) -> dict[str, Any]:
        """What the job stores: a complete VerdictPolicy plus probes and judge (extra keys VerdictPolicy ignores)."""
        base = default_policy(kind)
        policy = VerdictPolicy(criteria=self.criteria if self.criteria is not None else base.criteria,
                               missing_fails=base.missing_fails if self.missing_fails is None else self.missing_fails)
        out = policy.model_dump(mode="json")
        probes = self.probes.model_dump(mode="json", exclude_none=True)
        if probes:
            out["probes"] = probes
        if self.judge is not None:
            out["judge"] = self.judge.model_dump(mode="json")
        return out


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
    evaluation: EvaluationSpec = Field(default_factory=lambda: EvaluationSpec(),
                                       description="verdict policy (default: the kind's), probe sets, judge")
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


class SectionMetric(BaseModel):
    name: str
    key: str = Field(description="report key of the evaluation")
    before: float | None
    after: float | None
    after_int4: float | None = Field(description="after, on the 4-bit quantized model")
    change: float | None = Field(description="after / before (None when before is 0 or missing)")


class KindSection(BaseModel):
    """The job kind's own part of the report: its goal metrics before, after and after quantization."""

    title: str
    kind: str
    metrics: list[SectionMetric]
    notes: list[str] = Field(default_factory=list)


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
    section: KindSection | None = Field(None, description="hazardous knowledge (text) / harmful behaviour (harmful)")
    signed: SignedReport | None = Field(None, description="the signed audit report (report.json, report.html, "
                                                          "report.dsse.json) once issued")
    history: list[JobEventOut] = Field(description="the job's status changes")
