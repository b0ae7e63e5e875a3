"""Light tasks on the `cpu` queue."""

from __future__ import annotations

import os
import socket

from worker.celery_app import celery_app


@celery_app.task(name="grin.system.ping")
def ping(payload: str) -> dict[str, object]:
    """Round-trip check used by tests and operators: proves a worker consumes from the broker."""
    return {"echo": payload, "pid": os.getpid(), "host": socket.gethostname()}
