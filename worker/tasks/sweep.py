"""The recovery sweep, run by every worker: once when it is ready, then every `sweep_interval_s`.

Each round also re-sends webhook deliveries whose task was lost (overdue by a minute). It runs in a timer
thread of the worker's parent process (no beat needed, and it works whatever queues the worker consumes);
`grin.system.sweep` runs the same function on demand on the `cpu` queue. The parent never imports torch:
the sweep is ledger queries and `send_task` only.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from celery.signals import worker_process_init, worker_ready, worker_shutdown
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.compliance.webhooks import dispatch, redispatch_overdue
from app.core.config import get_settings
from app.core.db import make_engine, open_session
from worker.celery_app import celery_app
from worker.leases import RUN_JOB_TASK, sweep

logger = logging.getLogger("grin.worker.sweep")

_parent_engine: Engine | None = None
_timer: SweepTimer | None = None


def send_run_job(job_id: str) -> None:
    celery_app.send_task(RUN_JOB_TASK, args=[job_id])


class SweepTimer(threading.Thread):
    def __init__(self, interval_s: float) -> None:
        super().__init__(name="grin-sweep", daemon=True)
        self.interval_s = interval_s
        self.stopping = threading.Event()

    def run(self) -> None:
        global _parent_engine
        settings = get_settings()
        # An engine of the parent's own; children dispose of it without closing its connections.
        _parent_engine = make_engine(settings.database_url)
        factory = sessionmaker(bind=_parent_engine, expire_on_commit=False)
        while True:
            try:
                sweep(factory, send_run_job, grace_s=settings.sweep_grace_s, work_root=settings.data_dir / "work")
                redispatch_overdue(factory, dispatch)
            except Exception:  # the database or broker is down: the next round tries again
                logger.exception("sweep failed")
            if self.stopping.wait(self.interval_s):
                return


@worker_ready.connect
def _start_sweeper(**_: Any) -> None:
    global _timer
    _timer = SweepTimer(get_settings().sweep_interval_s)
    _timer.start()


@worker_shutdown.connect
def _stop_sweeper(**_: Any) -> None:
    if _timer is not None:
        _timer.stopping.set()


@worker_process_init.connect
def _forget_parent_connections(**_: Any) -> None:
    """A forked child must not use (or close) the parent's pooled connections."""
    if _parent_engine is not None:
        _parent_engine.dispose(close=False)


@celery_app.task(name="grin.system.sweep", ignore_result=True)
def sweep_task() -> dict[str, list[str]]:
    settings = get_settings()

    def factory() -> Session:
        return open_session(settings)

    report = sweep(factory, send_run_job, grace_s=settings.sweep_grace_s, work_root=settings.data_dir / "work")
    webhooks = redispatch_overdue(factory, dispatch)
    return {"requeued": report.requeued, "failed": report.failed, "cancelled": report.cancelled,
            "webhooks_resent": [str(d) for d in webhooks]}
