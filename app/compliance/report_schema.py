"""The audit report (one per job), schema version 1.0. Documented field by field in docs/AUDIT_REPORT.md.

The report holds hashes, ids, numbers and settings, never record text. It is stored as canonical JSON
(`report_json_bytes`), and those exact bytes are a subject of the signed in-toto statement.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

SCHEMA_VERSION = "1.0"
MERKLE_ALGORITHM = "rfc6962-sha256 (leaf = sha256(0x00 || record sha256), node = sha256(0x01 || left || right))"
LIMITATIONS = (
    "Empirical unlearning is evidence, not a proof. The evaluation shows how the new model behaves on the tests "
    "listed in this report, against the stated thresholds; it cannot rule out that other prompts, attacks or "
    "further fine-tuning would recover some of the removed information. Only the new model version is covered: "
    "older checkpoints (the version this job started from and any copies of it, including backups and deployed "
    "replicas) still hold the data until they are deleted, and this report does not attest to their deletion "
    "unless the retention actions below say so."
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class JobInfo(_Strict):
    job_id: str
    request_id: str | None = Field(None, description="The client's Idempotency-Key, when one was sent")
    request_sha256: str | None = Field(None, description="sha256 of the canonical request (without raw records)")
    tenant_id: str
    tenant_name: str | None = None
    status: str
    received_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    subject_reference: str | None = None
    legal_basis: str | None = None


class ForgetData(_Strict):
    kind: str
    record_count: int = Field(ge=0)
    record_sha256: list[str] = Field(description="sha256 of each record's canonical JSON, in submission order")
    merkle_root: str
    merkle_algorithm: str = MERKLE_ALGORITHM
    holdout_count: int = 0

    @model_validator(mode="after")
    def _count_matches(self) -> ForgetData:
        if len(self.record_sha256) != self.record_count:
            raise ValueError(f"record_count {self.record_count} but {len(self.record_sha256)} record hashes")
        return self


class DatasetRef(_Strict):
    dataset_id: str
    name: str | None = None
    record_count: int
    sha256: str


class ModelVersionInfo(_Strict):
    version_id: str | None = None
    number: int | None = None
    files: dict[str, str] = Field(description="relative path -> sha256 of every file of the checkpoint")
    total_bytes: int | None = None


class ModelInfo(_Strict):
    model_id: str
    name: str
    before: ModelVersionInfo
    after: ModelVersionInfo | None = None


class MaskInfo(_Strict):
    sha256: str
    k: int | None = None
    fraction: float | None = None
    density: dict[str, float] = Field(default_factory=dict, description="module -> share of its weights masked")


class MethodInfo(_Strict):
    name: str
    hyperparameters: dict[str, Any] = Field(description="every setting of the engine config, as run")
    seed: int | None = None
    config_hash: str | None = None


class CodeInfo(_Strict):
    package_version: str
    git_commit: str | None = None
    engine_version: str | None = None


class HardwareInfo(BaseModel):
    model_config = ConfigDict(extra="allow")

    device: str
    accelerator: str | None = None
    torch_version: str | None = None
    cuda_version: str | None = None
    host: str | None = None


class Training(_Strict):
    steps: int = 0
    stop_reason: str | None = None
    loss_curves: dict[str, list[float]] = Field(default_factory=dict,
                                                description="loss per step: `forget`, `retain` (and others)")


class MetricRow(_Strict):
    key: str
    label: str | None = None
    before: float | None = None
    after: float | None = None
    op: Literal[">=", "<="] | None = None
    threshold: float | None = Field(None, description="the bound applied (after scaling by the before value)")
    passed: bool | None = None
    note: str = ""


class TruthRatios(_Strict):
    before: list[float] = Field(default_factory=list)
    after: list[float] = Field(default_factory=list)
    reference: list[float] | None = None


class Evaluation(_Strict):
    policy: dict[str, Any]
    before: dict[str, Any]
    after: dict[str, Any]
    metrics: list[MetricRow] = Field(default_factory=list)
    truth_ratios: TruthRatios = Field(default_factory=TruthRatios)


class CriterionOutcome(_Strict):
    name: str
    key: str | None = None
    value: float | None = None
    bound: float | None = None
    passed: bool | None = Field(description="None: not evaluated (its number was missing)")
    reason: str


class Verdict(_Strict):
    passed: bool
    reason: str
    criteria: list[CriterionOutcome]


class Probe(_Strict):
    name: str
    description: str = ""
    before: float | None = None
    after: float | None = None
    threshold: float | None = None
    passed: bool | None = None


class RetentionAction(_Strict):
    action: str = Field(description="e.g. forget_records_purged, weights_deleted, artifact_kept")
    target: str
    at: datetime | None = None
    detail: str = ""


class AuditReport(_Strict):
    schema_version: Literal["1.0"] = SCHEMA_VERSION
    issued_at: datetime
    job: JobInfo
    forget_data: ForgetData
    retain_data: DatasetRef | None = None
    model: ModelInfo
    mask: MaskInfo | None = None
    method: MethodInfo
    code: CodeInfo
    hardware: HardwareInfo
    timings_s: dict[str, float] = Field(default_factory=dict, description="wall time per stage, seconds")
    training: Training = Field(default_factory=Training)
    evaluation: Evaluation
    verdict: Verdict
    robustness: list[Probe] = Field(default_factory=list)
    retention: list[RetentionAction] = Field(default_factory=list)
    limitations: str = LIMITATIONS

    @field_validator("limitations")
    @classmethod
    def _fixed_limitations(cls, value: str) -> str:
        if value != LIMITATIONS:
            raise ValueError("the limitations statement is fixed; it cannot be edited per report")
        return value


def report_json_bytes(report: AuditReport) -> bytes:
    """The stored, signed form: canonical JSON (sorted keys, no spaces, UTF-8) with a final newline."""
    data = report.model_dump(mode="json")
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n"


def json_schema() -> dict[str, Any]:
    return AuditReport.model_json_schema()


# --- helpers that turn the engine's evaluation dumps into report sections ------------------------------------


def _value(results: dict[str, Any], key: str) -> float | None:
    entry = results.get(key)
    return entry.get("value") if isinstance(entry, dict) else None


def metric_rows(before: dict[str, Any], after: dict[str, Any], policy: dict[str, Any],
                verdict: dict[str, Any]) -> list[MetricRow]:
    """One row per metric of the after report (`EvaluationReport.model_dump()`), criteria first, with the
    bound and outcome of the verdict criterion that reads it."""
    before_results = before.get("results", {})
    after_results = after.get("results", {})
    ops = {c["name"]: c.get("op") for c in policy.get("criteria", [])}
    rows: list[MetricRow] = []
    seen: set[str] = set()
    for outcome in verdict.get("criteria", []):
        key = outcome.get("key")
        if key is None or key in seen:
            continue
        seen.add(key)
        note = (after_results.get(key) or {}).get("note", "") if isinstance(after_results.get(key), dict) else ""
        rows.append(MetricRow(key=key, label=outcome["name"], before=_value(before_results, key),
                              after=_value(after_results, key), op=ops.get(outcome["name"]),
                              threshold=outcome.get("bound"), passed=outcome.get("passed"), note=note))
    for key in sorted(after_results):
        if key in seen:
            continue
        entry = after_results[key]
        rows.append(MetricRow(key=key, before=_value(before_results, key), after=_value(after_results, key),
                              note=entry.get("note", "") if isinstance(entry, dict) else ""))
    return rows


def truth_ratios(before: dict[str, Any], after: dict[str, Any], reference: list[float] | None = None,
                 split: str = "forget") -> TruthRatios:
    """Per-item truth ratios before/after (`<split>/truth_ratio`), plus the reference model's
    (`ReferenceValues.truth_ratios`) when the job had one."""
    def items(report: dict[str, Any]) -> list[float]:
        entry = report.get("results", {}).get(f"{split}/truth_ratio") or {}
        return list(entry.get("per_item") or [])

    return TruthRatios(before=items(before), after=items(after), reference=list(reference) if reference else None)
