"""The request session's teardown when Postgres went away mid-request: no error escapes (it would reach
uvicorn after the response and drop the client's keep-alive connection; seen in the Postgres-restart test)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from app.core import deps
from app.core.config import Settings
from app.core.db import make_engine


def test_a_session_whose_connection_died_closes_quietly(fresh_postgres_database: str, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    engine = make_engine(fresh_postgres_database)
    admin = make_engine(fresh_postgres_database)
    monkeypatch.setattr(deps, "open_session", lambda _settings: deps.Session(engine))

    async def request() -> None:
        dependency = deps.get_session(Settings(data_dir=tmp_path, database_url=fresh_postgres_database))
        session = await anext(dependency)
        pid = session.execute(text("SELECT pg_backend_pid()")).scalar_one()  # the request's transaction
        with admin.connect() as connection:  # the server drops it, as a restart would
            connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
            connection.commit()
        assert session.in_transaction()
        with pytest.raises(StopAsyncIteration):
            await anext(dependency)  # the teardown: its ROLLBACK fails, and nothing is raised

    asyncio.run(request())
    with engine.connect() as connection:  # the dead connection was discarded, not handed out again
        assert connection.execute(text("SELECT 1")).scalar_one() == 1
    engine.dispose()
    admin.dispose()
