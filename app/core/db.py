"""Database engine, sessions and migrations."""

from __future__ import annotations

import math
import time
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from app.core.config import Settings, get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"
IDLE_PING_AFTER_S = 2.0
POOL_SIZE = 10
# Connections a pool may open beyond pool_size, closed again when returned (each one a Postgres backend forked and
# torn down): for bursts, not for the steady state.
MAX_OVERFLOW = 10


def make_engine(
    database_url: str, *, pre_ping: bool = True, ping_idle_s: float = IDLE_PING_AFTER_S, pool_size: int = POOL_SIZE
) -> Engine:
    """pre_ping=False: test a pooled connection only after it sat idle for ping_idle_s (see _ping_when_idle)."""
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            # WAL lets the API read while the worker writes; foreign keys are off by default in SQLite.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # Short connect timeout: when Postgres is away, callers fail fast (the API answers 503). pool_recycle bounds
    # how old a connection gets, for proxies and firewalls that drop idle ones silently.
    engine = create_engine(
        database_url,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        pool_size=pool_size,
        max_overflow=MAX_OVERFLOW,
        pool_timeout=5,
        connect_args={"connect_timeout": 3},
    )
    if not pre_ping:
        _ping_when_idle(engine, ping_idle_s)
    return engine


def _ping_when_idle(engine: Engine, idle_s: float) -> None:
    """Test a connection at checkout only if it sat in the pool longer than idle_s.

    pre_ping tests every checkout: one round trip per request, which a status poll cannot afford. Connections
    that a busy API reuses every few milliseconds are alive; the ones that die are those that sat idle through
    a Postgres restart or a proxy's idle timeout, and those are tested here, so a restart during a quiet
    moment costs nobody an error. One that dies while busy fails its statement (503 + Retry-After), and
    SQLAlchemy then discards every connection opened before that moment.
    """

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):  # type: ignore[no-untyped-def]
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):  # type: ignore[no-untyped-def]
        if time.monotonic() - record.info.get("checked_in_at", math.inf) <= idle_s:
            return
        try:
            cursor = dbapi_connection.cursor()
            cursor.execute("SELECT 1")
            cursor.close()
            dbapi_connection.rollback()
        except Exception as exc:  # the DBAPI's own error types: any failure means the connection is unusable
            # DisconnectionError tells the pool to discard this connection and check out a fresh one.
            raise DisconnectionError(f"idle pooled connection failed its ping: {type(exc).__name__}") from exc


@lru_cache
def engine_for(database_url: str, *, pre_ping: bool = True, pool_size: int = POOL_SIZE) -> Engine:
    """One engine (and pool) per database URL, ping policy and pool size for the life of the process."""
    return make_engine(database_url, pre_ping=pre_ping, pool_size=pool_size)


def get_engine() -> Engine:
    return engine_for(get_settings().database_url)


@lru_cache
def sessionmaker_for(database_url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=engine_for(database_url), expire_on_commit=False)


def open_session(settings: Settings | None = None) -> Session:
    return sessionmaker_for((settings or get_settings()).database_url)()


class ReadOnlySessionError(RuntimeError):
    """A request that may only read tried to write."""


def _refuse_writes(session: Session, _flush_context: Any, _instances: Any) -> None:
    raise ReadOnlySessionError("a read-only (GET) request tried to write to the ledger")


def api_engine(settings: Settings) -> Engine:
    """The API's engine. Its pool keeps one connection per admitted request (app/core/admission.py): with fewer,
    a saturated API closed a returned connection and opened a new one on most requests (100 clients polling a
    job: 271 Postgres backends forked in 20 s with 10 pooled for 20 admitted, 22 with 20)."""
    return engine_for(settings.database_url, pre_ping=False, pool_size=settings.api_max_concurrent_requests)


@lru_cache
def api_sessionmaker_for(database_url: str, *, read_only: bool, pool_size: int) -> sessionmaker[Session]:
    """Sessions for API requests, cheaper than the worker's: the hot path of a status poll is two SELECTs.

    No ping on every checkout, only after idling (see _ping_when_idle): a ping would add a round trip to every
    request. Read-only sessions run in autocommit: Postgres's READ COMMITTED gives each statement its own
    snapshot either way, so a read sees the same rows without the BEGIN and ROLLBACK round trips of a
    transaction; writing from one is a bug, refused before it reaches the database.
    """
    engine = engine_for(database_url, pre_ping=False, pool_size=pool_size)
    if read_only:
        engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    maker = sessionmaker(bind=engine, expire_on_commit=False)
    if read_only:
        event.listen(maker, "before_flush", _refuse_writes)
    return maker


def open_api_session(settings: Settings, *, read_only: bool = False) -> Session:
    return api_sessionmaker_for(settings.database_url, read_only=read_only,
                                pool_size=settings.api_max_concurrent_requests)()


def ping_database(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


def alembic_config(database_url: str):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def migrate(settings: Settings | None = None, revision: str = "head") -> None:
    """`alembic upgrade head`, run by the API and the worker on start."""
    from alembic import command

    settings = settings or get_settings()
    if settings.database_url.startswith("sqlite"):
        make_engine(settings.database_url).dispose()  # creates the parent folder
    command.upgrade(alembic_config(settings.database_url), revision)
