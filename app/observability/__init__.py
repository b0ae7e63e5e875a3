"""Operational visibility: JSON logs with request and job ids, `X-Request-ID`, Prometheus `/metrics`.

`install_observability(app)` is the one call `create_app` makes.
"""

from __future__ import annotations

from fastapi import FastAPI

from app.observability.logging import configure_logging, job_context
from app.observability.metrics import metrics_router, new_registry
from app.observability.middleware import ObservabilityMiddleware


def install_observability(app: FastAPI) -> None:
    configure_logging()
    registry = new_registry()
    app.state.metrics = registry
    app.add_middleware(ObservabilityMiddleware, metrics=registry)
    app.include_router(metrics_router)


__all__ = ["configure_logging", "install_observability", "job_context"]
