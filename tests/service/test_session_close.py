"""API request sessions: the teardown when Postgres went away mid-request (no error escapes: it would reach
uvicorn after the response and drop the client's keep-alive connection; seen in the Postgres-restart test),
the ping of connections that idled, and read-only (GET) sessions."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import OperationalError

from app.core import deps
from app.core.config import Settings
from app.core.db import ReadOnlySessionError, make_engine, migrate, open_api_session
from app.models import Tenant


@pytest.mark.parametrize("method", ["POST", "GET"])  # a writer's session, and a reader's autocommit one
def test_a_session_whose_connection_died_closes_quietly(fresh_postgres_database: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch, method: str) -> None:
    engine = make_engine(fresh_postgres_database, pre_ping=False)
    admin = make_engine(fresh_postgres_database)

    def open_api_session(_settings: Settings, *, read_only: bool) -> deps.Session:
        assert read_only == (method == "GET")
        return deps.Session(engine.execution_options(isolation_level="AUTOCOMMIT") if read_only else engine)

    monkeypatch.setattr(deps, "open_api_session", open_api_session)

    async def request() -> None:
        dependency = deps.get_session(SimpleNamespace(method=method),  # type: ignore[arg-type]
                                      Settings(data_dir=tmp_path, database_url=fresh_postgres_database))
        session = await anext(dependency)
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()  # the request's transaction
        with admin.connect() as connection:  # the server drops it, as a restart would
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            connection.commit()
        assert session.in_transaction()
        with pytest.raises(StopAsyncIteration):
            await anext(dependency)  # the teardown: its ROLLBACK fails, and nothing is raised

    asyncio.run(request())
    if method == "GET":
        # A reader's close sends nothing, so nothing noticed that its connection died: without pre-ping the next
        # statement on it fails (the API answers 503) and the pool then discards every connection opened before.
        with pytest.raises(OperationalError), engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    with engine.connect() as connection:  # the dead connection was discarded, not handed out again
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()
    admin.dispose()


def test_a_pooled_connection_that_died_while_idle_is_replaced_at_checkout(fresh_postgres_database: str) -> None:
    """The API's pool pings only connections that sat idle (app/core/db.py::_ping_when_idle): one that Postgres
    dropped meanwhile (a restart, a proxy's idle timeout) is replaced without an error reaching a request."""
    engine = make_engine(fresh_postgres_database, pre_ping=False, ping_idle_s=0.2)
    admin = make_engine(fresh_postgres_database)
    with engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        connection.commit()
    time.sleep(0.3)
    with engine.connect() as connection:
        assert connection.execute(text("SELECT pg_backend_pid()")).scalar_one() != pid
    engine.dispose()
    admin.dispose()


def test_a_read_only_request_session_refuses_to_write(fresh_postgres_database: str, tmp_path: Path) -> None:
    """GET and HEAD requests get autocommit sessions (no BEGIN/ROLLBACK round trips); a write from one would
    commit statement by statement, so it is refused before it reaches the database."""
    settings = Settings(data_dir=tmp_path, database_url=fresh_postgres_database)
    migrate(settings)
    with open_api_session(settings, read_only=True) as session:
        assert session.execute(text("SELECT 1")).scalar_one() == 1
        session.add(Tenant(name="written-by-a-read"))
        with pytest.raises(ReadOnlySessionError):
            session.flush()
    with open_api_session(settings) as session:
        assert session.scalars(select(Tenant).where(Tenant.name == "written-by-a-read")).first() is None


def test_the_api_pool_keeps_a_connection_for_every_admitted_request(fresh_postgres_database: str,
                                                                     tmp_path: Path) -> None:
    """A saturated API returns connections while the others are still out: the pool must keep every one of
    them, or each return closes a connection that the next request opens again (a Postgres backend forked)."""
    settings = Settings(data_dir=tmp_path, database_url=fresh_postgres_database, api_max_concurrent_requests=14)

    def backends_of_a_full_round() -> set[int]:
        sessions = [open_api_session(settings, read_only=True) for _ in range(settings.api_max_concurrent_requests)]
        pids = {s.execute(text("SELECT pg_backend_pid()")).scalar_one() for s in sessions}
        for s in sessions:
            s.close()
        return pids

    first = backends_of_a_full_round()
    assert len(first) == 14
    assert backends_of_a_full_round() == first
