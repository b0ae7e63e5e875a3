"""The job state machine: only legal moves, each with its event in the same transaction."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.jobs.state import LEGAL_TRANSITIONS, STATUSES, IllegalTransition, append_event, transition
from app.models import Job, JobEvent, JobInput
from tests.service.conftest import Api

PATHS = {
    "queued": [],
    "running": ["running"],
    "cancelling": ["running", "cancelling"],
    "succeeded": ["running", "succeeded"],
    "failed": ["failed"],
    "cancelled": ["cancelled"],
}


def _new_job(api: Api) -> uuid.UUID:
    headers = api.tenant()
    response = api.unlearn(headers, api.register(headers, f"m-{uuid.uuid4().hex[:6]}")["id"])
    assert response.status_code == 202, response.text
    return uuid.UUID(response.json()["id"])


def test_every_pair_of_statuses_is_allowed_or_refused_as_the_contract_says(api: Api) -> None:
    for start, path in PATHS.items():
        for target in STATUSES:
            job_id = _new_job(api)
            with api.session() as session:
                job = session.get(Job, job_id)
                assert job is not None
                for step in path:
                    transition(session, job, step)  # type: ignore[arg-type]
                session.commit()
                events_before = len(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all())
                if target in LEGAL_TRANSITIONS[start]:
                    event = transition(session, job, target)  # type: ignore[arg-type]
                    session.commit()
                    assert (event.data["from"], event.data["to"]) == (start, target)
                    assert job.status == target
                else:
                    with pytest.raises(IllegalTransition):
                        transition(session, job, target)  # type: ignore[arg-type]
                    session.rollback()
                    assert session.get(Job, job_id).status == start  # type: ignore[union-attr]
                events_after = len(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id)).all())
                assert events_after == events_before + (1 if target in LEGAL_TRANSITIONS[start] else 0)


def test_terminal_status_stamps_times_clears_lease_and_purges_inputs(api: Api) -> None:
    job_id = _new_job(api)
    with api.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        job.lease_owner = "worker-1"
        transition(session, job, "running", stage="localize", progress=0.1)
        session.commit()
        assert job.started_at is not None and job.lease_owner == "worker-1"
        assert session.get(JobInput, job_id) is not None
        append_event(session, job, "loss", {"step": 1, "loss": 2.5})
        transition(session, job, "failed", error="CUDA out of memory")
        session.commit()
        assert job.finished_at is not None and job.lease_owner is None and job.stage is None
        assert job.error == "CUDA out of memory"
        assert session.get(JobInput, job_id) is None
        types = session.scalars(select(JobEvent.type).where(JobEvent.job_id == job_id).order_by(JobEvent.id)).all()
        assert types == ["status", "status", "loss", "status"]


def test_a_stale_in_memory_status_cannot_win_a_race(api: Api) -> None:
    """The API cancels while the worker still holds a `running` object: the worker's `succeeded` is refused."""
    job_id = _new_job(api)
    with api.session() as worker_session, api.session() as api_session:
        worker_job = worker_session.get(Job, job_id)
        assert worker_job is not None
        transition(worker_session, worker_job, "running", stage="finetune")
        worker_session.commit()
        api_job = api_session.get(Job, job_id)
        assert api_job is not None
        transition(api_session, api_job, "cancelling")
        api_session.commit()
        with pytest.raises(IllegalTransition):
            transition(worker_session, worker_job, "succeeded")
        worker_session.rollback()


def test_bad_arguments_are_refused(api: Api) -> None:
    job_id = _new_job(api)
    with api.session() as session:
        job = session.get(Job, job_id)
        assert job is not None
        with pytest.raises(ValueError):
            transition(session, job, "running", stage="dreaming")  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            transition(session, job, "running", progress=1.5)
        with pytest.raises(ValueError):
            transition(session, job, "paused")  # type: ignore[arg-type]
