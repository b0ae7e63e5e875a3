"""Typed FastAPI dependencies (`Annotated`), overridable in tests via `app.dependency_overrides`.

Both are `async def` on purpose: FastAPI runs a plain `def` dependency on the thread pool, and every hop there
costs a request time under load. Neither does I/O on the event loop: reading the settings is a cache lookup,
opening a session connects nothing, and closing a writer's session that holds a connection (its ROLLBACK) goes
to a thread.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.types import Scope

from app.core.config import Settings, get_settings
from app.core.db import open_api_session

logger = logging.getLogger("grin.api")


def settings_of_app(scope: Scope) -> Settings:
    """The Settings the routes see, honouring an override of `get_settings` (tests point it elsewhere)."""
    app = scope.get("app")
    overrides = getattr(app, "dependency_overrides", {})
    provider: Callable[[], Settings] = overrides.get(get_settings, get_settings)
    return provider()


async def current_settings(request: Request) -> Settings:
    return settings_of_app(request.scope)


SettingsDep = Annotated[Settings, Depends(current_settings)]


# Requests with these methods only read: they get an autocommit session that refuses to write.
READ_ONLY_METHODS = frozenset({"GET", "HEAD"})


async def get_session(request: Request, settings: SettingsDep) -> AsyncIterator[Session]:
    """One session per request, closed afterwards."""
    read_only = request.method in READ_ONLY_METHODS
    session = open_api_session(settings, read_only=read_only)
    try:
        yield session
    finally:
        # Closing sends nothing when no transaction is open, and an autocommit session never has one open on its
        # connection: only a writer's ROLLBACK goes to a thread.
        if session.in_transaction() and not read_only:
            await run_in_threadpool(_close, session)
        else:
            _close(session)


def _close(session: Session) -> None:
    """Close (ROLLBACK) a request's session; the response is already on its way, so a database that went away
    meanwhile must not turn into an error here: uvicorn would drop the client's keep-alive connection."""
    try:
        session.close()
    except SQLAlchemyError as exc:
        logger.warning("closing a request's session failed (%s); its connection is discarded", type(exc).__name__)
        session.invalidate()


SessionDep = Annotated[Session, Depends(get_session)]
