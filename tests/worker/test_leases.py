"""Lease and sweep rules on a real ledger (SQLite and Postgres), without worker processes."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.db import make_engine, migrate
from app.models import Job, JobInput, ModelVersion, RegisteredModel, Tenant
from app.models.base import utcnow
from worker.leases import acquire_lease, fail_if_exhausted, release_lease, renew_lease, sweep


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    url = (request.getfixturevalue("fresh_sqlite_database") if request.param == "sqlite"
           else request.getfixturevalue("fresh_postgres_database"))
    migrate(Settings(data_dir=tmp_path, database_url=url))
    return str(url)


@pytest.fixture
def session_factory(ledger_url: str) -> Iterator[object]:
    engine = make_engine(ledger_url)
    yield lambda: Session(engine, expire_on_commit=False)
    engine.dispose()


def _job(factory, **overrides) -> uuid.UUID:  # type: ignore[no-untyped-def]
    with factory() as s:
        tenant = Tenant(name=f"t-{uuid.uuid4().hex[:6]}")
        s.add(tenant)
        s.flush()
        model = RegisteredModel(tenant_id=tenant.id, name="m", source_path="/m")
        s.add(model)
        s.flush()
        version = ModelVersion(model_id=model.id, number=1, location="/m", files={}, total_bytes=0)
        s.add(version)
        s.flush()
        fields = dict(tenant_id=tenant.id, model_id=model.id, base_version_id=version.id, kind="qa", method={},
                      evaluation={}, request_metadata={}, status="queued", progress=0.0, attempts=0,
                      max_attempts=3, cancel_requested=False, forget_count=1, forget_merkle_root="0" * 64,
                      request_sha256="0" * 64)
        fields.update(overrides)
        job = Job(**fields)
        s.add(job)
        s.flush()
        s.add(JobInput(job_id=job.id, forget=[{"question": "q", "answer": "a"}]))
        s.commit()
        return job.id


def test_lease_is_exclusive_until_it_expires(session_factory) -> None:  # type: ignore[no-untyped-def]
    job_id = _job(session_factory)
    with session_factory() as s:
        assert acquire_lease(s, job_id, "a", 60)
        s.commit()
        assert not acquire_lease(s, job_id, "b", 60)  # the redelivery guard
        assert renew_lease(s, job_id, "a", 60) and not renew_lease(s, job_id, "b", 60)
        later = utcnow() + timedelta(seconds=120)
        assert acquire_lease(s, job_id, "b", 60, now=later)  # a dead owner's lease expired
        s.commit()
        assert not renew_lease(s, job_id, "a", 60)  # the old owner learns it lost the lease
        assert release_lease(s, job_id, "b", error="boom")
        s.commit()
        job = s.get_one(Job, job_id)
        assert (job.attempts, job.lease_owner, job.error) == (2, None, "boom")


def test_no_lease_when_out_of_attempts_or_finished(session_factory) -> None:  # type: ignore[no-untyped-def]
    spent = _job(session_factory, attempts=3, status="running", error="attempt 3 of 3 failed: X")
    done = _job(session_factory, status="succeeded")
    with session_factory() as s:
        assert not acquire_lease(s, spent, "a", 60) and not acquire_lease(s, done, "a", 60)
        job = s.get_one(Job, spent)
        assert fail_if_exhausted(s, job)
        s.commit()
        s.refresh(job)
        assert job.status == "failed" and job.error.startswith("gave up after 3 of 3 attempts; last error")
        assert s.get(JobInput, spent) is None


def test_sweep(session_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    old = utcnow() - timedelta(minutes=5)
    fresh = _job(session_factory)  # its own message is on its way: left alone
    lost = _job(session_factory, updated_at=old)  # the broker never delivered it
    dead = _job(session_factory, status="running", attempts=1, lease_owner="x", updated_at=old,
                lease_expires_at=old)  # its worker died
    live = _job(session_factory, status="running", attempts=1, lease_owner="y",
                lease_expires_at=utcnow() + timedelta(minutes=5))
    spent = _job(session_factory, status="running", attempts=3, lease_owner="z", lease_expires_at=old,
                 updated_at=old)
    stopping = _job(session_factory, status="cancelling", cancel_requested=True, attempts=1, lease_owner="w",
                    lease_expires_at=old, updated_at=old)
    (tmp_path / "work" / str(spent)).mkdir(parents=True)
    sent: list[str] = []
    report = sweep(session_factory, sent.append, grace_s=10, work_root=tmp_path / "work")
    assert sorted(sent) == sorted([str(lost), str(dead)]) == sorted(report.requeued)
    assert report.failed == [str(spent)] and report.cancelled == [str(stopping)]
    assert not (tmp_path / "work" / str(spent)).exists()
    # Claimed: an immediate second sweep (another worker's) does not send them again.
    assert sweep(session_factory, sent.append, grace_s=10).requeued == []
    with session_factory() as s:
        statuses = {j: s.get_one(Job, j).status for j in (fresh, live, spent, stopping)}
    assert statuses == {fresh: "queued", live: "running", spent: "failed", stopping: "cancelled"}


@pytest.mark.parametrize(("error", "attempts", "status", "message"), [
    (RuntimeError("flaky disk"), 1, "running", None),  # transient, attempts left: released and re-sent
    (RuntimeError("flaky disk"), 3, "failed", "attempt 3 of 3 failed: RuntimeError: flaky disk"),
    ("soft", 1, "failed", "time limit exceeded"),  # a retry would only hit the limit again
    ("engine", 1, "failed", "EngineError: the forget set is empty"),  # bad input: no retry can fix it
])
def test_failure_handling(session_factory, ledger_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                          error: object, attempts: int, status: str, message: str | None) -> None:
    from celery.exceptions import SoftTimeLimitExceeded

    from grin_engine.errors import EngineError
    from worker.tasks import pipeline

    exc = {"soft": SoftTimeLimitExceeded(), "engine": EngineError("the forget set is empty")}.get(error, error)
    sent: list[object] = []
    monkeypatch.setattr(pipeline.celery_app, "send_task", lambda name, args, **_: sent.append(args))
    settings = Settings(data_dir=tmp_path, database_url=ledger_url)
    job_id = _job(session_factory, status="running", attempts=attempts - 1)
    with session_factory() as s:
        assert acquire_lease(s, job_id, "me", 60)
        s.commit()
    work = tmp_path / "work" / str(job_id)
    work.mkdir(parents=True)
    outcome = pipeline._end_failed_or_retry(settings, job_id, "me", work, exc)  # type: ignore[arg-type]
    with session_factory() as s:
        job = s.get_one(Job, job_id)
        assert (job.status, job.attempts) == (status, attempts)
        if status == "failed":
            assert job.error == message and outcome["status"] == "failed"
            assert not work.exists() and s.get(JobInput, job_id) is None and sent == []
        else:
            assert job.lease_owner is None and job.error == "attempt 1 failed: RuntimeError: flaky disk"
            assert work.exists() and sent == [[str(job_id)]]  # stage outputs kept for the retry


def _job_fields(job: Job) -> dict[str, object]:
    """The fields of a new queued job on the model (and from the base) of `job`."""
    return dict(tenant_id=job.tenant_id, model_id=job.model_id, base_version_id=job.base_version_id,
                kind="qa", method={}, evaluation={}, request_metadata={}, status="queued", progress=0.0,
                attempts=0, max_attempts=3, cancel_requested=False, forget_count=1,
                forget_merkle_root="0" * 64, request_sha256="0" * 64)


def _second_job(factory, first: uuid.UUID, **overrides) -> uuid.UUID:  # type: ignore[no-untyped-def]
    """Another queued job on the model of `first`."""
    with factory() as s:
        other = Job(**{**_job_fields(s.get_one(Job, first)), **overrides})
        s.add(other)
        s.commit()
        return other.id


@pytest.mark.parametrize("blocking", ["leased", "running", "awaiting_approval"])
def test_one_job_per_model_and_base_resolved_at_lease(session_factory, blocking: str) -> None:  # type: ignore[no-untyped-def]
    first = _job(session_factory)
    second = _second_job(session_factory, first)
    with session_factory() as s:
        assert acquire_lease(s, first, "w1", 60)
        if blocking != "leased":
            s.get(Job, first).status = blocking
        s.commit()
    with session_factory() as s:
        assert not acquire_lease(s, second, "w2", 60)  # the model is busy: the second job waits, queued
        s.commit()
    with session_factory() as s:
        job = s.get(Job, first)
        model = s.get(RegisteredModel, job.model_id)
        v2 = ModelVersion(model_id=model.id, number=2, parent_id=job.base_version_id, location="k" * 64, files={},
                          total_bytes=0)
        s.add(v2)
        s.flush()
        model.current_version_id = v2.id
        job.status, job.lease_owner, job.lease_expires_at = "succeeded", None, None
        s.commit()
        v2_id = v2.id
    with session_factory() as s:
        assert acquire_lease(s, second, "w2", 60)
        s.commit()
        assert s.get(Job, second).base_version_id == v2_id  # not pinned: starts from the current version


def test_pinned_base_is_kept_at_lease(session_factory) -> None:  # type: ignore[no-untyped-def]
    first = _job(session_factory)
    with session_factory() as s:
        job = s.get(Job, first)
        base = job.base_version_id
        job.base_pinned = True
        model = s.get(RegisteredModel, job.model_id)
        v2 = ModelVersion(model_id=model.id, number=2, parent_id=base, location="k" * 64, files={}, total_bytes=0)
        s.add(v2)
        s.flush()
        model.current_version_id = v2.id
        s.commit()
    with session_factory() as s:
        assert acquire_lease(s, first, "w1", 60)
        s.commit()
        assert s.get(Job, first).base_version_id == base


def test_a_lease_in_progress_does_not_block_submissions_or_cancels_on_its_model(fresh_postgres_database,
                                                                                 tmp_path: Path) -> None:
    """Regression: the lease locked the model with FOR UPDATE, which conflicts with the foreign-key checks
    (FOR KEY SHARE) of every INSERT into jobs and of a job row updated twice in one transaction; under load
    that deadlocked a submission or a cancel against the lease (Postgres reported 40P01, the API a 503)."""
    migrate(Settings(data_dir=tmp_path, database_url=fresh_postgres_database))
    engine = make_engine(fresh_postgres_database)
    factory = lambda: Session(engine, expire_on_commit=False)  # noqa: E731
    first = _job(factory)
    queued = _second_job(factory, first)
    with factory() as lease, factory() as request:
        assert acquire_lease(lease, first, "w1", 60)  # uncommitted: holds the model's lock
        request.execute(text("SET lock_timeout = '2s'"))  # a wait would be a LockNotAvailable error
        request.add(Job(**_job_fields(request.get_one(Job, first))))  # a submission: INSERT checks the FK
        other = request.get_one(Job, queued)
        other.cancel_requested = True
        request.flush()
        other.status = "cancelled"  # the second UPDATE of the row in this transaction: FK checks again
        request.commit()
        lease.commit()
    engine.dispose()
