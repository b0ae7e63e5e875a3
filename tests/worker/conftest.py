"""A real service stack for the worker tests: uvicorn + a Celery worker process, on Postgres/Redis or embedded.

Jobs go in through the HTTP API exactly as a client sends them; the worker runs them with a pipeline hook
(`tests.worker.hooks`) that pauses or crashes a job where its `metadata` says, so the tests can cancel or
kill it at a known stage.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.core.config import Settings
from tests.processes import api_args, free_port, running, scratch_database, service_env, wait_http, worker_args

REPO_ROOT = Path(__file__).resolve().parents[2]
TOFU = REPO_ROOT / "data" / "tofu"


def _rows(name: str, start: int, stop: int) -> list[dict[str, str]]:
    lines = (TOFU / name).read_text().splitlines()[start:stop]
    return [{"question": r["question"], "answer": r["answer"]} for r in map(json.loads, lines)]


FORGET = _rows("forget01.json", 0, 6)
RETAIN = _rows("retain90.json", 0, 12)
HOLDOUT = _rows("forget10.json", 0, 4)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random GPT-2-style model of ~60k parameters with a tokenizer trained on the test records."""
    import torch

    from grin_engine.build import build_tiny_model

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("tiny") / "model"
    texts = [t for r in FORGET + RETAIN + HOLDOUT for t in (r["question"], r["answer"])]
    build_tiny_model(out, texts, arch="gpt2", vocab_size=320, hidden=32, layers=2, heads=2, max_positions=128,
                     seed=0)
    return out


def fast_method(steps: int = 8, **finetune: Any) -> dict[str, Any]:
    """A job of seconds. GradDiff, not the default SimNPO: see FAST_METHOD in tests/operator/conftest.py."""
    return {"preset": "grin", "config": {
        "device": "cpu",
        "localize": {"k": 0.05, "batch_size": 8},
        "noise": {"sigma": 0.1},
        "finetune": {"objective": "graddiff", "steps": steps, "batch_size": 4, "lr": 1e-3, "max_length": 96,
                     **finetune},
    }}


# A cheap policy the tests can evaluate: forget probability must not rise.
POLICY = {"criteria": [{"name": "forget probability not up", "keys": ["forget/probability"], "op": "<=",
                        "threshold": 1.0, "basis": "before_ratio"}]}


@dataclass
class Stack:
    settings: Settings
    env: dict[str, str]
    url: str
    tmp: Path
    key: str = ""
    model_id: str = ""
    dataset_id: str = ""
    exits: ExitStack = field(default_factory=ExitStack)
    worker: subprocess.Popen[bytes] | None = None
    worker_logs: list[Path] = field(default_factory=list)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=30)

    def start_worker(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        log = self.tmp / f"worker-{len(self.worker_logs)}.log"
        self.worker_logs.append(log)
        self.worker = self.exits.enter_context(running(worker_args(concurrency=concurrency), self.env, log))
        return self.worker

    def stop_worker(self) -> None:
        """SIGTERM and wait (a clean shutdown)."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGTERM)
        self.worker.wait(30)

    def kill_worker(self) -> None:
        """SIGKILL the whole worker (parent and children): the machine died, nobody acks or cleans up."""
        assert self.worker is not None
        os.killpg(self.worker.pid, signal.SIGKILL)
        self.worker.wait(10)

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-6000:]}" for p in self.worker_logs
                         if p.exists())

    def submit(self, metadata: dict[str, Any] | None = None, **overrides: Any) -> str:
        body: dict[str, Any] = {"model_id": self.model_id, "kind": "qa", "forget": FORGET, "holdout": HOLDOUT,
                                "retain_dataset_id": self.dataset_id, "method": fast_method(),
                                "evaluation": POLICY, "subject_reference": "test-subject",
                                "metadata": {"test": True, **(metadata or {})}}
        body.update(overrides)
        with self.client() as c:
            response = c.post("/v1/unlearn", json=body)
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        with self.client() as c:
            response = c.get(f"/v1/jobs/{job_id}")
        assert response.status_code == 200, response.text
        return dict(response.json())

    def events(self, job_id: str) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from app.models import JobEvent

        with self.ledger() as session:
            rows = session.scalars(select(JobEvent).where(JobEvent.job_id == uuid.UUID(job_id))
                                   .order_by(JobEvent.id)).all()
            return [{"type": e.type, "stage": e.stage, "data": e.data} for e in rows]

    def wait(self, job_id: str, statuses: tuple[str, ...] = ("succeeded", "failed", "cancelled"),
             timeout: float = 90, predicate: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        job: dict[str, Any] = {}
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses and (predicate is None or predicate(job)):
                return job
            time.sleep(0.3)
        raise AssertionError(f"job {job_id} still {job.get('status')}/{job.get('stage')} after {timeout}s\n"
                             f"{self.logs()}")

    def marker(self, job_id: str, stage: str) -> Path:
        return self.settings.data_dir / "hook" / f"{job_id}.{stage}"

    def wait_marker(self, job_id: str, stage: str, timeout: float = 90) -> None:
        path = self.marker(job_id, stage)
        deadline = time.monotonic() + timeout
        while not path.exists():
            if time.monotonic() > deadline:
                raise AssertionError(f"job {job_id} never reached {stage}\n{self.logs()}")
            time.sleep(0.1)

    def work_dir(self, job_id: str) -> Path:
        return self.settings.data_dir / "work" / job_id

    def ledger(self) -> Any:
        from app.core.db import open_session

        return open_session(self.settings)


def _make_stack(settings: Settings, tmp: Path, model_dir: Path, extra_env: dict[str, str]) -> Iterator[Stack]:
    model_root = settings.model_roots[0]
    model_root.mkdir(parents=True, exist_ok=True)
    # The report signing key: generated on first use only when embedded; a Postgres stack is given one.
    from app.compliance.signing import _write_new_key

    signing_key = tmp / "signing" / "ed25519.pem"
    if not signing_key.exists():
        signing_key.parent.mkdir(parents=True, exist_ok=True)
        _write_new_key(signing_key)
    shutil.copytree(model_dir, model_root / "tiny", dirs_exist_ok=True)
    env = service_env({
        "GRIN_DATA_DIR": str(settings.data_dir),
        "GRIN_DATABASE_URL": settings.database_url,
        "GRIN_BROKER_URL": settings.broker_url,
        "GRIN_RESULT_BACKEND": settings.result_backend,
        "GRIN_MODEL_ROOTS": str(model_root),
        "GRIN_LEASE_SECONDS": "3",
        "GRIN_SWEEP_INTERVAL_S": "1",
        "GRIN_SWEEP_GRACE_S": "2",
        "GRIN_EVENT_EVERY_STEPS": "2",
        "GRIN_CANCEL_CHECK_INTERVAL_S": "0.2",
        "GRIN_MAX_ATTEMPTS": "3",
        "GRIN_PIPELINE_HOOK": "tests.worker.hooks:hook",
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO_ROOT),
        "GRIN_SIGNING_KEY_PATH": str(signing_key),
        **extra_env,
    })
    from app.auth import service as auth
    from app.core.db import migrate, open_session

    migrate(settings)
    with open_session(settings) as session:
        tenant = auth.create_tenant(session, f"worker-tests-{uuid.uuid4().hex[:6]}")
        key = auth.issue_key(session, tenant, "tests").secret
        session.commit()
    port = free_port()
    stack = Stack(settings=settings, env=env, url=f"http://127.0.0.1:{port}", tmp=tmp, key=key)
    with stack.exits:
        stack.exits.enter_context(running(api_args(port), env, tmp / "api.log"))
        wait_http(f"{stack.url}/readyz", timeout=90)
        with stack.client() as c:
            model = c.post("/v1/models", json={"name": "tiny", "path": str(model_root / "tiny")})
            assert model.status_code == 201, model.text
            stack.model_id = model.json()["id"]
            body = "".join(json.dumps(r) + "\n" for r in RETAIN).encode()
            dataset = c.post("/v1/datasets", params={"name": "retain", "kind": "qa"}, content=body,
                             headers={"Content-Type": "application/jsonl"})
            assert dataset.status_code == 201, dataset.text
            stack.dataset_id = dataset.json()["id"]
        stack.start_worker()
        yield stack


def postgres_stack(tmp: Path, postgres_url: str, redis_url: str, tiny_model_dir: Path, *, redis_db: int = 13,
                   extra_env: dict[str, str] | None = None) -> Iterator[Stack]:
    """A stack on a fresh Postgres database and a Redis database of its own (emptied first)."""
    # A Redis database of its own, emptied first: other suites' workers never see these jobs.
    import redis

    broker = redis_url.rsplit("/", 1)[0] + f"/{redis_db}"
    redis.Redis.from_url(broker).flushdb()
    with scratch_database(postgres_url, "grin_w") as database_url:
        settings = Settings(data_dir=tmp / "data", database_url=database_url, broker_url=broker)
        yield from _make_stack(settings, tmp, tiny_model_dir, extra_env or {})


@pytest.fixture(scope="module")
def pg_stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str,
             tiny_model_dir: Path) -> Iterator[Stack]:
    yield from postgres_stack(tmp_path_factory.mktemp("pg-stack"), postgres_url, redis_url, tiny_model_dir)


@pytest.fixture(scope="module")
def embedded_stack(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("embedded-stack")
    settings = Settings(data_dir=tmp / "data")
    yield from _make_stack(settings, tmp, tiny_model_dir, {})
