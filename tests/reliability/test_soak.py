"""Soak: many jobs queued at once on the tiny model; all finish, the queue drains, the worker's memory is flat.

The worker forks one child per job (worker_max_tasks_per_child=1): the parent's RSS is read after every job
and each child's peak RSS is sampled while it runs (the child holding the job's lease). Scaled down here;
bench/reliability.py queues 100 jobs.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from pathlib import Path

import pytest
import redis
from sqlalchemy import func, select

from app.models import Job, JobEvent
from tests.reliability.conftest import Stack
from tests.reliability.figures import record, size
from tests.worker.conftest import fast_method

JOBS = size(4, 100)


def _rss_kib(pid: int) -> int:
    try:
        match = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return 0
    return int(match.group(1)) if match else 0


@pytest.mark.slow
def test_queued_jobs_all_finish_and_worker_memory_stays_flat(shared_stack: Stack) -> None:
    stack = shared_stack
    assert stack.worker is not None
    parent = stack.worker.pid
    broker = redis.Redis.from_url(stack.settings.broker_url)
    for _ in range(240):  # start from an empty queue (earlier tests' messages skipped)
        if not broker.llen(stack.settings.gpu_queue):
            break
        time.sleep(0.5)
    ids = [stack.submit(method=fast_method(steps=4)) for _ in range(JOBS)]
    peaks: dict[str, int] = {}
    parent_after: dict[str, int] = {}
    finished_order: list[str] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            with stack.ledger() as session:
                rows = session.execute(select(Job.id, Job.lease_owner, Job.status).where(
                    Job.id.in_([uuid.UUID(i) for i in ids]))).all()
            for job_id, owner, status in rows:
                key = str(job_id)
                if owner and status == "running":
                    pid = int(owner.split(":")[1])
                    peaks[key] = max(peaks.get(key, 0), _rss_kib(pid))
                if status in ("succeeded", "failed", "cancelled") and key not in parent_after:
                    parent_after[key] = _rss_kib(parent)
                    finished_order.append(key)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        jobs = [stack.wait(job_id, timeout=size(300, 1800)) for job_id in ids]
    finally:
        time.sleep(0.3)
        stop.set()
        sampler.join(10)
    seconds = time.monotonic() - started
    assert [j["status"] for j in jobs] == ["succeeded"] * JOBS, [(j["status"], j["error"]) for j in jobs]
    broker = redis.Redis.from_url(stack.settings.broker_url)
    depth = broker.llen(stack.settings.gpu_queue)  # duplicates the worker has yet to skip
    drained_at = time.monotonic()
    while broker.llen(stack.settings.gpu_queue) and time.monotonic() - drained_at < 120:
        time.sleep(0.5)
    drain_s = time.monotonic() - drained_at
    assert broker.llen(stack.settings.gpu_queue) == 0, "the queue did not drain"
    with stack.ledger() as session:
        resent = session.scalar(select(func.count()).select_from(JobEvent).where(
            JobEvent.job_id.in_([uuid.UUID(i) for i in ids]), JobEvent.type == "requeued"))
    parent_mib = [parent_after[j] / 1024 for j in finished_order]
    child_mib = [peaks[j] / 1024 for j in finished_order if peaks.get(j)]
    warm = max(1, len(parent_mib) // 5)
    parent_growth = max(parent_mib[warm:] or parent_mib) - max(parent_mib[:warm])
    child_growth = (sum(child_mib[-warm:]) / warm - sum(child_mib[:warm]) / warm) if len(child_mib) >= 2 * warm else 0
    record("soak", jobs=JOBS, succeeded=JOBS, seconds=round(seconds, 1), jobs_per_minute=round(JOBS / seconds * 60, 1),
           queue_depth_at_end=depth, drain_s=round(drain_s, 1), sweep_resends=resent,
           parent_rss_mib_per_job=[round(x, 1) for x in parent_mib],
           child_peak_rss_mib_per_job=[round(x, 1) for x in child_mib], parent_growth_mib=round(parent_growth, 1),
           child_peak_growth_mib=round(child_growth, 1))
    assert parent_growth < 16, parent_mib
    assert child_growth < 32, child_mib
