"""The job state machine. Every status change in the service goes through `transition`.

    queued -> running -> succeeded | failed | cancelled
    running -> cancelling -> cancelled | failed        (cancel asked while running; the worker ends it)
    queued -> cancelled | failed                       (cancelled before a worker took it; given up)
    running -> running                                 (a new stage, progress, or a new lease after a crash)
    running -> awaiting_approval -> succeeded | failed (the approval gate: approve promotes, reject discards)

Every move also writes, in the same transaction: the audit log entries it implies (`job.stage_done` when a
stage ends, `job.data_purged` when the raw inputs go, `job.finished` when the job ends or waits for approval)
and the webhook deliveries for succeeded / failed / cancelled / awaiting_approval (sent after the commit).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal, get_args

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import Job, JobEvent, JobInput
from app.models.base import utcnow

JobStatus = Literal["queued", "awaiting_approval", "running", "cancelling", "succeeded", "failed", "cancelled"]
JobStage = Literal["localize", "noise", "finetune", "evaluate", "report"]

STATUSES: tuple[str, ...] = get_args(JobStatus)
STAGES: tuple[str, ...] = get_args(JobStage)
TERMINAL: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})
IN_FLIGHT: frozenset[str] = frozenset({"queued", "awaiting_approval", "running", "cancelling"})

LEGAL_TRANSITIONS: dict[str, frozenset[str]] = {
    "queued": frozenset({"running", "cancelled", "failed"}),
    "awaiting_approval": frozenset({"succeeded", "failed"}),
    "running": frozenset({"running", "awaiting_approval", "succeeded", "failed", "cancelling", "cancelled"}),
    "cancelling": frozenset({"cancelled", "failed"}),
    "succeeded": frozenset(),
    "failed": frozenset(),
    "cancelled": frozenset(),
}

STATUS_EVENT = "status"
# Statuses in which the job no longer runs: the lease and stage are cleared and the raw inputs purged.
DONE_RUNNING: frozenset[str] = TERMINAL | {"awaiting_approval"}


class IllegalTransition(Exception):
    def __init__(self, job_id: object, current: str, target: str) -> None:
        super().__init__(f"job {job_id}: {current} -> {target} is not a legal transition")
        self.current = current
        self.target = target


def transition(
    session: Session,
    job: Job,
    to: JobStatus,
    *,
    stage: JobStage | None = None,
    progress: float | None = None,
    error: str | None = None,
    data: dict[str, Any] | None = None,
    now: datetime | None = None,
) -> JobEvent:
    """Move `job` to status `to` and append the matching `job_events` row; the caller commits both at once.

    The current status is re-read with `SELECT ... FOR UPDATE` (a no-op on SQLite, whose writers are
    serialised anyway), so an API cancel and a worker finishing the job cannot both win: the second one
    sees the first one's status and gets `IllegalTransition`. Attributes the caller set on `job` before
    calling are kept (the lock reads the status column only).

    Entering `running` the first time stamps `started_at`; a terminal status stamps `finished_at`; a terminal
    status or `awaiting_approval` clears the stage and the lease and deletes the job's raw inputs
    (`job_inputs`) in the same transaction, so the sensitive records never outlive the job's run whichever way
    it ends. `data["stage_completed"]` (on a move out of `running`) says the current stage finished (a verdict
    failure ends the job after its report stage completed).
    """
    from app.compliance import audit_log, webhooks

    if to not in LEGAL_TRANSITIONS:
        raise ValueError(f"unknown job status {to!r}")
    if stage is not None and stage not in STAGES:
        raise ValueError(f"unknown job stage {stage!r}")
    if progress is not None and not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must lie in [0, 1], got {progress}")

    current = session.execute(
        select(Job.status).where(Job.id == job.id).with_for_update(key_share=True)).scalar_one()
    if to not in LEGAL_TRANSITIONS[current]:
        raise IllegalTransition(job.id, current, to)

    moment = now or utcnow()
    old_stage = job.stage
    data = dict(data or {})
    stage_completed = bool(data.pop("stage_completed", False))
    job.status = to
    if to == "running" and job.started_at is None:
        job.started_at = moment
    if stage is not None:
        job.stage = stage
    if progress is not None:
        job.progress = progress
    if error is not None:
        job.error = error
    if to == "cancelling":
        job.cancel_requested = True
    if current == "running" and old_stage is not None and (
            (to == "running" and stage is not None and stage != old_stage)
            or to in ("succeeded", "awaiting_approval") or (to == "failed" and stage_completed)):
        audit_log.append(session, audit_log.JOB_STAGE_DONE, tenant_id=job.tenant_id, job_id=job.id,
                         data={"stage": old_stage}, now=moment)
    if to in TERMINAL:
        job.finished_at = moment
        if to == "succeeded":
            job.progress = 1.0
    if to in DONE_RUNNING:
        job.stage = None
        job.lease_owner = None
        job.lease_expires_at = None
        purged = session.execute(delete(JobInput).where(JobInput.job_id == job.id)).rowcount  # type: ignore[attr-defined]
        if purged:
            audit_log.append(session, audit_log.DATA_PURGED, tenant_id=job.tenant_id, job_id=job.id, now=moment,
                             data={"what": "job_inputs", "forget_count": job.forget_count,
                                   "holdout_count": job.holdout_count, "merkle_root": job.forget_merkle_root})
    if to in TERMINAL:
        audit_log.append(session, audit_log.JOB_FINISHED, tenant_id=job.tenant_id, job_id=job.id, now=moment,
                         data={"status": to, "from": current,
                               "result_version_id": str(job.result_version_id) if job.result_version_id else None})

    payload: dict[str, Any] = {"from": current, "to": to, "progress": job.progress}
    if error is not None:
        payload["error"] = error
    if data:
        payload.update(data)
    event = JobEvent(job_id=job.id, type=STATUS_EVENT, stage=stage if stage is not None else job.stage,
                     data=payload, created_at=moment)
    session.add(event)
    session.flush()
    if to in webhooks.JOB_STATUS_EVENTS:
        webhooks.dispatch_after_commit(session, webhooks.notify_job(session, job))
    return event


def append_event(session: Session, job: Job, type_: str, data: dict[str, Any] | None = None, *,
                 stage: JobStage | None = None) -> JobEvent:
    """Record something that is not a status change (a loss value, a metric, a log line); caller commits."""
    event = JobEvent(job_id=job.id, type=type_, stage=stage if stage is not None else job.stage, data=data or {})
    session.add(event)
    session.flush()
    return event
