from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.core.db import api_engine, ping_database
from app.core.deps import SettingsDep
from app.core.problems import problem_response
from worker.broker import ping_broker

router = APIRouter(tags=["health"])

CHECK_TIMEOUT_S = 5.0


@router.get("/healthz", summary="The process is up")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


async def _check(name: str, probe: Any) -> tuple[str, str | None]:
    try:
        await asyncio.wait_for(asyncio.to_thread(probe), timeout=CHECK_TIMEOUT_S)
    except Exception as exc:  # any failure of a dependency makes us unready; the kind is enough to act on
        return name, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''}"
    return name, None


@router.get("/readyz", summary="The database and the broker are reachable",
            responses={503: {"description": "A dependency is down", "content": {"application/problem+json": {}}}})
async def readyz(settings: SettingsDep) -> JSONResponse:
    results = await asyncio.gather(
        _check("database", lambda: ping_database(api_engine(settings))),
        _check("broker", lambda: ping_broker(settings)),
    )
    failures = {name: error for name, error in results if error}
    if failures:
        return problem_response(
            503, "Service Unavailable", "not ready: " + ", ".join(sorted(failures)) + " down",
            instance="/readyz", checks={name: ("down: " + error if error else "ok") for name, error in results},
        )
    return JSONResponse({"status": "ready", "checks": {name: "ok" for name, _ in results},
                         "mode": "embedded" if settings.embedded else "production"})
