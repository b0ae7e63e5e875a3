"""Jobs: listing with cursors and filters, events (JSON pages and SSE), cancel, mask download, report."""

from __future__ import annotations

import json
import threading
import time
import uuid
from typing import Any

from app.core.artifacts import store_from_settings
from app.jobs.state import transition
from app.models import EvaluationResult, Job, JobInput, Mask
from tests.service.conftest import QA, Api, assert_problem


def _drive(api: Api, job_id: str, *steps: tuple[str, dict[str, Any]]) -> None:
    with api.session() as session:
        job = session.get(Job, uuid.UUID(job_id))
        assert job is not None
        for status, options in steps:
            transition(session, job, status, **options)  # type: ignore[arg-type]
            session.commit()


def _submit(api: Api, headers: dict[str, str], model_id: str, n: int = 1) -> list[dict[str, Any]]:
    jobs = []
    for i in range(n):
        response = api.unlearn(headers, model_id, [QA[i % len(QA)]])
        assert response.status_code == 202, response.text
        jobs.append(response.json())
    return jobs


def test_cancel_a_queued_job_ends_it_at_once_and_purges_its_records(api: Api) -> None:
    headers = api.tenant()
    (job,) = _submit(api, headers, api.register(headers)["id"])
    response = api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert cancelled["status"] == "cancelled" and cancelled["cancel_requested"] and cancelled["finished_at"]
    with api.session() as session:
        assert session.get(JobInput, uuid.UUID(job["id"])) is None
    assert_problem(api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers), 409, "cancelled")


def test_cancel_a_running_job_asks_the_worker(api: Api) -> None:
    headers = api.tenant()
    (job,) = _submit(api, headers, api.register(headers)["id"])
    _drive(api, job["id"], ("running", {"stage": "finetune", "progress": 0.4}))
    response = api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "cancelling" and response.json()["cancel_requested"]
    assert api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=headers).status_code == 202  # idempotent
    _drive(api, job["id"], ("cancelled", {}))
    assert api.client.get(f"/v1/jobs/{job['id']}", headers=headers).json()["status"] == "cancelled"


def test_jobs_are_listed_newest_first_by_cursor_and_filtered(api: Api) -> None:
    headers = api.tenant()
    first_model = api.register(headers, "first")["id"]
    second_model = api.register(headers, "second")["id"]
    jobs = _submit(api, headers, first_model, 3) + _submit(api, headers, second_model, 2)
    api.client.post(f"/v1/jobs/{jobs[0]['id']}/cancel", headers=headers)

    seen: list[str] = []
    cursor = None
    while True:
        page = api.client.get("/v1/jobs", params={"limit": 2, **({"cursor": cursor} if cursor else {})},
                              headers=headers).json()
        seen += [j["id"] for j in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == [j["id"] for j in reversed(jobs)]

    by_model = api.client.get("/v1/jobs", params={"model_id": second_model}, headers=headers).json()["items"]
    assert {j["id"] for j in by_model} == {j["id"] for j in jobs[3:]}
    cancelled = api.client.get("/v1/jobs", params={"status": "cancelled"}, headers=headers).json()["items"]
    assert [j["id"] for j in cancelled] == [jobs[0]["id"]]
    assert_problem(api.client.get("/v1/jobs", params={"status": "sleeping"}, headers=headers), 422)
    assert_problem(api.client.get("/v1/jobs", params={"cursor": "bm90IGpzb24"}, headers=headers), 422)


def test_job_detail_and_events_follow_the_state_machine(api: Api) -> None:
    headers = api.tenant()
    (job,) = _submit(api, headers, api.register(headers)["id"])
    _drive(api, job["id"], ("running", {"stage": "localize", "progress": 0.1}),
           ("running", {"stage": "noise", "progress": 0.2}), ("running", {"stage": "finetune", "progress": 0.5}),
           ("running", {"stage": "evaluate", "progress": 0.8}), ("running", {"stage": "report", "progress": 0.95}),
           ("succeeded", {}))
    detail = api.client.get(f"/v1/jobs/{job['id']}", headers=headers).json()
    assert detail["status"] == "succeeded" and detail["progress"] == 1.0 and detail["stage"] is None
    assert detail["started_at"] and detail["finished_at"]

    events: list[dict[str, Any]] = []
    cursor = None
    while True:
        page = api.client.get(f"/v1/jobs/{job['id']}/events", params={"limit": 3, **({"cursor": cursor}
                                                                                     if cursor else {})},
                              headers=headers).json()
        events += page["items"]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert [e["data"]["to"] for e in events] == ["queued"] + ["running"] * 5 + ["succeeded"]
    assert [e["stage"] for e in events[1:6]] == ["localize", "noise", "finetune", "evaluate", "report"]
    assert [e["id"] for e in events] == sorted(e["id"] for e in events)


def _sse_events(text: str) -> list[dict[str, Any]]:
    frames = [frame for frame in text.split("\n\n") if frame.strip() and not frame.startswith(":")]
    parsed = []
    for frame in frames:
        fields = dict(line.split(": ", 1) for line in frame.splitlines())
        parsed.append({"id": int(fields["id"]), "event": fields["event"], **json.loads(fields["data"])})
    return parsed


def test_sse_streams_events_until_the_job_ends(api: Api) -> None:
    headers = api.tenant()
    (job,) = _submit(api, headers, api.register(headers)["id"])

    def worker() -> None:  # plays the worker while the client listens
        for status, options in [("running", {"stage": "localize", "progress": 0.1}),
                                ("running", {"stage": "finetune", "progress": 0.6}), ("succeeded", {})]:
            time.sleep(0.3)
            _drive(api, job["id"], (status, options))

    driver = threading.Thread(target=worker)
    driver.start()
    started = time.monotonic()
    response = api.client.get(f"/v1/jobs/{job['id']}/events", headers={**headers, "Accept": "text/event-stream"})
    driver.join()
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = _sse_events(response.text)
    assert [e["data"]["to"] for e in events] == ["queued", "running", "running", "succeeded"]
    assert all(e["event"] == "status" for e in events)
    assert time.monotonic() - started >= 0.9  # it waited for the worker, then ended on its own

    resumed = api.client.get(f"/v1/jobs/{job['id']}/events",
                             headers={**headers, "Accept": "text/event-stream", "Last-Event-ID": str(events[1]["id"])})
    assert [e["id"] for e in _sse_events(resumed.text)] == [e["id"] for e in events[2:]]


def test_mask_download_and_report(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    (job,) = _submit(api, headers, model["id"])
    assert_problem(api.client.get(f"/v1/jobs/{job['id']}/mask", headers=headers), 404, "no mask yet")

    mask_bytes = b"safetensors mask bytes"
    store = store_from_settings(api.settings)
    artifact = store.put_bytes(mask_bytes)
    with api.session() as session:
        store.record(session, artifact)
        session.add(Mask(job_id=uuid.UUID(job["id"]), artifact_key=artifact.key, sha256=artifact.key,
                         summary={"k": 0.05, "density": {"layers.0.mlp": 0.1}}))
        session.add(EvaluationResult(job_id=uuid.UUID(job["id"]), phase="before", report={"forget_quality": 0.001}))
        session.add(EvaluationResult(job_id=uuid.UUID(job["id"]), phase="after", report={"forget_quality": 0.4},
                                     verdict={"passed": True, "criteria": [], "reason": "ok"}))
        session.commit()
    _drive(api, job["id"], ("running", {"stage": "localize"}), ("succeeded", {}))

    download = api.client.get(f"/v1/jobs/{job['id']}/mask", headers=headers)
    assert download.status_code == 200 and download.content == mask_bytes
    assert download.headers["content-type"] == "application/octet-stream"

    report = api.client.get(f"/v1/jobs/{job['id']}/report", headers=headers).json()
    assert report["job"]["id"] == job["id"] and report["model_name"] == model["name"]
    assert report["base_version"]["id"] == model["current_version_id"] and report["result_version"] is None
    assert report["forget"]["count"] == 1 and report["forget"]["merkle_root"] == job["forget_merkle_root"]
    assert len(report["forget"]["record_sha256"]) == 1
    assert report["mask"] == {"sha256": artifact.key, "summary": {"k": 0.05, "density": {"layers.0.mlp": 0.1}}}
    assert report["evaluation"]["before"] == {"forget_quality": 0.001}
    assert report["evaluation"]["verdict"]["passed"] is True
    assert [e["data"]["to"] for e in report["history"]] == ["queued", "running", "succeeded"]
