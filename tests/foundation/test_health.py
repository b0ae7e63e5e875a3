from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings, get_settings
from app.main import create_app
from tests.processes import api_args, free_port, running, service_env, wait_http


def _client(settings: Settings) -> TestClient:
    app = create_app()
    app.dependency_overrides[get_settings] = lambda: settings
    return TestClient(app)


def test_healthz_answers_without_dependencies(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, database_url="postgresql+psycopg://nobody@127.0.0.1:1/none",
                        broker_url="redis://127.0.0.1:1/0")
    assert _client(settings).get("/healthz").json() == {"status": "ok"}


def test_readyz_on_real_postgres_and_redis(tmp_path: Path, fresh_postgres_database: str, redis_url: str) -> None:
    settings = Settings(data_dir=tmp_path, database_url=fresh_postgres_database, broker_url=redis_url)
    response = _client(settings).get("/readyz")
    assert response.status_code == 200, response.text
    assert response.json()["checks"] == {"database": "ok", "broker": "ok"}
    assert response.json()["mode"] == "production"


@pytest.mark.parametrize("down", ["database", "broker", "both"])
def test_readyz_names_what_is_down(tmp_path: Path, fresh_postgres_database: str, redis_url: str,
                                   down: str) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql+psycopg://nobody@127.0.0.1:1/none" if down in ("database", "both")
        else fresh_postgres_database,
        broker_url="redis://127.0.0.1:1/0" if down in ("broker", "both") else redis_url,
    )
    response = _client(settings).get("/readyz")
    assert response.status_code == 503
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == 503 and body["title"] == "Service Unavailable"
    expected_down = {"database", "broker"} if down == "both" else {down}
    assert {name for name, state in body["checks"].items() if state.startswith("down")} == expected_down
    for name in expected_down:
        assert name in body["detail"]


def test_unknown_route_is_problem_json(tmp_path: Path) -> None:
    response = _client(Settings(data_dir=tmp_path)).get("/no-such-thing")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json() == {"type": "about:blank", "title": "Not Found", "status": 404,
                               "instance": "/no-such-thing"}


def test_real_uvicorn_embedded_mode_is_ready_without_servers(tmp_path: Path) -> None:
    """`make run`'s default: SQLite + filesystem broker; it needs neither Postgres nor Redis."""
    port = free_port()
    env = service_env({"GRIN_DATA_DIR": str(tmp_path / "data")})
    with running(api_args(port), env, tmp_path / "api.log"):
        body = wait_http(f"http://127.0.0.1:{port}/readyz").json()
    assert body["mode"] == "embedded"
    assert (tmp_path / "data" / "grin.sqlite3").exists()  # migrated on start
