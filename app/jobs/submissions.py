"""Group commit of job submissions: one transaction writes every submission that is waiting.

A submission must hold the audit chain's lock from its in-flight count to its commit (see `write_batch`), so
submissions pass that section one at a time, and each used to pay there a lock, a count, a head read, an
insert and a commit in turn. Here a request thread hands its prepared rows to the process's writer; the thread
that finds no write in progress becomes the leader, takes everything queued (up to MAX_BATCH) and writes it in
one transaction; the others wait for their outcome and the next of them leads the next batch. Under light load
a batch holds one submission and costs what it did; under load the section's cost is shared by the batch.

Nothing the single-submission path guaranteed is lost:
- a submission's 202 goes out only after the commit that holds its job, rows, audit entry and idempotent reply;
- the chain gets one entry per job, appended under the lock in the batch's order;
- the in-flight limit stays exact: each tenant's jobs are counted under the lock, and the batch's own
  admissions are added to the count before the next one is decided;
- one bad submission fails alone: a batch whose transaction fails is written again one submission at a time.
"""

from __future__ import annotations

import threading
import uuid
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from app.compliance import audit_log
from app.core.problems import ProblemError
from app.jobs import repository
from app.jobs.schemas import JobOut
from app.jobs.state import IN_FLIGHT
from app.models import ForgetRecordHash, IdempotencyKey, Job, JobEvent, JobInput

# Submissions per transaction at most: bounds one transaction's size and the wait of the batch's first request.
MAX_BATCH = 64


@dataclass(eq=False)
class PreparedJob:
    """A validated submission's rows, not yet in any session (the job's id is assigned, so the rows can name it)."""

    job: Job
    job_input: JobInput
    record_hashes: list[ForgetRecordHash]
    first_event: JobEvent
    audit_data: dict[str, Any]
    in_flight_limit: int
    idempotency_key: str | None = None
    # Set by the writer: the committed job, or what refused or failed it.
    outcome: Job | BaseException | None = field(default=None, repr=False)
    done: bool = field(default=False, repr=False)


def job_location(job_id: uuid.UUID) -> str:
    return f"/v1/jobs/{job_id}"


def _refusal(limit: int) -> ProblemError:
    return ProblemError(429, "Too Many Requests",
                        f"the tenant already has {limit} jobs in flight, the most allowed "
                        "(GRIN_MAX_JOBS_IN_FLIGHT_PER_TENANT); retry when one ends", headers={"Retry-After": "30"})


def write_batch(session: Session, batch: list[PreparedJob]) -> list[PreparedJob]:
    """Write the batch in the session's transaction and commit; return the admitted submissions (the refused
    ones have their 429 as outcome).

    The chain's lock comes first and is held to the commit: the chain needs appends in order, and the in-flight
    count, read after it, sees every job an earlier submission committed (every submission commits under it).
    """
    audit_log.lock_chain(session)
    room: dict[uuid.UUID, int] = {}
    admitted: list[PreparedJob] = []
    for prepared in batch:
        tenant_id, limit = prepared.job.tenant_id, prepared.in_flight_limit
        if tenant_id not in room:
            room[tenant_id] = limit - repository.count_in_flight(session, tenant_id, IN_FLIGHT, up_to=limit)
        if room[tenant_id] <= 0:
            prepared.outcome = _refusal(limit)
            continue
        room[tenant_id] -= 1
        admitted.append(prepared)
    if not admitted:
        session.rollback()
        return admitted
    # Jobs first (their rows are what the others reference), then the rest in one flush: a multi-row INSERT
    # per table.
    session.add_all([p.job for p in admitted])
    session.flush()
    for prepared in admitted:
        session.add(prepared.job_input)
        session.add_all(prepared.record_hashes)
        session.add(prepared.first_event)
        if prepared.idempotency_key is not None:
            reply = {"status_code": 202, "location": job_location(prepared.job.id),
                     "body": JobOut.model_validate(prepared.job).model_dump(mode="json")}
            session.execute(update(IdempotencyKey)
                            .where(IdempotencyKey.tenant_id == prepared.job.tenant_id,
                                   IdempotencyKey.key == prepared.idempotency_key, IdempotencyKey.status == "in_flight")
                            .values(status="done", job_id=prepared.job.id, response=reply)
                            .execution_options(synchronize_session=False))
    for prepared in admitted:
        audit_log.append(session, audit_log.JOB_SUBMITTED, tenant_id=prepared.job.tenant_id,
                         job_id=prepared.job.id, data=prepared.audit_data)
    session.commit()
    return admitted


class SubmissionWriter:
    """Leader/follower group commit over one sessionmaker (one per process and database)."""

    def __init__(self, maker: sessionmaker[Session], max_batch: int = MAX_BATCH) -> None:
        self._maker = maker
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._queue: deque[PreparedJob] = deque()
        self._writing = False
        # Since the process started (only a leader writes them, one at a time): their ratio is the mean batch.
        self.transactions = 0
        self.committed = 0

    def write(self, prepared: PreparedJob) -> Job:
        """Commit the submission (with whatever else is waiting); its job, or raise what refused or failed it."""
        with self._cond:
            self._queue.append(prepared)
        while True:
            with self._cond:
                while self._writing and not prepared.done:
                    self._cond.wait()
                if prepared.done:
                    break
                self._writing = True
                batch = [self._queue.popleft() for _ in range(min(len(self._queue), self._max_batch))]
            try:
                self._write(batch)
            finally:
                with self._cond:
                    for member in batch:
                        if member.outcome is None:  # the leader was interrupted before it got there
                            member.outcome = RuntimeError("the submission was not written")
                        member.done = True
                    self._writing = False
                    self._cond.notify_all()
        if isinstance(prepared.outcome, BaseException):
            raise prepared.outcome
        assert prepared.outcome is not None
        return prepared.outcome

    def _write(self, batch: list[PreparedJob]) -> None:
        try:
            self._commit(batch)
        except Exception as exc:
            if len(batch) == 1:
                batch[0].outcome = exc
                return
            for member in batch:  # one bad submission must not fail the others: each on its own
                member.outcome = None
                try:
                    self._commit([member])
                except Exception as single:
                    member.outcome = single

    def _commit(self, batch: list[PreparedJob]) -> None:
        with self._maker() as session:  # closing it rolls back whatever a failure left open
            admitted = write_batch(session, batch)
        self.transactions += 1
        self.committed += len(admitted)
        for prepared in admitted:
            prepared.outcome = prepared.job

    @property
    def waiting(self) -> int:
        """Submissions queued and not yet taken by a leader (the tests wait on it to build a batch)."""
        with self._cond:
            return len(self._queue)


@lru_cache
def writer_for(maker: sessionmaker[Session]) -> SubmissionWriter:
    return SubmissionWriter(maker)
