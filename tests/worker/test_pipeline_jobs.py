"""End to end on Postgres + Redis: API -> real Celery worker -> GRIN -> a promoted model version."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from app.models import Artifact, EvaluationResult, JobInput, Mask, ModelVersion, RegisteredModel
from tests.worker.conftest import Stack


def _assert_promoted(stack: Stack, job: dict, base_version_id: str) -> None:
    assert job["status"] == "succeeded", job
    assert job["error"] is None
    with stack.ledger() as session:
        version = session.get_one(ModelVersion, uuid.UUID(job["result_version_id"]))
        model = session.get_one(RegisteredModel, uuid.UUID(stack.model_id))
        assert str(version.parent_id) == base_version_id
        assert str(version.job_id) == job["id"]
        assert model.current_version_id == version.id
        assert version.location == version.location.lower() and len(version.location) == 64  # manifest key
        assert "model.safetensors" in version.files
        keys = set(session.scalars(select(Artifact.key)))
        assert set(version.files.values()) <= keys and version.location in keys
        mask = session.scalars(select(Mask).where(Mask.job_id == version.job_id)).one()
        assert mask.artifact_key in keys and mask.summary["selected"] > 0
        phases = {r.phase for r in session.scalars(select(EvaluationResult).where(
            EvaluationResult.job_id == version.job_id))}
        assert phases == {"before", "after"}
        assert session.get(JobInput, version.job_id) is None  # the raw forget data is gone
    assert not stack.work_dir(job["id"]).exists()


@pytest.mark.parametrize("stack_name", ["pg_stack", "embedded_stack"])
def test_job_runs_to_a_new_version(stack_name: str, request: pytest.FixtureRequest) -> None:
    stack: Stack = request.getfixturevalue(stack_name)
    with stack.client() as c:
        base = c.get(f"/v1/models/{stack.model_id}").json()["current_version_id"]
    job_id = stack.submit()
    job = stack.wait(job_id, timeout=120)
    _assert_promoted(stack, job, base)
    assert job["attempts"] == 1
    assert job["metrics"]["verdict"]["passed"] in (True, False)
    events = stack.events(job_id)
    stages = [e["stage"] for e in events if e["type"] == "status" and e["data"].get("to") == "running"]
    assert [s for s in stages if s] == ["localize", "noise", "finetune", "evaluate", "report"]
    assert any(e["type"] == "progress" for e in events)
    # A second job starts from the version the first produced.
    second = stack.wait(stack.submit(), timeout=120)
    _assert_promoted(stack, second, job["result_version_id"])
