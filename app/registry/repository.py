from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import ModelVersion, RegisteredModel


def model_of_tenant(session: Session, tenant_id: uuid.UUID, model_id: uuid.UUID) -> RegisteredModel | None:
    return session.scalars(
        select(RegisteredModel).where(RegisteredModel.id == model_id, RegisteredModel.tenant_id == tenant_id)
    ).one_or_none()


def models_of_tenant(session: Session, tenant_id: uuid.UUID, *, limit: int,
                     after: tuple[str, uuid.UUID] | None) -> list[RegisteredModel]:
    query = select(RegisteredModel).where(RegisteredModel.tenant_id == tenant_id)
    if after is not None:
        name, model_id = after
        query = query.where((RegisteredModel.name > name)
                            | ((RegisteredModel.name == name) & (RegisteredModel.id > model_id)))
    return list(session.scalars(query.order_by(RegisteredModel.name, RegisteredModel.id).limit(limit)))


def versions_of(session: Session, model_id: uuid.UUID) -> list[ModelVersion]:
    return list(session.scalars(select(ModelVersion).where(ModelVersion.model_id == model_id)
                                .order_by(ModelVersion.number)))


def version_of_model(session: Session, model_id: uuid.UUID, version_id: uuid.UUID) -> ModelVersion | None:
    return session.scalars(
        select(ModelVersion).where(ModelVersion.id == version_id, ModelVersion.model_id == model_id)
    ).one_or_none()
