"""Group commit of submissions (app/jobs/submissions.py) on the real Postgres.

Each test makes the batch it needs deterministically: the test holds the audit chain's lock, so the first
submission's leader blocks inside its transaction while the others queue behind it; once they are all queued
the lock is released and the queue is written as the next batch.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event, func, select, text
from sqlalchemy.exc import IntegrityError

from app.compliance import audit_log
from app.core.db import api_sessionmaker_for
from app.core.problems import ProblemError
from app.jobs import service
from app.jobs.state import STATUS_EVENT
from app.jobs.submissions import PreparedJob, SubmissionWriter
from app.models import AuditLogEntry, ForgetRecordHash, Job, JobEvent, JobInput, RegisteredModel
from tests.service.conftest import Api


@contextmanager
def chain_lock_held(api: Api) -> Iterator[None]:
    """Hold the chain's advisory lock from another connection (session level: the same lock space)."""
    with api.session() as session:
        session.execute(text("SELECT pg_advisory_lock(:key)"), {"key": audit_log.ADVISORY_LOCK_KEY})
        try:
            yield
        finally:
            session.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": audit_log.ADVISORY_LOCK_KEY})
            session.commit()


def wait_until(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def blocked_on_the_chain_lock(api: Api) -> int:
    with api.session() as session:
        return int(session.scalar(text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")))


def run_in_threads(api: Api, calls: list[Callable[[], Any]], writer: SubmissionWriter) -> list[Any]:
    """Start the first call (its thread leads, and blocks on the lock the test holds), then the rest; release
    the lock once they are all queued. Each call's result or exception, in order."""
    outcomes: list[Any] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            outcomes[i] = calls[i]()
        except BaseException as exc:
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with chain_lock_held(api):
        threads[0].start()
        wait_until(lambda: blocked_on_the_chain_lock(api) == 1)  # the leader, inside its transaction
        for thread in threads[1:]:
            thread.start()
        wait_until(lambda: writer.waiting == len(calls) - 1)
    for thread in threads:
        thread.join(30)
    return outcomes


@pytest.fixture
def lock_statements(api: Api) -> Iterator[list[str]]:
    """The chain-lock statements the writer's engine sends: one per transaction that appends."""
    engine = api_sessionmaker_for(api.settings.database_url, read_only=False,
                                  pool_size=api.settings.api_max_concurrent_requests).kw["bind"]
    seen: list[str] = []

    def listen(_conn, _cursor, statement, *_args) -> None:  # type: ignore[no-untyped-def]
        if "pg_advisory_xact_lock" in statement:
            seen.append(statement)

    event.listen(engine, "before_cursor_execute", listen)
    yield seen
    event.remove(engine, "before_cursor_execute", listen)


def test_waiting_submissions_commit_together_and_each_gets_its_own_job(api: Api, lock_statements: list[str]) -> None:
    headers = api.tenant()
    model = api.register(headers)
    writer = service.submission_writer(api.settings)
    calls = [lambda i=i: api.unlearn(headers, model["id"], forget=[{"question": f"q{i}", "answer": f"a{i}"}])
             for i in range(8)]
    responses = run_in_threads(api, calls, writer)

    assert [r.status_code for r in responses] == [202] * 8, [getattr(r, "text", r) for r in responses]
    ids = [uuid.UUID(r.json()["id"]) for r in responses]
    assert len(set(ids)) == 8
    assert len(lock_statements) == 2  # the leader's batch of one, then the seven that queued behind it
    with api.session() as session:
        for i, job_id in enumerate(ids):  # every job with its own rows
            job = session.get_one(Job, job_id)
            assert job.status == "queued" and job.forget_count == 1
            assert session.get_one(JobInput, job_id).forget == [{"question": f"q{i}", "answer": f"a{i}"}]
            assert session.scalar(select(func.count()).select_from(ForgetRecordHash)
                                  .where(ForgetRecordHash.job_id == job_id)) == 1
            assert session.scalars(select(JobEvent.type).where(JobEvent.job_id == job_id)).all() == [STATUS_EVENT]
        submitted = session.scalars(select(AuditLogEntry.job_id).where(AuditLogEntry.event == audit_log.JOB_SUBMITTED)
                                    .order_by(AuditLogEntry.id)).all()
        assert sorted(submitted) == sorted(ids)
        assert audit_log.verify_chain(session) is None


def test_the_in_flight_limit_holds_inside_a_batch_per_tenant(make_api, lock_statements: list[str]) -> None:  # type: ignore[no-untyped-def]
    api = make_api(max_jobs_in_flight_per_tenant=2)
    first, second = api.tenant(), api.tenant()
    first_model, second_model = api.register(first)["id"], api.register(second, "other")["id"]
    assert api.unlearn(first, first_model).status_code == 202  # one slot of the first tenant's two is taken
    writer = service.submission_writer(api.settings)
    calls = [lambda: api.unlearn(first, first_model)] * 4 + [lambda: api.unlearn(second, second_model)] * 3
    responses = run_in_threads(api, calls, writer)

    assert len(lock_statements) == 3  # the first submission alone, then the leader's batch, then the other six
    first_codes, second_codes = [r.status_code for r in responses[:4]], [r.status_code for r in responses[4:]]
    assert sorted(first_codes) == [202, 429, 429, 429]
    assert sorted(second_codes) == [202, 202, 429]
    with api.session() as session:
        counts = dict(session.execute(select(Job.tenant_id, func.count()).group_by(Job.tenant_id)).all())
        assert sorted(counts.values()) == [2, 2]


def _prepared(api: Api, model_id: str, *, base_version_id: uuid.UUID | None = None) -> PreparedJob:
    with api.session() as session:
        model = session.get_one(RegisteredModel, uuid.UUID(model_id))
        tenant_id, current = model.tenant_id, model.current_version_id
    job = Job(id=uuid.uuid4(), tenant_id=tenant_id, model_id=uuid.UUID(model_id),
              base_version_id=base_version_id or current, kind="qa", method={}, evaluation={}, request_metadata={},
              status="queued", progress=0.0, attempts=0, max_attempts=3, cancel_requested=False, forget_count=0,
              forget_merkle_root="0" * 64, holdout_count=0, request_sha256="1" * 64)
    return PreparedJob(job=job, job_input=JobInput(job_id=job.id, forget=[]), record_hashes=[],
                       first_event=JobEvent(job_id=job.id, type=STATUS_EVENT, data={}),
                       audit_data={"request_sha256": "1" * 64}, in_flight_limit=100)


def test_a_submission_that_fails_in_a_batch_fails_alone(api: Api, lock_statements: list[str]) -> None:
    headers = api.tenant()
    model_id = api.register(headers)["id"]
    writer = service.submission_writer(api.settings)
    good = [_prepared(api, model_id) for _ in range(3)]
    bad = _prepared(api, model_id, base_version_id=uuid.uuid4())  # no such version: a foreign-key violation
    batch = [good[0], good[1], bad, good[2]]
    outcomes = run_in_threads(api, [lambda p=p: writer.write(p) for p in batch], writer)

    assert isinstance(outcomes[2], IntegrityError)
    assert [o.id for o in (outcomes[0], outcomes[1], outcomes[3])] == [p.job.id for p in good]
    # The leader alone, the failed batch of three, then each of those three on its own.
    assert len(lock_statements) == 5
    with api.session() as session:
        stored = set(session.scalars(select(Job.id).where(Job.model_id == uuid.UUID(model_id))).all())
        assert stored == {p.job.id for p in good}
        assert session.get(JobInput, bad.job.id) is None
        assert audit_log.verify_chain(session) is None


def test_a_refused_submission_raises_its_own_problem(api: Api) -> None:
    headers = api.tenant()
    model_id = api.register(headers)["id"]
    writer = service.submission_writer(api.settings)
    full = _prepared(api, model_id)
    full.in_flight_limit = 0
    with pytest.raises(ProblemError) as refused:
        writer.write(full)
    assert refused.value.status == 429 and "GRIN_MAX_JOBS_IN_FLIGHT_PER_TENANT" in refused.value.detail
    assert writer.write(_prepared(api, model_id)).status == "queued"  # the writer goes on
