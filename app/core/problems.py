"""RFC 9457 problem details: every error the API returns is `application/problem+json`."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_MEDIA_TYPE = "application/problem+json"
logger = logging.getLogger("grin.api")


class ProblemError(Exception):
    """Raise anywhere in a request to answer with a problem document."""

    def __init__(self, status: int, title: str, detail: str | None = None, *,
                 type_: str = "about:blank", headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type_
        self.headers = headers
        self.extra = extra


def problem_response(status: int, title: str, detail: str | None = None, *, type_: str = "about:blank",
                     instance: str | None = None, headers: dict[str, str] | None = None,
                     **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": type_, "title": title, "status": status}
    if detail is not None:
        body["detail"] = detail
    if instance is not None:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_MEDIA_TYPE, headers=headers)


def _location(loc: tuple[Any, ...] | list[Any]) -> str:
    return ".".join(str(part) for part in loc)


def install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem_response(exc.status, exc.title, exc.detail, type_=exc.type,
                                instance=request.url.path, headers=exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        from http import HTTPStatus

        title = HTTPStatus(exc.status_code).phrase if exc.status_code in HTTPStatus._value2member_map_ else "Error"
        detail = exc.detail if isinstance(exc.detail, str) and exc.detail != title else None
        return problem_response(exc.status_code, title, detail, instance=request.url.path,
                                headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"loc": _location(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type", "")}
            for err in exc.errors()
        ]
        first = errors[0] if errors else {"loc": "", "msg": "invalid request"}
        return problem_response(422, "Unprocessable Content", f"{first['loc']}: {first['msg']}",
                                instance=request.url.path, errors=errors)

    @app.exception_handler(PoolTimeoutError)
    async def _database_busy(request: Request, exc: Exception) -> JSONResponse:
        # Every pooled connection stayed taken for pool_timeout: load shedding, not an outage.
        logger.warning("database pool exhausted: %s", type(exc).__name__)
        return problem_response(503, "Service Unavailable", "all database connections are busy; retry later",
                                instance=request.url.path, headers={"Retry-After": "1"})

    @app.exception_handler(OperationalError)
    async def _database_down(request: Request, exc: Exception) -> JSONResponse:
        # The driver's class and SQLSTATE tell a deadlock from an outage; its message may quote parameters.
        orig = getattr(exc, "orig", None)
        sqlstate = getattr(orig, "sqlstate", None)
        logger.warning("database unavailable: %s (%s, sqlstate %s)", type(exc).__name__, type(orig).__name__,
                       sqlstate)
        if sqlstate is not None and sqlstate.startswith("40"):  # deadlock or serialization failure
            return problem_response(503, "Service Unavailable", "the request collided with a concurrent one "
                                    "and was rolled back; retry", instance=request.url.path,
                                    headers={"Retry-After": "1"})
        return problem_response(503, "Service Unavailable", "the database is unreachable; retry later",
                                instance=request.url.path, headers={"Retry-After": "5"})

    @app.exception_handler(DBAPIError)
    async def _database_error(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return problem_response(503, "Service Unavailable", "the database connection was lost; retry",
                                    instance=request.url.path, headers={"Retry-After": "5"})
        logger.exception("database error")
        return problem_response(500, "Internal Server Error", instance=request.url.path)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        logger.exception("unhandled error")
        return problem_response(500, "Internal Server Error", instance=request.url.path)
