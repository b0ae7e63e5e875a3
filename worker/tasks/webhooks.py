"""Webhook deliveries on the `cpu` queue: one attempt per task, retries scheduled with a countdown."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from app.compliance.webhooks import DELIVER_TASK, attempt_delivery
from app.core.config import get_settings
from app.core.db import open_session
from worker.celery_app import celery_app

logger = logging.getLogger("grin.webhooks")


@celery_app.task(name=DELIVER_TASK)
def deliver(delivery_id: str) -> dict[str, Any]:
    with open_session() as session:
        outcome = attempt_delivery(session, uuid.UUID(delivery_id))
    if outcome.retry_in_s is not None:
        logger.info("webhook delivery %s attempt %d failed (%s); retry in %.1fs", delivery_id, outcome.attempts,
                    outcome.error, outcome.retry_in_s)
        deliver.apply_async(args=[delivery_id], countdown=outcome.retry_in_s, queue=get_settings().cpu_queue)
    elif outcome.status == "failed":
        logger.warning("webhook delivery %s failed for good after %d attempts (%s)", delivery_id, outcome.attempts,
                       outcome.error)
    return outcome.as_dict()
