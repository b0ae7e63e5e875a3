"""The FastAPI application. `uvicorn app.main:app` (the app migrates the ledger on start)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.auth.endpoints import router as auth_router
from app.compliance.endpoints import signing_router, webhooks_router
from app.core.admission import AdmissionMiddleware
from app.core.config import get_settings
from app.core.db import migrate
from app.core.limits import RequestSizeLimitMiddleware
from app.core.openapi import install_openapi
from app.core.problems import install_problem_handlers
from app.datasets.endpoints import router as datasets_router
from app.health.endpoints import router as health_router
from app.jobs.endpoints import router as jobs_router
from app.jobs.schemas import UnlearnRequest
from app.observability import install_observability
from app.registry.endpoints import router as registry_router
from app.ui import router as ui_router


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    migrate(settings)
    yield


def create_app() -> FastAPI:
    app = FastAPI(
        title="GRIN Unlearning Service",
        version="0.1.0",
        description="Submit deletion requests against your language models; GRIN localizes, "
        "perturbs and fine-tunes the responsible weights, evaluates forgetting and signs an audit report.",
        lifespan=lifespan,
    )
    install_problem_handlers(app)
    app.add_middleware(RequestSizeLimitMiddleware)
    app.add_middleware(AdmissionMiddleware)  # outside the size limit: a waiting request reads no body yet
    install_observability(app)  # X-Request-ID, JSON access logs, /metrics (outermost middleware)
    app.include_router(health_router)
    app.include_router(auth_router)
    app.include_router(registry_router)
    app.include_router(datasets_router)
    app.include_router(jobs_router)
    app.include_router(webhooks_router)
    app.include_router(signing_router)
    app.include_router(ui_router)
    install_openapi(app, extra_models=[UnlearnRequest])
    return app


app = create_app()
