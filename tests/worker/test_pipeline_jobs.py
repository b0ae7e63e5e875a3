"""End to end on Postgres + Redis: API -> real Celery worker -> GRIN -> a promoted model version."""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select

from app.models import Artifact, EvaluationResult, JobInput, Mask, ModelVersion, RegisteredModel
from tests.worker.conftest import Stack


def _assert_promoted(stack: Stack, job: dict, base_version_id: str) -> None:
    assert job["status"] == "succeeded", (job["error"], job)
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


def _assert_not_promoted(stack: Stack, job: dict) -> None:
    assert job["result_version_id"] is None
    with stack.ledger() as session:
        assert session.get(JobInput, uuid.UUID(job["id"])) is None
        assert session.scalars(select(ModelVersion).where(ModelVersion.job_id == uuid.UUID(job["id"]))).all() == []
    assert not stack.work_dir(job["id"]).exists()


def test_redelivered_message_runs_once(pg_stack: Stack) -> None:
    from worker.celery_app import create_celery

    job_id = pg_stack.submit()
    client = create_celery(pg_stack.settings)
    for _ in range(2):  # the same message again while the first delivery runs, and once more later
        client.send_task("grin.pipeline.run_job", args=[job_id], ignore_result=True)
    job = pg_stack.wait(job_id, timeout=120)
    assert job["status"] == "succeeded" and job["attempts"] == 1
    starts = [e for e in pg_stack.events(job_id) if e["type"] == "status" and e["data"].get("from") == "queued"]
    assert len(starts) == 1
    with pg_stack.ledger() as session:
        assert len(session.scalars(select(ModelVersion).where(ModelVersion.job_id == uuid.UUID(job_id))).all()) == 1


def test_lost_message_is_recovered_by_the_sweep(pg_stack: Stack) -> None:
    """A job whose message never reached a worker (broker outage at submit) still runs."""
    import redis

    pg_stack.stop_worker()
    job_id = pg_stack.submit()
    redis.Redis.from_url(pg_stack.settings.broker_url).flushdb()  # the message is gone
    pg_stack.start_worker()
    job = pg_stack.wait(job_id, timeout=120)
    assert job["status"] == "succeeded" and job["attempts"] == 1
    assert any(e["type"] == "requeued" for e in pg_stack.events(job_id))


@pytest.mark.parametrize("stage", ["localize", "noise", "finetune:3", "evaluate"])
def test_cancel_during_each_stage(pg_stack: Stack, stage: str) -> None:
    with pg_stack.client() as c:
        current = c.get(f"/v1/models/{pg_stack.model_id}").json()["current_version_id"]
    job_id = pg_stack.submit(metadata={"pause_at": stage})
    name = stage.split(":")[0]
    pg_stack.wait_marker(job_id, name)
    assert pg_stack.job(job_id)["stage"] == name
    with pg_stack.client() as c:
        assert c.post(f"/v1/jobs/{job_id}/cancel").status_code in (200, 202)
    job = pg_stack.wait(job_id, timeout=60)
    assert job["status"] == "cancelled", job
    _assert_not_promoted(pg_stack, job)
    with pg_stack.client() as c:
        assert c.get(f"/v1/models/{pg_stack.model_id}").json()["current_version_id"] == current


def test_attempt_limit_ends_failed_with_reason(pg_stack: Stack) -> None:
    job_id = pg_stack.submit(metadata={"crash_at": "localize", "on_attempts": [1, 2, 3]})
    job = pg_stack.wait(job_id, timeout=120)
    assert job["status"] == "failed", job
    assert job["attempts"] == 3
    assert job["error"] == "attempt 3 of 3 failed: RuntimeError: injected crash"
    _assert_not_promoted(pg_stack, job)
    failures = [e for e in pg_stack.events(job_id) if e["type"] == "attempt_failed"]
    assert [e["data"]["attempt"] for e in failures] == [1, 2]


def test_killed_worker_job_resumes_via_sweep(embedded_stack: Stack) -> None:
    stack = embedded_stack
    method = {"preset": "grin", "config": {"device": "cpu", "localize": {"k": 0.05, "batch_size": 8},
                                           "finetune": {"objective": "graddiff", "steps": 8, "batch_size": 4,
                                                        "max_length": 96, "lr": 1e-3,
                                                        "checkpoint_every": 2}}}
    job_id = stack.submit(metadata={"pause_at": "finetune:5"}, method=method)
    stack.wait_marker(job_id, "finetune")
    assert (stack.work_dir(job_id) / "engine" / "mask.safetensors").is_file()
    stack.kill_worker()  # no ack, no cleanup, the lease is left to expire
    stack.start_worker()
    job = stack.wait(job_id, timeout=120)
    assert job["status"] == "succeeded", (job["error"], job)
    assert job["attempts"] == 2
    assert "localize" in job["metrics"]["resumed_stages"]  # the mask of attempt 1 was reused
    assert "finetune" in job["metrics"]["resumed_stages"]  # from the step-4 fine-tune checkpoint
    assert any(e["type"] == "requeued" and e["data"]["by"] == "sweep" for e in stack.events(job_id))
    with stack.ledger() as session:
        assert session.get(JobInput, uuid.UUID(job_id)) is None


def test_worker_dying_every_attempt_ends_failed(embedded_stack: Stack) -> None:
    job_id = embedded_stack.submit(metadata={"exit_at": "localize", "on_attempts": [1, 2, 3]})
    job = embedded_stack.wait(job_id, timeout=120)
    assert job["status"] == "failed", job
    assert job["attempts"] == 3
    assert job["error"].startswith("gave up after 3 of 3 attempts")
    _assert_not_promoted(embedded_stack, job)


def test_demo_setup_prints_a_request_that_succeeds(embedded_stack: Stack, tiny_model_dir: Path) -> None:
    """`grin demo` minus the model build (the tiny model stands in for the cached demo model)."""
    from app.demo import setup_demo
    from worker.demo_model import DONE_MARKER

    stack = embedded_stack
    demo_dir = stack.settings.data_dir / "models" / "demo-tofu"
    shutil.copytree(tiny_model_dir, demo_dir)
    (demo_dir / DONE_MARKER).write_text("{}")
    info = setup_demo(stack.settings, stack.url, echo=lambda _: None)
    again = setup_demo(stack.settings, stack.url, echo=lambda _: None)  # reruns reuse key, model and data set
    assert (again["model_id"], again["dataset_id"]) == (info["model_id"], info["dataset_id"])
    assert "/v1/unlearn" in info["commands"]["submit"] and "text/event-stream" in info["commands"]["watch"]
    request = json.loads(Path(info["request_file"]).read_text())
    request["method"]["config"]["device"] = "cpu"
    test_key, stack.key = stack.key, Path(info["key_file"]).read_text().strip()  # act as the demo tenant
    try:
        with stack.client() as c:
            response = c.post("/v1/unlearn", json=request)
        assert response.status_code == 202, response.text
        job = stack.wait(response.json()["id"], timeout=120)
        # The stand-in is not the taught demo model, so the demo's verdict may fail it; the request itself must
        # run through every stage to a signed report (a failed verdict ends `failed`, unpromoted).
        assert job["status"] == "succeeded" or (job["error"] or "").startswith("verdict failed:"), (job["error"], job)
        with stack.client() as c:
            assert c.get(f"/v1/jobs/{job['id']}/report.dsse.json").status_code == 200
    finally:
        stack.key = test_key
