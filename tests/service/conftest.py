"""The API through TestClient on a real ledger: Postgres (one migrated database per module, truncated between
tests) with the real Redis as broker; `test_embedded.py` swaps in the embedded SQLite + filesystem default."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from fastapi.testclient import TestClient
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.auth import service as auth
from app.core.config import Settings, get_settings
from app.core.db import engine_for, migrate, open_session
from app.main import create_app
from app.models import Base
from tests.processes import scratch_database

QA = [{"question": f"Who is person {i}?", "answer": f"Person {i} is a fictional author."} for i in range(5)]


@pytest.fixture(scope="module")
def module_postgres(postgres_url: str) -> Iterator[str]:
    """A database of this module's own, migrated once."""
    with scratch_database(postgres_url, "grin_s") as database_url:
        try:
            migrate(Settings(database_url=database_url))
            yield database_url
        finally:
            engine_for(database_url).dispose()


@pytest.fixture
def ledger_url(module_postgres: str) -> str:
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine_for(module_postgres).begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    return module_postgres


@pytest.fixture
def broker_url(redis_url: str) -> str:
    return redis_url


@pytest.fixture
def gpu_queue(broker_url: str) -> Iterator[str]:
    """A queue of this test's own, so messages never reach another test's (or another developer's) worker."""
    name = f"gpu-test-{uuid.uuid4().hex[:8]}"
    yield name
    if broker_url.startswith("redis"):
        client = redis.Redis.from_url(broker_url)
        client.delete(name)
        client.close()


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Api:
    client: TestClient
    settings: Settings
    model_root: Path

    def session(self) -> Session:
        return open_session(self.settings)

    def tenant(self, name: str | None = None) -> dict[str, str]:
        """A new tenant with one key; the Authorization header to use."""
        with self.session() as session:
            tenant = auth.create_tenant(session, name or f"tenant-{uuid.uuid4().hex[:8]}")
            issued = auth.issue_key(session, tenant, "tests")
            session.commit()
        return {"Authorization": f"Bearer {issued.secret}"}

    def model_dir(self, name: str = "tiny", parent: Path | None = None) -> Path:
        directory = (parent or self.model_root) / name
        directory.mkdir(parents=True)
        (directory / "config.json").write_text(json.dumps({"model_type": "llama",
                                                           "architectures": ["LlamaForCausalLM"]}))
        (directory / "model.safetensors").write_bytes(b"\x00" * 1000 + name.encode())
        (directory / "tokenizer").mkdir()
        (directory / "tokenizer" / "tokenizer.json").write_text("{}")
        return directory

    def register(self, headers: dict[str, str], name: str = "tiny") -> dict[str, Any]:
        response = self.client.post("/v1/models", json={"name": name, "path": str(self.model_dir(name))},
                                    headers=headers)
        assert response.status_code == 201, response.text
        return dict(response.json())

    def unlearn(self, headers: dict[str, str], model_id: str, forget: list[Any] | None = None,
                **fields: Any) -> httpx.Response:
        body = {"model_id": model_id, "kind": "qa", "forget": QA[:2] if forget is None else forget, **fields}
        return self.client.post("/v1/unlearn", json=body, headers=headers)


@pytest.fixture
def make_api(tmp_path: Path, ledger_url: str, broker_url: str, gpu_queue: str) -> Callable[..., Api]:
    def build(**overrides: Any) -> Api:
        model_root = tmp_path / "models"
        model_root.mkdir(exist_ok=True)
        # A short key cache: the suite runs with remembered keys (the production path), and a revocation test
        # waits a second, not the default five.
        fields: dict[str, Any] = {"data_dir": tmp_path / "data", "database_url": ledger_url,
                                  "broker_url": broker_url, "model_roots": [model_root], "gpu_queue": gpu_queue,
                                  "api_key_cache_s": 1.0}
        settings = Settings(**{**fields, **overrides})
        if not ledger_url:
            migrate(settings)  # the embedded default: a fresh SQLite file per test
        app = create_app()
        app.dependency_overrides[get_settings] = lambda: settings
        # No `with`: the lifespan would migrate the process-wide default ledger, not this one.
        return Api(client=TestClient(app), settings=settings, model_root=settings.model_roots[0])

    return build


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    return make_api()


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status and body["title"]
    for fragment in fragments:
        assert fragment in body.get("detail", ""), body
    return body
