from __future__ import annotations

import uuid
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import EvaluationResult, ForgetRecordHash, IdempotencyKey, Job, JobEvent, Mask


def job_of_tenant(session: Session, tenant_id: uuid.UUID, job_id: uuid.UUID) -> Job | None:
    return session.scalars(select(Job).where(Job.id == job_id, Job.tenant_id == tenant_id)).one_or_none()


def jobs_of_tenant(session: Session, tenant_id: uuid.UUID, *, limit: int, status: str | None,
                   model_id: uuid.UUID | None, before: tuple[datetime, uuid.UUID] | None) -> list[Job]:
    """Newest first; `before` is the (created_at, id) of the last job of the previous page."""
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status is not None:
        query = query.where(Job.status == status)
    if model_id is not None:
        query = query.where(Job.model_id == model_id)
    if before is not None:
        created_at, job_id = before
        query = query.where((Job.created_at < created_at) | ((Job.created_at == created_at) & (Job.id < job_id)))
    return list(session.scalars(query.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit)))


def count_in_flight(session: Session, tenant_id: uuid.UUID, statuses: Collection[str], *, up_to: int) -> int:
    """The tenant's jobs in these states, counted up to `up_to`: the limit check runs under the submission
    lock, so its cost must not grow with a long queue."""
    in_flight = select(Job.id).where(Job.tenant_id == tenant_id, Job.status.in_(list(statuses))).limit(up_to)
    return session.scalar(select(func.count()).select_from(in_flight.subquery())) or 0


def events_of(session: Session, job_id: uuid.UUID, *, after_id: int, limit: int | None,
              types: Collection[str] | None = None) -> list[JobEvent]:
    query = select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after_id)
    if types is not None:
        query = query.where(JobEvent.type.in_(list(types)))
    query = query.order_by(JobEvent.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def job_status(session: Session, job_id: uuid.UUID) -> str | None:
    return session.scalar(select(Job.status).where(Job.id == job_id))


def idempotency_key(session: Session, tenant_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    return session.scalars(select(IdempotencyKey)
                           .where(IdempotencyKey.tenant_id == tenant_id, IdempotencyKey.key == key)).one_or_none()


def mask_of(session: Session, job_id: uuid.UUID) -> Mask | None:
    return session.scalars(select(Mask).where(Mask.job_id == job_id)).one_or_none()


def record_hashes_of(session: Session, job_id: uuid.UUID) -> list[str]:
    return list(session.scalars(select(ForgetRecordHash.sha256).where(ForgetRecordHash.job_id == job_id)
                                .order_by(ForgetRecordHash.index)))


def evaluation_results_of(session: Session, job_id: uuid.UUID) -> dict[str, EvaluationResult]:
    return {r.phase: r for r in session.scalars(select(EvaluationResult).where(EvaluationResult.job_id == job_id))}
