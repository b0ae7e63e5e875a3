"""Enqueue jobs by task name: the API never imports worker task modules (nor, through them, torch)."""

from __future__ import annotations

import logging
import uuid
from functools import lru_cache

from celery import Celery

from app.core.config import Settings
from worker.celery_app import create_celery

RUN_JOB_TASK = "grin.pipeline.run_job"
logger = logging.getLogger("grin.api")


# Publishing from a request must fail fast when the broker is down (the job is safe in the ledger), instead
# of kombu's default reconnect loop holding the client for seconds.
PUBLISH_FAILOVER = {"max_retries": 1, "interval_start": 0, "interval_step": 0.1, "interval_max": 0.1,
                    "connect_retries_timeout": 2}


@lru_cache(maxsize=8)
def _celery_for(settings_json: str) -> Celery:
    settings = Settings.model_validate_json(settings_json)
    celery = create_celery(settings)
    celery.conf.broker_transport_options = {**celery.conf.broker_transport_options, **PUBLISH_FAILOVER}
    return celery


def enqueue_job(settings: Settings, job_id: uuid.UUID) -> bool:
    """Publish the job's message; False when the broker is unreachable.

    The job row is already committed as `queued`, so a lost publish loses nothing: the worker's recovery
    sweep re-enqueues queued jobs that no live lease holds. `ignore_result`: the ledger, not the Celery result
    backend, is where outcomes live, so publishing must not also need the result backend.
    """
    celery = _celery_for(settings.model_dump_json())
    try:
        celery.send_task(RUN_JOB_TASK, args=[str(job_id)], queue=settings.gpu_queue, retry=False,
                         ignore_result=True)
    except Exception as exc:  # any broker failure leaves the job queued for the sweep; the client still gets 202
        logger.warning("job %s stays queued: the broker is unreachable (%s)", job_id, type(exc).__name__)
        return False
    return True
