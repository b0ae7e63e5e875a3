"""grin_client against the real stack: submit (idempotent), wait with progress, SSE, pages, report, mask, errors."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.jobs.schemas import JobEventOut, JobOut, JobReport
from app.registry.schemas import ModelVersionOut
from grin_client import (
    AsyncGrinClient,
    Conflict,
    GrinClient,
    NotFound,
    ServiceUnreachable,
    Unauthorized,
    ValidationFailed,
)
from grin_client.client import Progress
from tests.operator.conftest import FORGET, OperatorStack
from tests.processes import free_port


def test_submit_wait_stream_and_artifacts(stack: OperatorStack, finished_job: dict[str, Any], tmp_path: Path) -> None:
    job: JobOut = finished_job["job"]
    progress: list[Progress] = finished_job["progress"]
    assert isinstance(job, JobOut) and job.status == "succeeded" and job.result_version_id is not None
    # The callback saw the job move through the pipeline's stages, progress never going backwards.
    stages = [p.stage for p in progress if p.stage]
    assert {"localize", "finetune", "report"} <= set(stages), stages
    values = [p.progress for p in progress]
    assert values == sorted(values) and values[-1] == 1.0
    assert progress[-1].status == "succeeded"

    with stack.client() as grin:
        # The SSE stream of an ended job replays every event and then ends; pages give the same events.
        streamed = list(grin.stream_events(job.id))
        paged = list(grin.iter_events(job.id, page_size=3))
        assert [e.id for e in streamed] == [e.id for e in paged] and len(paged) > 3
        assert all(isinstance(e, JobEventOut) for e in streamed)
        assert streamed[-1].type == "status" and streamed[-1].data["to"] == "succeeded"
        # Resuming after an event id gives only what came later.
        later = list(grin.stream_events(job.id, last_event_id=streamed[-3].id))
        assert [e.id for e in later] == [e.id for e in streamed[-2:]]

        report = grin.report(job.id)
        assert isinstance(report, JobReport) and report.job.id == job.id
        assert report.forget.count == len(FORGET) and report.mask is not None

        mask = grin.download_mask(job.id, tmp_path / "mask.safetensors")
        header_length = int.from_bytes(mask.read_bytes()[:8], "little")
        assert json.loads(mask.read_bytes()[8:8 + header_length])  # a safetensors header
        assert report.mask.sha256 and not list(tmp_path.glob(".*.part"))

        versions = grin.model_versions(stack.model_id)
        assert all(isinstance(v, ModelVersionOut) for v in versions)
        produced = next(v for v in versions if v.id == job.result_version_id)
        assert produced.parent_id == job.base_version_id and produced.job_id == job.id


def test_idempotency_key_returns_the_same_job(stack: OperatorStack, finished_job: dict[str, Any]) -> None:
    key = f"idem-{uuid.uuid4().hex}"
    with stack.client() as grin:
        first = grin.submit(stack.model_id, "qa", FORGET[:1], idempotency_key=key, **stack.job_kwargs())
        again = grin.submit(stack.model_id, "qa", FORGET[:1], idempotency_key=key, **stack.job_kwargs())
        assert again.id == first.id
        with pytest.raises(ValidationFailed) as refused:  # same key, another request
            grin.submit(stack.model_id, "qa", FORGET[:2], idempotency_key=key, **stack.job_kwargs())
        assert refused.value.status == 422 and refused.value.problem["status"] == 422
        cancelled = grin.cancel(first.id)
        assert cancelled.status in ("cancelled", "cancelling")
    stack.wait_status(str(first.id), ("cancelled", "succeeded", "failed"))


def test_iterating_pages(stack: OperatorStack) -> None:
    with stack.client() as grin:
        names = [f"paged-{i}-{uuid.uuid4().hex[:4]}" for i in range(5)]
        for name in names:
            grin.register_model(name, stack.copy_model(name))
        listed = [m.name for m in grin.iter_models(page_size=2)]
        assert set(names) <= set(listed) and len(listed) == len(set(listed))
        first_page = grin.list_models(limit=2)
        assert len(first_page.items) == 2 and first_page.next_cursor
        assert len(list(grin.iter_jobs(page_size=1))) == len(grin.list_jobs(limit=200).items)


def test_errors_are_typed_and_carry_the_problem(stack: OperatorStack) -> None:
    with GrinClient(stack.url, "grin_000000000000_not-a-key") as stranger, pytest.raises(Unauthorized) as caught:
        stranger.tenant()
    assert caught.value.status == 401 and caught.value.problem["title"] == "Unauthorized"
    with stack.client() as grin:
        with pytest.raises(NotFound) as missing:
            grin.get_job(uuid.uuid4())
        assert missing.value.problem["status"] == 404 and missing.value.problem["instance"].startswith("/v1/jobs/")
        with pytest.raises(ValidationFailed) as invalid:
            grin.submit(stack.model_id, "qa", [{"question": "no answer"}])
        assert invalid.value.errors and "forget" in invalid.value.detail
        with pytest.raises(ValidationFailed):  # refused locally, before anything is sent
            grin.submit(stack.model_id, "poetry", FORGET)
        finished = next(j for j in grin.iter_jobs(status="succeeded"))
        with pytest.raises(Conflict) as conflict:
            grin.cancel(finished.id)
        assert conflict.value.status == 409 and "409" in str(conflict.value)
    with GrinClient(f"http://127.0.0.1:{free_port()}", stack.key) as nowhere, pytest.raises(ServiceUnreachable):
        nowhere.list_jobs()


def test_async_client(stack: OperatorStack, finished_job: dict[str, Any]) -> None:
    job_id = finished_job["job"].id

    async def scenario() -> None:
        async with AsyncGrinClient(stack.url, stack.key) as grin:
            tenant = await grin.tenant()
            assert tenant.name.startswith("operators-")
            job = await grin.get_job(job_id)
            assert job.status == "succeeded"
            events = [e async for e in grin.stream_events(job_id)]
            assert events[-1].data["to"] == "succeeded"
            seen: list[Progress] = []
            assert (await grin.wait(job_id, on_progress=seen.append)).status == "succeeded"
            assert seen and seen[-1].status == "succeeded"
            assert [j.id async for j in grin.iter_jobs(page_size=1)]
            with pytest.raises(NotFound):
                await grin.report(uuid.uuid4())

    asyncio.run(scenario())


def test_approve_and_reject_calls() -> None:
    """The approval gate's endpoints: the calls the client makes, and a refusal carried as a typed error."""
    job_id = uuid.uuid4()
    seen: list[tuple[str, str, bytes]] = []
    job = {"id": str(job_id), "model_id": str(uuid.uuid4()), "base_version_id": str(uuid.uuid4()),
           "result_version_id": None, "retain_dataset_id": None, "kind": "qa", "status": "queued", "stage": None,
           "progress": 0.0, "attempts": 0, "max_attempts": 3, "cancel_requested": False, "error": None,
           "metrics": None, "method": {}, "evaluation": {}, "subject_reference": None, "legal_basis": None,
           "metadata": {}, "forget_count": 1, "forget_merkle_root": "0" * 64, "holdout_count": 0,
           "request_sha256": "0" * 64, "created_at": "2026-01-01T00:00:00Z", "started_at": None,
           "finished_at": None, "updated_at": "2026-01-01T00:00:00Z"}

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.path, request.content))
        if request.url.path.endswith("/reject"):
            return httpx.Response(409, json={"type": "about:blank", "title": "Conflict", "status": 409,
                                             "detail": "the job is not awaiting approval"},
                                  headers={"Content-Type": "application/problem+json"})
        return httpx.Response(200, json=job)

    with GrinClient("http://grin.test", "grin_0123456789ab_x", transport=httpx.MockTransport(handler)) as grin:
        assert grin.approve(job_id).status == "queued"
        with pytest.raises(Conflict) as refused:
            grin.reject(job_id, reason="not this subject")
    assert refused.value.detail == "the job is not awaiting approval"
    assert seen[0][:2] == ("POST", f"/v1/jobs/{job_id}/approve")
    assert seen[1][:2] == ("POST", f"/v1/jobs/{job_id}/reject")
    assert json.loads(seen[1][2]) == {"reason": "not this subject"}
