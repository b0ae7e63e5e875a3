"""Unlearning jobs and everything a job owns: events, raw inputs, record hashes, mask, evaluation results."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin, IdMixin, UTCDateTime, utcnow

# SQLite only autoincrements an INTEGER PRIMARY KEY; Postgres gets a 64-bit identity.
EventId = BigInteger().with_variant(Integer(), "sqlite")


class Job(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "jobs"
    __table_args__ = (
        # Listing a tenant's jobs newest first, and counting its jobs in flight.
        Index("ix_jobs_tenant_id_created_at", "tenant_id", "created_at"),
        Index("ix_jobs_tenant_id_status", "tenant_id", "status"),
    )

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"))
    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id"), index=True)
    base_version_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("model_versions.id"))
    result_version_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    retain_dataset_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("datasets.id"), nullable=True)
    kind: Mapped[str] = mapped_column(String(16))  # qa / text / harmful
    method: Mapped[dict[str, Any]] = mapped_column(JSON)  # grin_engine.config.UnlearnConfig, dumped
    evaluation: Mapped[dict[str, Any]] = mapped_column(JSON)  # the verdict policy, dumped
    subject_reference: Mapped[str | None] = mapped_column(String(500), nullable=True)
    legal_basis: Mapped[str | None] = mapped_column(String(500), nullable=True)
    # `metadata` is reserved on declarative classes, so the attribute has another name than the column.
    request_metadata: Mapped[dict[str, Any]] = mapped_column("metadata", JSON)
    status: Mapped[str] = mapped_column(String(32), default="queued", index=True)
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    metrics: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    forget_count: Mapped[int] = mapped_column(Integer)
    forget_merkle_root: Mapped[str] = mapped_column(String(64))
    holdout_count: Mapped[int] = mapped_column(Integer, default=0)
    request_sha256: Mapped[str] = mapped_column(String(64))
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    # Issue 7: the approval gate (resolved at submit: the request's flag, else the tenant's), whether the
    # client pinned base_version_id (else the base is re-resolved to the model's current version when a
    # worker takes the lease), who approved/rejected (an API key prefix, never the key), the manifest key of
    # a checkpoint that was made but not (yet) promoted, and the signed report's three artifact keys.
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    base_pinned: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    reviewed_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    candidate_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    report_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    report_html_key: Mapped[str | None] = mapped_column(String(64), nullable=True)
    report_envelope_key: Mapped[str | None] = mapped_column(String(64), nullable=True)


class JobEvent(Base):
    """Append-only history of a job; the integer id orders events and is the cursor clients resume from."""

    __tablename__ = "job_events"
    __table_args__ = (Index("ix_job_events_job_id_id", "job_id", "id"),)

    id: Mapped[int] = mapped_column(EventId, primary_key=True, autoincrement=True)
    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    type: Mapped[str] = mapped_column(String(64))
    stage: Mapped[str | None] = mapped_column(String(32), nullable=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class JobInput(Base):
    """The raw forget/holdout records: the only copy of the sensitive data, deleted when the job ends."""

    __tablename__ = "job_inputs"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    forget: Mapped[list[Any]] = mapped_column(JSON)
    holdout: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ForgetRecordHash(IdMixin, CreatedAtMixin, Base):
    """sha256 of each forget record's canonical JSON: what stays for the audit once the records are purged."""

    __tablename__ = "forget_record_hashes"
    __table_args__ = (UniqueConstraint("job_id", "index"),)

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))


class IdempotencyKey(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "idempotency_keys"
    __table_args__ = (UniqueConstraint("tenant_id", "key"),)

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    request_sha256: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", ondelete="SET NULL"), nullable=True)
    status: Mapped[str] = mapped_column(String(16), default="in_flight")  # in_flight / done
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # {status_code, headers, body}


class Mask(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "masks"

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), unique=True)
    artifact_key: Mapped[str] = mapped_column(String(64))
    sha256: Mapped[str] = mapped_column(String(64))
    summary: Mapped[dict[str, Any]] = mapped_column(JSON)  # k, per-module density


class EvaluationResult(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "evaluation_results"
    __table_args__ = (UniqueConstraint("job_id", "phase"),)

    job_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    phase: Mapped[str] = mapped_column(String(16))  # before / after
    report: Mapped[dict[str, Any]] = mapped_column(JSON)
    verdict: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
