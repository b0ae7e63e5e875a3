"""Redis and Postgres go away and come back while the API serves reads and a worker runs jobs.

Both servers are this module's own (tests/reliability/conftest.py): Redis is SIGKILLed (without persistence,
so every queued message dies with it) and Postgres is stopped in `immediate` mode (a crash: WAL recovery on
the next start). Neither uvicorn nor the Celery worker is restarted: they must heal by themselves.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from app.models import Job, JobEvent, JobInput, ModelVersion
from tests.reliability.conftest import PrivatePostgres, PrivateRedis, Stack, stack_on
from tests.reliability.figures import record
from tests.worker.conftest import POLICY

TERMINAL = ("succeeded", "failed", "cancelled")
PACED = {"step_sleep_s": 0.15}  # ~1.5 s of fine-tune on the tiny model: the outage lands inside a running job
ANSWER_WITHIN_S = 10.0  # connect_timeout 3 s + pool_timeout 5 s, with margin: never a hang


@pytest.fixture(scope="module")
def servers(private_servers: tuple[PrivatePostgres, PrivateRedis]) -> tuple[PrivatePostgres, PrivateRedis]:
    return private_servers


@pytest.fixture(scope="module")
def stack(servers: tuple[PrivatePostgres, PrivateRedis], tmp_path_factory: pytest.TempPathFactory,
          tiny_model_dir: Path) -> Iterator[Stack]:
    yield from stack_on(servers, tmp_path_factory.mktemp("outages"), tiny_model_dir)


@dataclass
class Reader:
    """Polls read endpoints from a thread; every answer's status, media type and latency is kept."""

    stack: Stack
    paths: list[str]
    results: list[tuple[float, str, int, str, float]] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        with httpx.Client(base_url=self.stack.url, headers=self.stack.headers, timeout=30) as client:
            for _ in range(100_000):
                if self.stopping.is_set():
                    return
                for path in self.paths:
                    started = time.monotonic()
                    try:
                        response = client.get(path)
                        status, media = response.status_code, response.headers.get("content-type", "")
                    except httpx.HTTPError as exc:
                        status, media = -1, type(exc).__name__
                    self.results.append((started, path, status, media, time.monotonic() - started))
                time.sleep(0.05)

    def __enter__(self) -> Reader:
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *_: Any) -> None:
        self.stopping.set()
        self.thread.join(60)


def _wait_stage(stack: Stack, job_id: str, stage: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = stack.job(job_id)
        if job["stage"] == stage or job["status"] in TERMINAL:
            return
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {stage}\n{stack.logs()}")


def _assert_consistent(stack: Stack, ids: list[str]) -> None:
    """No half-written state: each job's status matches its last status event, ended at most once, and a
    succeeded job has exactly one version (the model's current one or an ancestor of it)."""
    with stack.ledger() as session:
        for job_id in ids:
            jid = uuid.UUID(job_id)
            job = session.get_one(Job, jid)
            events = session.scalars(select(JobEvent).where(JobEvent.job_id == jid, JobEvent.type == "status")
                                     .order_by(JobEvent.id)).all()
            assert events[-1].data["to"] == job.status, (job_id, job.status, [e.data for e in events])
            assert sum(e.data["to"] in TERMINAL for e in events) == 1
            versions = session.scalars(select(ModelVersion).where(ModelVersion.job_id == jid)).all()
            assert len(versions) == (1 if job.status == "succeeded" else 0)
            assert job.lease_owner is None and session.get(JobInput, jid) is None
        assert session.scalar(select(func.count()).select_from(JobInput).join(Job, Job.id == JobInput.job_id)
                              .where(Job.status.in_(TERMINAL))) == 0


@pytest.mark.slow
def test_redis_restart_while_jobs_are_queued_and_one_runs(stack: Stack, servers: tuple[PrivatePostgres,
                                                                                        PrivateRedis]) -> None:
    _, redis_server = servers
    running_id = stack.submit(metadata=PACED)
    queued = [stack.submit(metadata=PACED)]  # same model: it waits behind the running one
    _wait_stage(stack, running_id, "finetune")
    with Reader(stack, [f"/v1/jobs/{running_id}", "/v1/jobs", f"/v1/jobs/{queued[0]}/events"]) as reader:
        redis_server.stop()
        down_at = time.monotonic()
        with stack.client() as c:
            during = c.post("/v1/unlearn", json={"model_id": stack.model_id, "kind": "qa",
                                                 "forget": [{"question": "q?", "answer": "a"}],
                                                 "retain_dataset_id": stack.dataset_id,
                                                 "method": {"preset": "grin", "config": {"device": "cpu",
                                                            "finetune": {"objective": "graddiff", "steps": 2,
                                                                         "lr": 1e-3, "max_length": 64}}},
                                                 "evaluation": POLICY})
            assert during.status_code == 202, during.text  # the job waits in the ledger for the sweep
            ready = c.get("/readyz")
            assert ready.status_code == 503 and "broker" in ready.json()["checks"]
            assert "down" in ready.json()["checks"]["broker"]
        time.sleep(3)
        redis_server.start()  # empty: every message it held is gone
        up_at = time.monotonic()
        ids = [running_id, *queued, during.json()["id"]]
        jobs = [stack.wait(job_id, timeout=180) for job_id in ids]
    down = [r for r in reader.results if down_at <= r[0] <= up_at]
    assert down, "no read was made while Redis was down"
    assert all(r[2] == 200 for r in reader.results), [r for r in reader.results if r[2] != 200][:5]
    assert [j["status"] for j in jobs] == ["succeeded"] * len(ids), [(j["status"], j["error"]) for j in jobs]
    _assert_consistent(stack, ids)
    with stack.client() as c:
        assert c.get("/readyz").status_code == 200
    record("redis_restart", jobs=len(ids), queued_during_outage=len(queued) + 1, lost=0, duplicated=0,
           reads=len(reader.results), reads_during_outage=len(down), read_errors=0,
           max_read_latency_s=round(max(r[4] for r in reader.results), 3))


@pytest.mark.slow
def test_postgres_restart_under_reads_while_a_worker_runs(stack: Stack, servers: tuple[PrivatePostgres,
                                                                                        PrivateRedis]) -> None:
    postgres, _ = servers
    job_id = stack.submit(metadata=PACED)
    _wait_stage(stack, job_id, "finetune")
    with Reader(stack, [f"/v1/jobs/{job_id}", "/v1/jobs", "/v1/models", "/readyz"]) as reader:
        time.sleep(0.5)
        postgres.stop("immediate")
        down_at = time.monotonic()
        time.sleep(1)
        with stack.client() as c:
            started = time.monotonic()
            submit = c.post("/v1/unlearn", json={"model_id": stack.model_id, "kind": "qa",
                                                 "forget": [{"question": "q?", "answer": "a"}]})
            assert time.monotonic() - started < ANSWER_WITHIN_S
            assert submit.status_code == 503 and submit.headers["content-type"] == "application/problem+json"
            assert submit.headers.get("retry-after")
        time.sleep(5)  # longer than the worker's lease (3 s): the job's lease expires while the ledger is away
        restart_at = time.monotonic()  # requests ending before this had no database
        postgres.start()
        up_at = time.monotonic()
        deadline = up_at + 60
        while time.monotonic() < deadline:
            if httpx.get(f"{stack.url}/readyz", timeout=10).status_code == 200:
                break
            time.sleep(0.2)
        recovered_s = time.monotonic() - up_at
        time.sleep(1)
    during = [r for r in reader.results if down_at + 0.5 <= r[0] and r[0] + r[4] <= restart_at]
    assert during, "no read was answered while Postgres was down"
    for _, path, status, media, elapsed in during:
        assert status == 503, (path, status)
        assert media == "application/problem+json", (path, media)
        assert elapsed < ANSWER_WITHIN_S, (path, elapsed)
    unanswered = [r for r in reader.results if r[2] == -1]
    assert not unanswered, ("a request failed without an HTTP answer", unanswered[:5])
    after = [r for r in reader.results if r[0] > up_at + recovered_s + 0.5]
    assert after and all(r[2] == 200 for r in after), [r for r in after if r[2] != 200][:5]
    job = stack.wait(job_id, timeout=180)
    assert job["status"] == "succeeded", (job["status"], job["error"], job["attempts"])
    _assert_consistent(stack, [job_id])
    record("postgres_restart", reads=len(reader.results), reads_during_outage=len(during),
           answered_503_problem=len(during), hangs=0, max_latency_during_outage_s=round(max(r[4] for r in during), 3),
           recovered_after_s=round(recovered_s, 2), job_status=job["status"], job_attempts=job["attempts"],
           half_written=0)


@pytest.mark.slow
def test_ledger_away_longer_than_the_lease_during_a_long_stage_does_not_cancel_the_job(
        stack: Stack, servers: tuple[PrivatePostgres, PrivateRedis]) -> None:
    """The heartbeat gives the lease up after lease_seconds without the ledger; nobody asked to cancel, so the
    job must be retried (resumed), never ended `cancelled`. One worker slot, so no other child takes the job over
    before the stalled one notices."""
    postgres, _ = servers
    stack.stop_worker()
    stack.start_worker(concurrency=1)
    job_id = stack.submit(metadata={"stall_at": "evaluate", "stall_s": 9})
    stack.wait_marker(job_id, "stall", timeout=180)
    postgres.stop("immediate")
    time.sleep(5)  # > GRIN_LEASE_SECONDS (3): the heartbeat gives up
    postgres.start()
    job = stack.wait(job_id, timeout=180)
    assert job["status"] == "succeeded", (job["status"], job["error"], stack.logs())
    assert job["attempts"] == 2
    _assert_consistent(stack, [job_id])
    stack.stop_worker()
    stack.start_worker()
