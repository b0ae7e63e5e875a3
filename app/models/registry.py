"""Registered models and their versions (lineage: each unlearning job adds a child of the version it started from)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin, IdMixin, UTCDateTime


class RegisteredModel(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "models"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    source_path: Mapped[str] = mapped_column(Text)  # the registered directory, symlinks resolved
    # models <-> model_versions reference each other; use_alter adds this key after both tables exist.
    current_version_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("model_versions.id", use_alter=True), nullable=True)


class ModelVersion(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "number"),)

    model_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("models.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1 for the registered directory, then 2, 3, ...
    parent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    # The job that produced this version (None for version 1); jobs also point at versions, hence use_alter.
    job_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("jobs.id", use_alter=True), nullable=True)
    location: Mapped[str] = mapped_column(Text)  # the registered dir (v1) or the artifact manifest key
    files: Mapped[dict[str, Any]] = mapped_column(JSON)  # {relative path: sha256}
    total_bytes: Mapped[int] = mapped_column(BigInteger)
    weights_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
