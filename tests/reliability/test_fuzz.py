"""Schemathesis over the live OpenAPI schema against a real uvicorn (Postgres ledger, Redis broker).

Every operation gets positive (schema-valid) and negative (schema-violating) generated requests with a valid
API key; real ids of the tenant's own model, data set and job are mixed into the path parameters so the
handlers run past their 404s. Whatever is sent: no 5xx, and every 4xx is application/problem+json.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
import requests

from app.core.config import Settings
from tests.processes import api_args, free_port, running, scratch_database, service_env, wait_http
from tests.reliability.figures import record, size

CASES = size(2000, 8000)  # a target: hypothesis stops early on operations with few distinct inputs
PROBLEM = "application/problem+json"


@pytest.fixture(scope="module")
def live_api(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str) -> Iterator[dict[str, Any]]:
    from app.auth import service as auth
    from app.core.db import migrate, open_session

    tmp = tmp_path_factory.mktemp("fuzz")
    database = contextlib.ExitStack()  # drops the scratch database at the end
    database_url = database.enter_context(scratch_database(postgres_url, "grin_f"))
    queue = f"gpu-fuzz-{uuid.uuid4().hex[:8]}"  # nobody consumes it: no worker runs fuzzed jobs
    model_root = tmp / "models"
    settings = Settings(data_dir=tmp / "data", database_url=database_url,
                        broker_url=redis_url, model_roots=[model_root], gpu_queue=queue)
    migrate(settings)
    from tests.reliability.conftest import _signing_key

    _signing_key(settings)  # outside embedded mode the service needs one (GET /v1/signing-key)
    model = model_root / "tiny"
    model.mkdir(parents=True)
    (model / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}))
    (model / "model.safetensors").write_bytes(b"\x00" * 64)
    with open_session(settings) as session:
        tenant = auth.create_tenant(session, "fuzz")
        key = auth.issue_key(session, tenant, "fuzz").secret
        session.commit()
    port = free_port()
    env = service_env({"GRIN_DATA_DIR": str(settings.data_dir), "GRIN_DATABASE_URL": settings.database_url,
                       "GRIN_BROKER_URL": redis_url, "GRIN_MODEL_ROOTS": str(model_root), "GRIN_GPU_QUEUE": queue,
                       "GRIN_MAX_JOBS_IN_FLIGHT_PER_TENANT": "1000000"})
    try:
        with running(api_args(port), env, tmp / "api.log"):
            base = f"http://127.0.0.1:{port}"
            wait_http(f"{base}/readyz", timeout=90)
            headers = {"Authorization": f"Bearer {key}"}
            with httpx.Client(base_url=base, headers=headers, timeout=30) as c:
                model_id = c.post("/v1/models", json={"name": "tiny", "path": str(model)}).json()["id"]
                dataset_id = c.post("/v1/datasets?name=r&kind=qa", content=b'{"question":"q","answer":"a"}\n',
                                    headers={"Content-Type": "application/jsonl"}).json()["id"]
                job_id = c.post("/v1/unlearn", json={"model_id": model_id, "kind": "qa",
                                                     "forget": [{"question": "q", "answer": "a"}]}).json()["id"]
            yield {"url": base, "headers": headers, "log": tmp / "api.log",
                   "ids": {"model_id": model_id, "dataset_id": dataset_id, "job_id": job_id}}
    finally:
        client = redis.Redis.from_url(redis_url)
        client.delete(queue)
        client.close()
        database.close()


def _media_type(headers: Any) -> str:
    """schemathesis' Response keeps each header as a list of values."""
    value = next((v for k, v in dict(headers).items() if k.lower() == "content-type"), "")
    if isinstance(value, list):
        value = value[0] if value else ""
    return str(value).split(";")[0].strip()


@pytest.mark.slow
def test_generated_requests_never_get_a_5xx_and_errors_are_problem_json(live_api: dict[str, Any]) -> None:
    import schemathesis
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    @schemathesis.serializer("application/jsonl", "application/x-ndjson")
    def jsonl(ctx: Any, value: Any) -> bytes:  # a generated value as JSON Lines (bytes as they are)
        if isinstance(value, bytes):
            return value
        rows = value if isinstance(value, list) else [value]
        return b"".join(json.dumps(row, default=str).encode() + b"\n" for row in rows)

    schema = schemathesis.openapi.from_url(f"{live_api['url']}/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    per_operation = -(-CASES // (2 * len(operations)))  # ceil: positive + negative for each
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    tried = sent = unsendable = 0
    unsatisfiable: list[str] = []
    real_ids = live_api["ids"]

    with requests.Session() as session:
        for operation in operations:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):

                @settings(max_examples=per_operation, deadline=None, database=None, derandomize=True,
                          phases=[Phase.explicit, Phase.generate],
                          suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def fuzz(case: Any) -> None:
                    nonlocal tried, sent, unsendable
                    tried += 1
                    if case.path_parameters and tried % 3 == 0:  # a third with real ids of the tenant's own
                        for name in case.path_parameters:
                            if name in real_ids:
                                case.path_parameters[name] = real_ids[name]
                    try:
                        response = case.call(base_url=live_api["url"], session=session,
                                             headers=live_api["headers"], timeout=30)
                    except (ValueError, UnicodeError, requests.exceptions.InvalidHeader,
                            requests.exceptions.InvalidURL):
                        unsendable += 1  # the client library refuses to put it on the wire
                        return
                    except requests.RequestException as exc:
                        failures.append(f"{case.method} {case.formatted_path}: {type(exc).__name__}: {exc}")
                        return
                    sent += 1
                    statuses[response.status_code] += 1
                    media = _media_type(response.headers)
                    if response.status_code >= 500 or (response.status_code >= 400 and media != PROBLEM):
                        failures.append(f"{case.method} {case.formatted_path} -> {response.status_code} {media}: "
                                        f"{response.text[:200]}")

                try:
                    fuzz()
                except Unsatisfiable:
                    unsatisfiable.append(f"{operation.label} {mode.value}")  # nothing to violate (no parameters)
    record("schemathesis", no_negative_cases=unsatisfiable, cases=tried, sent=sent, unsendable=unsendable,
           operations=len(operations), server_errors=sum(n for s, n in statuses.items() if s >= 500),
           non_problem_errors=len(failures), statuses=dict(statuses))
    assert not failures, "\n".join(failures[:20]) + "\n" + live_api["log"].read_text()[-3000:]
    assert sent >= 1000, (tried, sent, unsendable)
