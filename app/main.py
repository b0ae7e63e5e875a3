"""The FastAPI application. `uvicorn app.main:app` (the app migrates the ledger on start)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from app.core.config import get_settings
from app.core.db import migrate
from app.core.problems import install_problem_handlers
from app.health.endpoints import router as health_router


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
    app.include_router(health_router)
    return app


app = create_app()
