from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Dataset


def dataset_of_tenant(session: Session, tenant_id: uuid.UUID, dataset_id: uuid.UUID) -> Dataset | None:
    return session.scalars(
        select(Dataset).where(Dataset.id == dataset_id, Dataset.tenant_id == tenant_id)
    ).one_or_none()


def datasets_of_tenant(session: Session, tenant_id: uuid.UUID, *, limit: int,
                       after: tuple[str, uuid.UUID] | None) -> list[Dataset]:
    query = select(Dataset).where(Dataset.tenant_id == tenant_id)
    if after is not None:
        name, dataset_id = after
        query = query.where((Dataset.name > name) | ((Dataset.name == name) & (Dataset.id > dataset_id)))
    return list(session.scalars(query.order_by(Dataset.name, Dataset.id).limit(limit)))
