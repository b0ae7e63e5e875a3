"""Load on loopback while a worker runs jobs: clients mixing submit, status, events and report reads.

Scaled down here (50 clients for 15 s); bench/reliability.py runs 200 clients for 60 s. Zero errors: every
answer is the expected status (no 5xx, no 429 since the tenant's in-flight limit is raised, no timeouts).
The jobs the load submitted are cancelled afterwards (queued: at once), so later tests find a quiet worker.
"""

from __future__ import annotations

import httpx
import pytest

from tests.reliability.conftest import Stack
from tests.reliability.figures import record, size
from tests.reliability.load import run_load, service_mix
from tests.worker.conftest import fast_method

CLIENTS = size(50, 200)
SECONDS = size(15, 60)


@pytest.mark.slow
def test_concurrent_clients_get_zero_errors_while_a_worker_runs(shared_stack: Stack) -> None:
    stack = shared_stack
    finished = stack.finished_job  # type: ignore[attr-defined]
    running = stack.submit(method=fast_method(steps=200))  # the worker is busy throughout
    submitted: list[str] = [running]
    ops = service_mix(stack.model_id, stack.dataset_id, finished["id"], fast_method(steps=4), submitted)
    result = run_load(stack.url, stack.headers, CLIENTS, SECONDS, ops, timeout=30)
    busy = stack.job(running)
    with httpx.Client(base_url=stack.url, headers=stack.headers, timeout=60) as c:
        for job_id in submitted:
            c.post(f"/v1/jobs/{job_id}/cancel")
    summary = result.summary()
    record("load", **summary, jobs_submitted=len(submitted), worker_job_status_during_load=busy["status"])
    assert result.errors == 0, summary
    assert result.requests > CLIENTS
    assert busy["status"] in ("running", "succeeded"), busy
