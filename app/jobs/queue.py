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


@lru_cache(maxsize=8)
def _celery_for(settings_json: str) -> Celery:
    return create_celery(Settings.model_validate_json(settings_json))


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
