"""A migrated ledger on real Postgres and on SQLite, for the compliance tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.core.db import alembic_config, make_engine


@pytest.fixture(params=["postgres", "sqlite"])
def ledger_url(request: pytest.FixtureRequest) -> str:
    fixture = "fresh_postgres_database" if request.param == "postgres" else "fresh_sqlite_database"
    url = request.getfixturevalue(fixture)
    command.upgrade(alembic_config(url), "head")
    return url


@pytest.fixture
def ledger_engine(ledger_url: str) -> Iterator[Engine]:
    engine = make_engine(ledger_url)
    yield engine
    engine.dispose()


@pytest.fixture
def make_session(ledger_engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(bind=ledger_engine, expire_on_commit=False)
