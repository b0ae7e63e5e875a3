from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.models.base import Base, CreatedAtMixin, IdMixin, UTCDateTime


class Tenant(IdMixin, CreatedAtMixin, Base):
    __tablename__ = "tenants"

    name: Mapped[str] = mapped_column(String(200), unique=True)
    # The compliance issue parks this tenant's jobs in `awaiting_approval`; the server default lets the
    # column be added to a ledger that already has tenants.
    require_approval: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    api_keys: Mapped[list[ApiKey]] = relationship(back_populates="tenant")


class ApiKey(IdMixin, CreatedAtMixin, Base):
    """An API key is stored as sha256 of its secret part; `prefix` identifies it in listings and logs."""

    __tablename__ = "api_keys"

    tenant_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    tenant: Mapped[Tenant] = relationship(back_populates="api_keys")
