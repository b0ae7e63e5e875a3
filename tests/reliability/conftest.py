"""Private Postgres and Redis servers for the fault-injection tests, and service stacks on top of them.

The shared servers on 5432/6379 are never stopped, restarted or flushed by these tests: each module that needs
servers starts a throwaway Postgres cluster (initdb as the `postgres` OS user, `pg_ctl` on a free loopback
port, its socket in a private folder) and a `redis-server` subprocess on another free port, and it may stop,
kill and restart them at will. Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.core.config import Settings
from tests.processes import free_port
from tests.service.conftest import api, broker_url, gpu_queue, ledger_url, make_api, module_postgres
from tests.worker.conftest import Stack, _make_stack, tiny_model_dir

# Fixtures of tests/service (a TestClient on a migrated Postgres database) for the input and auth tests.
__all__ = ["PrivatePostgres", "PrivateRedis", "Stack", "api", "broker_url", "gpu_queue", "ledger_url", "make_api",
           "module_postgres", "tiny_model_dir"]

PG_BIN = Path("/usr/lib/postgresql/15/bin")
REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class PrivatePostgres:
    """A throwaway cluster owned by the `postgres` OS user (tests run as root), trust auth, loopback only."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="grinpg-"))  # short: a unix socket path is <= 107 bytes
        self.data, self.sock, self.log = self.root / "data", self.root / "s", self.root / "postgres.log"
        self.sock.mkdir()
        user = pwd.getpwnam("postgres")
        for path in (self.root, self.sock):
            os.chown(path, user.pw_uid, user.pw_gid)
        self.port = free_port()
        self._as_postgres([str(PG_BIN / "initdb"), "-D", str(self.data), "--auth=trust", "-U", "postgres",
                           "-E", "UTF8", "--no-sync"], timeout=120)

    def _as_postgres(self, args: list[str], timeout: float = 60) -> None:
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, timeout=timeout,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def start(self) -> None:
        options = (f"-p {self.port} -k {self.sock} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=200 -c full_page_writes=off")
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.log),
                           "-w", "-t", "60", "start"], timeout=90)

    def stop(self, mode: str = "immediate") -> None:
        """`immediate` is a crash: no checkpoint, connections cut; the next start runs WAL recovery."""
        self._as_postgres([str(PG_BIN / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "-t", "60", "stop"],
                          timeout=90)

    def running(self) -> bool:
        return subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.data),
                               "status"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0

    def url(self, database: str = "postgres") -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        from sqlalchemy import create_engine, text

        name = f"grin_r_{uuid.uuid4().hex[:10]}"
        admin = create_engine(self.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"'))
        admin.dispose()
        return self.url(name)

    def destroy(self) -> None:
        if self.running():
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


class PrivateRedis:
    """`redis-server` as a child process on a free loopback port, no persistence (a restart empties it)."""

    def __init__(self, log_dir: Path) -> None:
        self.port = free_port()
        self.log_dir = log_dir
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def url(self, db: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{db}"

    def start(self) -> None:
        self.starts += 1
        log = open(self.log_dir / f"redis-{self.starts}.log", "wb")  # noqa: SIM115 - closed with the process
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no"], stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        import redis

        deadline = time.monotonic() + 30
        while True:
            try:
                if redis.Redis(port=self.port, socket_connect_timeout=1).ping():
                    return
            except redis.RedisError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGKILL: the server vanishes with every message it held."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(10)
        self.process = None


def _servers(log_dir: Path) -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    postgres = PrivatePostgres()
    redis_server = PrivateRedis(log_dir)
    try:
        postgres.start()
        redis_server.start()
        yield postgres, redis_server
    finally:
        redis_server.stop()
        postgres.destroy()


@pytest.fixture(scope="module")
def private_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    """Servers a module's fault tests may stop and restart."""
    yield from _servers(tmp_path_factory.mktemp("redis"))


def _signing_key(settings: Settings) -> None:
    """Outside embedded mode the worker signs audit reports with a key that must already exist."""
    try:
        from app.compliance.signing import load_signing_key
    except ImportError:  # pragma: no cover - a tree without report signing
        return
    load_signing_key(settings, generate=True)


def stack_on(servers: tuple[PrivatePostgres, PrivateRedis], tmp: Path, model_dir: Path,
             extra_env: dict[str, str] | None = None, **settings: object) -> Iterator[Stack]:
    """uvicorn + one Celery worker on a new database of the private Postgres and the private Redis."""
    postgres, redis_server = servers
    config = Settings(data_dir=tmp / "data", database_url=postgres.create_database(),
                      broker_url=redis_server.url(0), **settings)  # type: ignore[arg-type]
    env = {"GRIN_PIPELINE_HOOK": "tests.reliability.hooks:hook", **(extra_env or {})}
    _signing_key(config)
    yield from _make_stack(config, tmp, model_dir, env)


@pytest.fixture(scope="module")
def private_stack(private_servers: tuple[PrivatePostgres, PrivateRedis], tmp_path_factory: pytest.TempPathFactory,
                  tiny_model_dir: Path) -> Iterator[Stack]:
    yield from stack_on(private_servers, tmp_path_factory.mktemp("private-stack"), tiny_model_dir)


@pytest.fixture(scope="session")
def session_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[PrivatePostgres, PrivateRedis]]:
    """Servers for the modules that never stop them (isolation, load, soak): started once per session."""
    yield from _servers(tmp_path_factory.mktemp("session-redis"))


@pytest.fixture(scope="session")
def shared_stack(session_servers: tuple[PrivatePostgres, PrivateRedis], tmp_path_factory: pytest.TempPathFactory,
                 tiny_model_dir: Path) -> Iterator[Stack]:
    """One stack with a job already run to `succeeded` (its mask, reports and version exist)."""
    for stack in stack_on(session_servers, tmp_path_factory.mktemp("shared-stack"), tiny_model_dir,
                          {"GRIN_MAX_JOBS_IN_FLIGHT_PER_TENANT": "1000",
                           # webhooks to a closed loopback port: endpoints can be created, nothing leaves the host
                           "GRIN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true"}):
        job = stack.wait(stack.submit(), timeout=180)
        assert job["status"] == "succeeded", job
        stack.finished_job = job  # type: ignore[attr-defined]
        yield stack
