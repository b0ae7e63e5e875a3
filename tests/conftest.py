"""Shared fixtures: the real Postgres and Redis that `make test` starts, and fresh databases on them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.processes import scratch_database

REPO_ROOT = Path(__file__).resolve().parents[1]

# Tiny trained models shared by the engine, evaluation, worker and service tests.
pytest_plugins = ["tests.model_fixtures"]

# Tests never read a developer's .env or ~/.grin data; every service setting is given explicitly.
os.environ.setdefault("GRIN_DATA_DIR", str(REPO_ROOT / ".grin" / "pytest-default"))


def _required(name: str, default: str) -> str:
    return os.environ.get(name, default)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    return _required("GRIN_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/grin_test")


@pytest.fixture(scope="session")
def redis_url() -> str:
    return _required("GRIN_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture
def fresh_postgres_database(postgres_url: str) -> Iterator[str]:
    """An empty database of its own on the real Postgres server, dropped afterwards."""
    with scratch_database(postgres_url, "grin_t") as database_url:
        yield database_url


@pytest.fixture
def fresh_sqlite_database(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ledger.sqlite3'}"
