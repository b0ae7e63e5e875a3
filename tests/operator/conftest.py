"""One real stack for the operator tests: uvicorn + a Celery worker on a fresh Postgres database and Redis,
a tiny GPT-2-style model registered, a retain data set uploaded, and one job already run to `succeeded`.

The client, the CLI (typer's CliRunner, pointed at the stack through GRIN_URL / GRIN_API_KEY) and the
browser all talk to this stack over HTTP, exactly as an operator's scripts would.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from app.core.config import Settings
from tests.processes import api_args, free_port, running, scratch_database, service_env, wait_http, worker_args

REPO_ROOT = Path(__file__).resolve().parents[2]
TOFU = REPO_ROOT / "data" / "tofu"
REDIS_DB = 12  # a database of these tests' own; the queues are named per run on top of it


def _rows(name: str, start: int, stop: int) -> list[dict[str, str]]:
    lines = (TOFU / name).read_text().splitlines()[start:stop]
    return [{"question": r["question"], "answer": r["answer"]} for r in map(json.loads, lines)]


FORGET = _rows("forget01.json", 0, 4)
RETAIN = _rows("retain90.json", 0, 8)
HOLDOUT = _rows("forget10.json", 0, 3)
# Cheap enough that a job takes seconds on a CPU: small localization batch, 6 fine-tune steps. GradDiff, not the
# default SimNPO: the tiny model gives its forget answers ~0.3% probability, which SimNPO's few steps can nudge up
# by noise, failing the "not up" policy these service tests use.
FAST_METHOD: dict[str, Any] = {"preset": "grin", "config": {
    "device": "cpu", "localize": {"k": 0.05, "batch_size": 8}, "noise": {"sigma": 0.1},
    "finetune": {"objective": "graddiff", "steps": 6, "batch_size": 4, "lr": 1e-3, "max_length": 96}}}
POLICY: dict[str, Any] = {"criteria": [{"name": "forget probability not up", "keys": ["forget/probability"],
                                        "op": "<=", "threshold": 1.0, "basis": "before_ratio"}]}


def jsonl(records: list[Any]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


@dataclass
class OperatorStack:
    url: str
    key: str
    settings: Settings
    env: dict[str, str]
    tmp: Path
    model_root: Path
    api_log: Path
    worker_log: Path
    model_id: str = ""
    dataset_id: str = ""
    finished_job_id: str = ""
    exits: ExitStack = field(default_factory=ExitStack)

    def client(self, **kwargs: Any) -> Any:
        from grin_client import GrinClient

        return GrinClient(self.url, self.key, **kwargs)

    def cli_env(self) -> dict[str, str]:
        return {"GRIN_URL": self.url, "GRIN_API_KEY": self.key, "GRIN_CONFIG": str(self.tmp / "no-config.toml")}

    def job_kwargs(self, **overrides: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {"holdout": HOLDOUT, "retain_dataset_id": self.dataset_id, "method": FAST_METHOD,
                                  "evaluation": POLICY, "subject_reference": "operator-tests"}
        fields.update(overrides)
        return fields

    def copy_model(self, name: str) -> Path:
        """Another directory holding the tiny model, under the model root (registrations need their own)."""
        target = self.model_root / name
        shutil.copytree(self.model_root / "tiny", target)
        return target

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-5000:]}" for p in (self.api_log,
                                                                                          self.worker_log)
                         if p.exists())

    def wait_status(self, job_id: str, statuses: tuple[str, ...], timeout: float = 120) -> Any:
        deadline = time.monotonic() + timeout
        with self.client() as grin:
            while True:
                job = grin.get_job(job_id)
                if job.status in statuses:
                    return job
                if time.monotonic() > deadline or job.status in ("succeeded", "failed", "cancelled"):
                    raise AssertionError(f"job {job_id} is {job.status}, not {statuses}: {job.error}\n{self.logs()}")
                time.sleep(0.3)


@pytest.fixture(scope="session")
def operator_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import torch

    from grin_engine.build import build_tiny_model

    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("operator-model") / "model"
    texts = [t for r in FORGET + RETAIN + HOLDOUT for t in (r["question"], r["answer"])]
    build_tiny_model(out, texts, arch="gpt2", vocab_size=320, hidden=32, layers=2, heads=2, max_positions=128,
                     seed=0)
    return out


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str,
          operator_model_dir: Path) -> Iterator[OperatorStack]:
    import redis

    from app.auth import service as auth
    from app.core.db import engine_for, migrate, open_session

    tmp = tmp_path_factory.mktemp("operator-stack")
    database = contextlib.ExitStack()  # drops the scratch database at the end
    database_url = database.enter_context(scratch_database(postgres_url, "grin_o"))
    broker = redis_url.rsplit("/", 1)[0] + f"/{REDIS_DB}"
    suffix = uuid.uuid4().hex[:6]
    gpu_queue, cpu_queue = f"gpu-op-{suffix}", f"cpu-op-{suffix}"
    settings = Settings(data_dir=tmp / "data", database_url=database_url,
                        broker_url=broker, model_roots=[tmp / "models"], gpu_queue=gpu_queue, cpu_queue=cpu_queue)
    model_root = settings.model_roots[0]
    model_root.mkdir(parents=True)
    shutil.copytree(operator_model_dir, model_root / "tiny")
    env = service_env({
        "GRIN_DATA_DIR": str(settings.data_dir), "GRIN_DATABASE_URL": settings.database_url,
        "GRIN_BROKER_URL": broker, "GRIN_RESULT_BACKEND": broker, "GRIN_MODEL_ROOTS": str(model_root),
        "GRIN_GPU_QUEUE": gpu_queue, "GRIN_CPU_QUEUE": cpu_queue, "GRIN_EVENT_EVERY_STEPS": "2",
        "GRIN_CANCEL_CHECK_INTERVAL_S": "0.2", "GRIN_LEASE_SECONDS": "10", "GRIN_SWEEP_INTERVAL_S": "5",
        "GRIN_SWEEP_GRACE_S": "5", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO_ROOT),
        "GRIN_LOG_LEVEL": "INFO",
    })
    migrate(settings)
    # Reports are signed: outside embedded mode the key must exist (here at the data dir's default path).
    from app.compliance.signing import load_signing_key

    load_signing_key(settings, generate=True)
    with open_session(settings) as session:
        tenant = auth.create_tenant(session, f"operators-{suffix}")
        key = auth.issue_key(session, tenant, "operator tests").secret
        session.commit()
    port = free_port()
    stack = OperatorStack(url=f"http://127.0.0.1:{port}", key=key, settings=settings, env=env, tmp=tmp,
                          model_root=model_root, api_log=tmp / "api.log", worker_log=tmp / "worker.log")
    try:
        with stack.exits:
            stack.exits.enter_context(running(api_args(port), env, stack.api_log))
            stack.exits.enter_context(running(worker_args(queues=f"{gpu_queue},{cpu_queue}"), env,
                                              stack.worker_log))
            wait_http(f"{stack.url}/readyz", timeout=90)
            with stack.client() as grin:
                stack.model_id = str(grin.register_model("tiny", model_root / "tiny").id)
                stack.dataset_id = str(grin.upload_dataset("retain", "qa", RETAIN).id)
            yield stack
    finally:
        engine_for(settings.database_url).dispose()
        database.close()
        client = redis.Redis.from_url(broker)
        client.delete(gpu_queue, cpu_queue)
        client.close()


@pytest.fixture(scope="session")
def finished_job(stack: OperatorStack) -> Any:
    """One job run to `succeeded` through the client (submit + wait); what later tests read."""
    seen: list[Any] = []
    with stack.client() as grin:
        job = grin.submit(stack.model_id, "qa", FORGET, idempotency_key=f"finished-{uuid.uuid4().hex}",
                          **stack.job_kwargs())
        final = grin.wait(job.id, on_progress=seen.append, timeout=150)
    assert final.status == "succeeded", f"{final.status}: {final.error}\n{stack.logs()}"
    stack.finished_job_id = str(final.id)
    return {"job": final, "progress": seen}
