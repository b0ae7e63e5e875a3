"""Job leases and the recovery sweep: the ledger, not the broker, decides whether a job runs (torch-free).

A worker may run a job only while it holds the job's lease: `lease_owner` plus `lease_expires_at`,
taken by one conditional UPDATE (so two deliveries of the same message cannot both win) and renewed by a
heartbeat thread. A redelivered message whose job is leased, finished or out of attempts does nothing.

The sweep is what makes a lost message harmless: the embedded filesystem broker never redelivers a message
whose worker died, Redis only does after its (long) visibility timeout, and a broker that was down when the
API committed a job never got the message at all. It re-enqueues every job nobody holds, finishes
`cancelling` jobs whose worker is gone, and fails jobs that have used up their attempts.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.jobs.state import IllegalTransition, append_event, transition
from app.models import Job, JobEvent, RegisteredModel
from app.models.base import utcnow

logger = logging.getLogger("grin.worker.leases")

RUN_JOB_TASK = "grin.pipeline.run_job"
LEASABLE = ("queued", "running")


def new_owner() -> str:
    """A lease owner id: host, pid and a random part (a pid is reused after a crash, the random part is not)."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def _no_live_lease(now: datetime):  # type: ignore[no-untyped-def]
    return or_(Job.lease_owner.is_(None), Job.lease_expires_at.is_(None), Job.lease_expires_at < now)


# Another job on the same model in one of these states (or queued with a live lease: taken, not yet started)
# keeps a job from starting: jobs on one model run one at a time, so each starts from its predecessor's result.
MODEL_BUSY = ("running", "cancelling", "awaiting_approval")


def model_busy(session: Session, model_id: uuid.UUID, job_id: uuid.UUID, now: datetime | None = None) -> Job | None:
    """Another job of the model that is running, cancelling, awaiting approval or leased (or None)."""
    now = now or utcnow()
    other = aliased(Job)
    live = and_(other.lease_owner.is_not(None), other.lease_expires_at.is_not(None), other.lease_expires_at >= now)
    return session.scalars(
        select(other).where(other.model_id == model_id, other.id != job_id,
                            or_(other.status.in_(MODEL_BUSY), and_(other.status == "queued", live)))
        .order_by(other.created_at).limit(1)
    ).first()


def acquire_lease(session: Session, job_id: uuid.UUID, owner: str, lease_seconds: float,
                  now: datetime | None = None) -> bool:
    """Take the job's lease and count an attempt, atomically; False when someone else may run it, or when
    another job on the same model is running, cancelling, awaiting approval or leased (`model_busy`).

    The model's row is locked first (`SELECT ... FOR NO KEY UPDATE`; SQLite serialises writers anyway), so two
    workers taking leases on two jobs of one model cannot both see the model free. NO KEY UPDATE, like every
    row lock in the service: it still serialises the lockers, but not the foreign-key checks (FOR KEY SHARE)
    of a request inserting or updating a job of that model; a plain FOR UPDATE deadlocked those under load.
    Then one UPDATE ... WHERE: the job is queued or running, nobody holds a live lease, and attempts are left.
    A job that has not started yet (still queued) and whose base version was not pinned by the client gets the
    model's current version as its base here, so it unlearns from the result of the jobs that ran before it.
    The caller commits.
    """
    now = now or utcnow()
    model_id = session.scalar(select(Job.model_id).where(Job.id == job_id))
    if model_id is None:
        return False
    session.execute(select(RegisteredModel.id).where(RegisteredModel.id == model_id).with_for_update(key_share=True))
    busy = model_busy(session, model_id, job_id, now)
    if busy is not None:
        logger.info("job %s waits: job %s of the same model is %s", job_id, busy.id, busy.status)
        return False
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status.in_(LEASABLE), _no_live_lease(now), Job.attempts < Job.max_attempts)
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=lease_seconds),
                attempts=Job.attempts + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return False
    current = session.scalar(select(RegisteredModel.current_version_id).where(RegisteredModel.id == model_id))
    if current is not None:
        session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued", Job.base_pinned.is_(False),
                   Job.base_version_id != current)
            .values(base_version_id=current)
            .execution_options(synchronize_session=False)
        )
    return True


def next_waiting(session: Session, model_id: uuid.UUID) -> uuid.UUID | None:
    """The oldest queued job of the model that nobody holds: what to send when the model becomes free."""
    now = utcnow()
    return session.scalar(select(Job.id).where(Job.model_id == model_id, Job.status == "queued",
                                               _no_live_lease(now), Job.cancel_requested.is_(False))
                          .order_by(Job.created_at).limit(1))


def renew_lease(session: Session, job_id: uuid.UUID, owner: str, lease_seconds: float) -> bool:
    """Extend a lease we hold; False when it is no longer ours (expired and taken over, or the job ended)."""
    now = utcnow()
    result = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.lease_owner == owner)
        .values(lease_expires_at=now + timedelta(seconds=lease_seconds), updated_at=now)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def release_lease(session: Session, job_id: uuid.UUID, owner: str, error: str | None = None) -> bool:
    """Give the lease back (the job stays `running` and may be retried); the caller commits."""
    values: dict[str, object] = {"lease_owner": None, "lease_expires_at": None, "updated_at": utcnow()}
    if error is not None:
        values["error"] = error
    result = session.execute(
        update(Job).where(Job.id == job_id, Job.lease_owner == owner).values(**values)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def exhausted_reason(job: Job) -> str:
    last = f"; last error: {job.error}" if job.error else "; the worker running the last attempt was lost"
    return f"gave up after {job.attempts} of {job.max_attempts} attempts{last}"


def fail_if_exhausted(session: Session, job: Job, now: datetime | None = None) -> bool:
    """A queued/running job nobody holds and with no attempts left ends `failed` with the reason."""
    now = now or utcnow()
    live = job.lease_owner is not None and job.lease_expires_at is not None and job.lease_expires_at >= now
    if job.status not in LEASABLE or live or job.attempts < job.max_attempts:
        return False
    try:
        transition(session, job, "failed", error=exhausted_reason(job), data={"attempts": job.attempts})
    except IllegalTransition:
        return False
    return True


@dataclass
class SweepReport:
    requeued: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    cancelled: list[str] = field(default_factory=list)


def sweep(session_factory: Callable[[], Session], send: Callable[[str], None], *, grace_s: float,
          work_root: Path | None = None, now: datetime | None = None) -> SweepReport:
    """Re-enqueue jobs nobody holds; end the ones that cannot run any more. Safe to run anywhere, any time.

    `send(job_id)` enqueues `grin.pipeline.run_job`. A job is claimed before it is sent (its `updated_at` is
    bumped with a compare-and-set), so concurrent sweeps on several workers send it once per grace period;
    the lease makes any duplicate message a no-op anyway. A job it ends loses its work dir under
    `work_root` (the copy of its raw data included) as well as its `job_inputs` row.
    """
    now = now or utcnow()
    report = SweepReport()
    stale = now - timedelta(seconds=grace_s)
    with session_factory() as session:
        candidates = session.scalars(
            select(Job).where(
                Job.status.in_((*LEASABLE, "cancelling")),
                _no_live_lease(now),
                or_(Job.status != "queued", Job.updated_at < stale),
            ).order_by(Job.created_at)
        ).all()
        session.rollback()  # end the read transaction; each job below gets its own
        models_resent: set[uuid.UUID] = set()
        for job in candidates:
            job_id = str(job.id)
            try:
                if job.status == "cancelling" or (job.cancel_requested and job.status == "queued"):
                    session.refresh(job)
                    if job.status in ("cancelling", "queued") and not _live(job, now):
                        transition(session, job, "cancelled", data={"by": "sweep"})
                        session.commit()
                        report.cancelled.append(job_id)
                        _remove_work(work_root, job_id)
                    continue
                if job.attempts >= job.max_attempts:
                    session.refresh(job)
                    if fail_if_exhausted(session, job, now):
                        session.commit()
                        report.failed.append(job_id)
                        _remove_work(work_root, job_id)
                    continue
                if job.updated_at >= stale:
                    continue  # released a moment ago: its own retry message is on its way
                if job.status == "queued" and model_busy(session, job.model_id, job.id, now) is not None:
                    session.rollback()
                    continue  # waits for the model's running job; that job's end sends it
                if job.status == "queued" and job.model_id in models_resent:
                    continue  # one job per model runs at a time: re-sending the oldest queued one is enough
                if job.status == "queued" and job.updated_at >= now - _resend_backoff(session, job, grace_s):
                    session.rollback()
                    models_resent.add(job.model_id)  # the oldest is still on its way: the younger ones wait too
                    continue  # sent before and most likely still in the broker behind busy workers
                claimed = session.execute(
                    update(Job)
                    .where(and_(Job.id == job.id, Job.updated_at == job.updated_at), _no_live_lease(now))
                    .values(updated_at=now)
                    .execution_options(synchronize_session=False)
                ).rowcount  # type: ignore[attr-defined]
                if not claimed:
                    session.rollback()
                    continue
                session.refresh(job)
                append_event(session, job, "requeued", {"by": "sweep", "attempts": job.attempts})
                session.commit()
                if job.status == "queued":
                    models_resent.add(job.model_id)
                send(job_id)
                report.requeued.append(job_id)
            except Exception:
                session.rollback()
                logger.exception("sweep: job %s", job_id)
    if report.requeued or report.failed or report.cancelled:
        logger.info("sweep: requeued %s, failed %s, cancelled %s", report.requeued, report.failed, report.cancelled)
    return report


# A queued job's message usually still sits in the broker behind busy workers: re-sending it every grace period
# floods the queue with duplicates (each one a forked child that finds the job taken). After each re-send the
# sweep waits twice as long, up to 2**RESEND_DOUBLINGS grace periods; a truly lost message still comes back.
RESEND_DOUBLINGS = 5


def _resend_backoff(session: Session, job: Job, grace_s: float) -> timedelta:
    sent = session.scalar(select(func.count()).select_from(JobEvent).where(
        JobEvent.job_id == job.id, JobEvent.type == "requeued")) or 0
    return timedelta(seconds=grace_s * 2 ** min(sent, RESEND_DOUBLINGS))


def _remove_work(work_root: Path | None, job_id: str) -> None:
    if work_root is not None:
        shutil.rmtree(work_root / job_id, ignore_errors=True)


def _live(job: Job, now: datetime) -> bool:
    return job.lease_owner is not None and job.lease_expires_at is not None and job.lease_expires_at >= now
