"""SIGKILL during fine-tuning, many times at random moments over several jobs (private Postgres + Redis).

Most kills hit only the pool child that holds the job's lease (its pid is in `lease_owner`): Celery's parent
survives, the message is rejected back to Redis and redelivered at once, the lease (still live) turns that
delivery away, and the sweep re-enqueues the job once the lease expires. Every fifth kill takes the whole worker
(parent and children, as when the machine dies) and starts a new one. Each job may be killed at most twice
(it must then succeed, resumed from its last finished stage), except a few killed on every attempt (they must
end `failed`, naming the attempt limit).

Then, for every job: exactly one terminal status event, succeeded with exactly one promoted version or failed
with none, no lease left, no raw forget data, no work dir; the model's versions are numbered 1..n without
gaps or duplicates. Tests/worker/test_pipeline_jobs.py has the single-kill case on the embedded stack.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from app.models import Job, JobEvent, JobInput, ModelVersion
from tests.reliability.conftest import PrivatePostgres, PrivateRedis, Stack, stack_on
from tests.reliability.figures import record, size

KILLS = size(5, 20)
JOBS = size(3, 10)
ALWAYS_KILLED = size(1, 2)  # jobs killed on every attempt: they must fail after the attempt limit
STEPS = 30
METHOD = {"preset": "grin", "config": {
    "device": "cpu", "localize": {"k": 0.05, "batch_size": 8}, "noise": {"sigma": 0.1},
    "finetune": {"objective": "graddiff", "steps": STEPS, "batch_size": 4, "lr": 1e-3, "max_length": 96,
                 "checkpoint_every": 5}}}


@pytest.fixture(scope="module")
def stack(private_servers: tuple[PrivatePostgres, PrivateRedis], tmp_path_factory: pytest.TempPathFactory,
          tiny_model_dir: Path) -> Iterator[Stack]:
    yield from stack_on(private_servers, tmp_path_factory.mktemp("sigkill"), tiny_model_dir,
                        {"GRIN_MAX_JOBS_IN_FLIGHT_PER_TENANT": "50", "GRIN_LEASE_SECONDS": "3"})


def _register_copy(stack: Stack, name: str) -> str:
    root = stack.settings.model_roots[0]
    shutil.copytree(root / "tiny", root / name, dirs_exist_ok=True)
    with stack.client() as c:
        response = c.post("/v1/models", json={"name": name, "path": str(root / name)})
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def _finetuning(stack: Stack) -> list[tuple[str, str]]:
    with stack.ledger() as session:
        rows = session.execute(select(Job.id, Job.lease_owner).where(
            Job.status == "running", Job.stage == "finetune", Job.lease_owner.is_not(None))).all()
    return [(str(job_id), owner) for job_id, owner in rows]


def _alive_in_worker(stack: Stack, owner: str) -> bool:
    """The lease holder is a live process of the current worker: a killed child's lease lingers until it
    expires, and the child itself lingers as a zombie until Celery reaps it (killing it again is no kill)."""
    try:
        fields = Path(f"/proc/{int(owner.split(':')[1])}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, ValueError, IndexError):
        return False
    state, pgrp = fields[0], int(fields[2])
    return stack.worker is not None and state not in ("Z", "X") and pgrp == stack.worker.pid


def _leased(stack: Stack) -> list[tuple[str, str]]:
    with stack.ledger() as session:
        rows = session.execute(select(Job.id, Job.lease_owner).where(Job.lease_owner.is_not(None))).all()
    return [(str(job_id), owner) for job_id, owner in rows]


def _statuses(stack: Stack, ids: list[str]) -> dict[str, str]:
    with stack.ledger() as session:
        rows = session.execute(select(Job.id, Job.status).where(Job.id.in_([uuid.UUID(i) for i in ids]))).all()
    return {str(job_id): status for job_id, status in rows}


@pytest.mark.slow
def test_sigkill_during_finetune_many_times(stack: Stack) -> None:
    rng = random.Random(int(os.environ.get("GRIN_RELIABILITY_SEED", "9")))
    # One model per job: jobs on one model run one at a time, jobs on different models side by side.
    models = [_register_copy(stack, f"k{n}") for n in range(JOBS)]
    ids = [stack.submit(metadata={"step_sleep_s": 0.05}, method=METHOD, model_id=model_id) for model_id in models]
    limit = {job_id: (3 if n < ALWAYS_KILLED else 2) for n, job_id in enumerate(ids)}
    killed: Counter[str] = Counter()
    whole_worker_kills = 0
    log: list[tuple[str, str, int]] = []
    in_finetune: set[str] = set()
    started = time.monotonic()
    deadline = started + size(240, 900)
    while sum(killed.values()) < KILLS and time.monotonic() < deadline:
        candidates = [(j, o) for j, o in _finetuning(stack) if killed[j] < limit[j] and _alive_in_worker(stack, o)]
        if not candidates:
            if all(s in ("succeeded", "failed", "cancelled") for s in _statuses(stack, ids).values()):
                break
            time.sleep(0.05)
            continue
        job_id, owner = rng.choice(candidates)
        time.sleep(rng.uniform(0.0, 1.2))  # a random moment inside the fine-tune
        if (job_id, owner) not in _finetuning(stack) or not _alive_in_worker(stack, owner):
            continue  # it moved on (or its lease changed hands) meanwhile
        leased = [j for j, o in _leased(stack) if _alive_in_worker(stack, o)]
        whole = (total_kills := sum(killed.values())) % 5 == 4 or (whole_worker_kills == 0 and total_kills >= KILLS - 2)
        if whole and all(killed[j] < limit[j] for j in leased):
            stack.kill_worker()  # every job it ran dies with it: each counts as killed
            whole_worker_kills += 1
            for other in leased:
                if other != job_id:
                    killed[other] += 1
            stack.start_worker()
        else:
            pid = int(owner.split(":")[1])
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                continue
        killed[job_id] += 1
        in_finetune.add(job_id)
        with stack.ledger() as session:
            log.append((job_id, owner, session.get_one(Job, uuid.UUID(job_id)).attempts))

    kill_phase_s = time.monotonic() - started
    jobs = {job_id: stack.wait(job_id, timeout=size(240, 900)) for job_id in ids}
    total = sum(killed.values())
    assert total >= KILLS, f"only {total} kills landed inside a fine-tune\n{stack.logs()}"

    outcomes: Counter[str] = Counter()
    lapsed = 0
    with stack.ledger() as session:
        for job_id, job in jobs.items():
            jid = uuid.UUID(job_id)
            terminal = session.scalars(select(JobEvent).where(
                JobEvent.job_id == jid, JobEvent.type == "status",
                JobEvent.data["to"].as_string().in_(["succeeded", "failed", "cancelled"]))).all()
            assert len(terminal) == 1, (job_id, [e.data for e in terminal])  # ended exactly once
            versions = session.scalars(select(ModelVersion).where(ModelVersion.job_id == jid)).all()
            row = session.get_one(Job, jid)
            assert row.lease_owner is None and row.lease_expires_at is None  # no orphaned lease
            assert session.get(JobInput, jid) is None  # forget data purged
            assert not stack.work_dir(job_id).exists()
            outcomes[job["status"]] += 1
            if job["status"] == "succeeded":
                assert len(versions) == 1 and job["result_version_id"] == str(versions[0].id)
                # A kill costs one attempt; on a starved machine a late heartbeat can also let a lease lapse,
                # which costs one more (the job is resumed, never cancelled): counted, not hidden.
                assert job["attempts"] >= killed[job_id] + 1, (job_id, [k for k in log if k[0] == job_id])
                lapsed += job["attempts"] - killed[job_id] - 1
                if job_id in in_finetune:
                    assert "localize" in job["metrics"]["resumed_stages"], job["metrics"]  # mask reused
            else:
                assert job["status"] == "failed", job
                assert versions == []
                assert job["attempts"] == 3 and killed[job_id] >= 2, (job_id, killed[job_id], job["error"])
                assert job["error"].startswith(("gave up after 3 of 3 attempts", "attempt 3 of 3 failed")), job["error"]
                lapsed += job["attempts"] - killed[job_id]
        for model_id in models:
            numbers = sorted(session.scalars(select(ModelVersion.number).where(
                ModelVersion.model_id == uuid.UUID(model_id))))
            assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) <= 2  # none promoted twice
        assert session.scalar(select(func.count()).select_from(Job).where(Job.lease_owner.is_not(None))) == 0
    assert outcomes["succeeded"] + outcomes["failed"] == JOBS  # none lost
    record("sigkill", jobs=JOBS, kills=total, whole_worker_kills=whole_worker_kills,
           child_kills=total - whole_worker_kills, succeeded=outcomes["succeeded"], failed=outcomes["failed"],
           lost=0, promoted_twice=0, orphaned_leases=0, extra_attempts_from_lapsed_leases=lapsed,
           kill_phase_s=round(kill_phase_s, 1), total_s=round(time.monotonic() - started, 1),
           resumed=sum(1 for j in ids if killed[j] and jobs[j]["status"] == "succeeded"))
