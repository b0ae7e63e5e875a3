"""A real Celery worker process consumes a real task, on Redis and on the embedded broker."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.core.config import Settings
from tests.processes import running, service_env, worker_args
from worker.celery_app import create_celery


@pytest.fixture(params=["redis", "embedded"])
def broker_settings(request: pytest.FixtureRequest, tmp_path: Path, redis_url: str) -> Settings:
    if request.param == "redis":
        return Settings(data_dir=tmp_path, broker_url=redis_url,
                        database_url=request.getfixturevalue("fresh_postgres_database"))
    return Settings(data_dir=tmp_path)


def _env(settings: Settings) -> dict[str, str]:
    return service_env({
        "GRIN_DATA_DIR": str(settings.data_dir),
        "GRIN_DATABASE_URL": settings.database_url,
        "GRIN_BROKER_URL": settings.broker_url,
        "GRIN_RESULT_BACKEND": settings.result_backend,
    })


def test_real_worker_runs_ping(broker_settings: Settings, tmp_path: Path) -> None:
    client = create_celery(broker_settings)
    with running(worker_args(), _env(broker_settings), tmp_path / "worker.log") as worker:
        result = client.send_task("grin.system.ping", args=["hello"], queue=broker_settings.cpu_queue)
        try:
            answer = result.get(timeout=90)
        except Exception:
            print((tmp_path / "worker.log").read_text())
            raise
        assert answer["echo"] == "hello"
        assert answer["pid"] != worker.pid  # ran in a forked child (prefork pool), never the parent
