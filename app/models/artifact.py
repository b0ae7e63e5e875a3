from __future__ import annotations

from sqlalchemy import BigInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.models.base import Base, CreatedAtMixin, IdMixin


class Artifact(IdMixin, CreatedAtMixin, Base):
    """One object of the content-addressed store (`app.core.artifacts`), named by the sha256 of its bytes."""

    __tablename__ = "artifacts"

    key: Mapped[str] = mapped_column(String(64), unique=True)
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    location: Mapped[str] = mapped_column(Text)
    media_type: Mapped[str] = mapped_column(String(200))
