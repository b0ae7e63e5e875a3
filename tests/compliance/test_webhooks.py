"""Webhooks: Standard Webhooks signatures, the tenant-scoped API, and real deliveries with retries through a
real Celery worker on real Redis to a real HTTP receiver on loopback."""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker

from app.auth import service as auth
from app.compliance import webhooks
from app.compliance.endpoints import webhooks_router
from app.compliance.settings import ComplianceSettings, get_compliance_settings
from app.core.config import Settings, get_settings
from app.core.db import alembic_config, make_engine
from app.core.problems import install_problem_handlers
from app.models import WebhookDelivery
from tests.processes import running, service_env, worker_args
from worker.celery_app import create_celery


def _independent_signature(secret: str, msg_id: str, timestamp: str, body: bytes) -> str:
    key = base64.b64decode(secret[len("whsec_"):])
    mac = hmac.new(key, msg_id.encode() + b"." + timestamp.encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def test_signature_matches_the_standard_webhooks_example() -> None:
    # The example of the Standard Webhooks specification, and the same value computed here independently.
    secret, msg_id, timestamp, body = ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                       1614265330, b'{"test": 2432232314}')
    expected = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    assert _independent_signature(secret, msg_id, str(timestamp), body) == expected
    assert webhooks.sign(secret, msg_id, timestamp, body) == expected
    headers = {"webhook-id": msg_id, "webhook-timestamp": str(timestamp), "webhook-signature": f"v1,bad {expected}"}
    assert webhooks.verify_signature(secret, headers, body, now=timestamp + 10)
    assert not webhooks.verify_signature(secret, headers, body + b" ", now=timestamp + 10)
    assert not webhooks.verify_signature(secret, headers, body, now=timestamp + 3600)  # replayed too late

    fresh = webhooks.new_secret()
    assert fresh.startswith("whsec_") and len(base64.b64decode(fresh[6:])) == 32


@pytest.mark.parametrize("url", ["http://127.0.0.1:9/x", "http://169.254.169.254/latest/meta-data",
                                 "http://[::1]/x", "http://10.1.2.3/", "ftp://example.com/x",
                                 "http://user:pw@example.com/", "not a url"])
def test_refused_targets(url: str) -> None:
    with pytest.raises(webhooks.WebhookUrlError):
        webhooks.check_url(url, allow_private=False)


@pytest.fixture
def api(ledger_url: str, make_session: sessionmaker[Session], tmp_path: Path) -> Iterator[tuple[TestClient, dict]]:
    settings = Settings(data_dir=tmp_path, database_url=ledger_url)
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(webhooks_router)
    app.dependency_overrides[get_settings] = lambda: settings
    app.dependency_overrides[get_compliance_settings] = lambda: ComplianceSettings(webhook_allow_private_targets=False)
    keys = {}
    with make_session() as session:
        for name in ("acme", "globex"):
            tenant = auth.create_tenant(session, name)
            keys[name] = {"Authorization": f"Bearer {auth.issue_key(session, tenant, 'k').secret}"}
        session.commit()
    yield TestClient(app), keys


def test_webhook_api_is_tenant_scoped_and_shows_the_secret_once(api: tuple[TestClient, dict]) -> None:
    client, keys = api
    created = client.post("/v1/webhooks", json={"url": "https://93.184.215.14/hooks",
                                                "events": ["unlearning_job.succeeded"]}, headers=keys["acme"])
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["unlearning_job.succeeded"]
    assert created.headers["location"] == f"/v1/webhooks/{body['id']}"
    listed = client.get("/v1/webhooks", headers=keys["acme"]).json()
    assert [w["id"] for w in listed] == [body["id"]] and "secret" not in listed[0]
    assert "secret" not in client.get(f"/v1/webhooks/{body['id']}", headers=keys["acme"]).json()

    assert client.get("/v1/webhooks", headers=keys["globex"]).json() == []
    for method in ("GET", "DELETE"):
        other = client.request(method, f"/v1/webhooks/{body['id']}", headers=keys["globex"])
        assert other.status_code == 404 and other.headers["content-type"] == "application/problem+json"
    assert client.get("/v1/webhooks").status_code == 401

    for bad in ({"url": "http://127.0.0.1:8080/"}, {"url": "http://169.254.169.254/"},
                {"url": "file:///etc/passwd"}, {"url": "https://93.184.215.14/", "events": ["job.nope"]}):
        refused = client.post("/v1/webhooks", json=bad, headers=keys["acme"])
        assert refused.status_code == 422, (bad, refused.text)

    assert client.get(f"/v1/webhooks/{body['id']}/deliveries", headers=keys["acme"]).json() == []
    assert client.delete(f"/v1/webhooks/{body['id']}", headers=keys["acme"]).status_code == 204
    assert client.get(f"/v1/webhooks/{body['id']}", headers=keys["acme"]).status_code == 404


class _Receiver:
    """A loopback HTTP receiver that checks every signature; /flaky fails its first 2 calls, /down always."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                secret = receiver.secrets[self.path]
                expected = _independent_signature(secret, self.headers["webhook-id"],
                                                  self.headers["webhook-timestamp"], body)
                with receiver.lock:
                    calls = sum(1 for r in receiver.requests if r["path"] == self.path)
                    receiver.requests.append({
                        "path": self.path, "at": time.monotonic(), "body": json.loads(body),
                        "id": self.headers["webhook-id"], "signed": self.headers["webhook-signature"] == expected,
                        "timestamp": int(self.headers["webhook-timestamp"])})
                ok = self.path == "/flaky" and calls >= 2
                self.send_response(200 if ok else (500 if self.path == "/flaky" else 503))
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def of(self, path: str) -> list[dict[str, Any]]:
        with self.lock:
            return [r for r in self.requests if r["path"] == path]


@pytest.mark.slow
def test_real_worker_delivers_signed_events_with_backoff(fresh_postgres_database: str, redis_url: str,
                                                         tmp_path: Path) -> None:
    command.upgrade(alembic_config(fresh_postgres_database), "head")
    engine = make_engine(fresh_postgres_database)
    make_session = sessionmaker(bind=engine, expire_on_commit=False)
    queue = f"cpu-{uuid.uuid4().hex[:8]}"  # our own queue: other suites' workers on this Redis never take it
    settings = Settings(data_dir=tmp_path, database_url=fresh_postgres_database, broker_url=redis_url,
                        cpu_queue=queue)
    compliance = ComplianceSettings(webhook_allow_private_targets=True)
    receiver = _Receiver()
    try:
        with make_session() as session:
            tenant = auth.create_tenant(session, "acme")
            flaky = webhooks.create_endpoint(session, tenant.id, f"{receiver.url}/flaky", settings=compliance)
            down = webhooks.create_endpoint(session, tenant.id, f"{receiver.url}/down",
                                            [webhooks.EVENT_SUCCEEDED], settings=compliance)
            webhooks.create_endpoint(session, tenant.id, f"{receiver.url}/other", [webhooks.EVENT_FAILED],
                                     settings=compliance)
            receiver.secrets.update({"/flaky": flaky.secret, "/down": down.secret})
            ids = webhooks.enqueue_event(session, tenant.id, webhooks.EVENT_SUCCEEDED,
                                         {"job_id": str(uuid.uuid4()), "status": "succeeded"})
            session.commit()
        assert len(ids) == 2  # the endpoint subscribed to .failed only gets nothing

        env = service_env({
            "GRIN_DATA_DIR": str(tmp_path), "GRIN_DATABASE_URL": fresh_postgres_database,
            "GRIN_BROKER_URL": redis_url, "GRIN_RESULT_BACKEND": redis_url, "GRIN_CPU_QUEUE": queue,
            "GRIN_WEBHOOK_BACKOFF_BASE_S": "0.5", "GRIN_WEBHOOK_MAX_ATTEMPTS": "3",
            "GRIN_WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
        })
        log = tmp_path / "worker.log"
        with running(worker_args(queues=queue, concurrency=2), env, log):
            webhooks.dispatch(ids, celery=create_celery(settings), queue=queue)
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                with make_session() as session:
                    states = {d.endpoint_id: d for d in (session.get(WebhookDelivery, i) for i in ids)}
                if all(d.status != "pending" for d in states.values()):
                    break
                time.sleep(0.3)
            else:
                raise AssertionError(f"deliveries still pending; worker log:\n{log.read_text()[-4000:]}")

        ok, failed = states[flaky.id], states[down.id]
        assert (ok.status, ok.attempts, ok.last_response_code, ok.last_error) == ("succeeded", 3, 200, None)
        assert (failed.status, failed.attempts, failed.last_response_code) == ("failed", 3, 503)
        assert failed.last_error == "HTTP 503"

        calls = receiver.of("/flaky")
        assert len(calls) == 3 and len(receiver.of("/down")) == 3 and receiver.of("/other") == []
        assert all(c["signed"] for c in receiver.requests)  # every request verified with the endpoint's secret
        assert {c["id"] for c in calls} == {ok.webhook_id}  # one webhook-id across retries (dedup key)
        assert calls[0]["body"]["type"] == "unlearning_job.succeeded" and calls[0]["body"]["data"]["status"]
        gaps = [b["at"] - a["at"] for a, b in itertools.pairwise(calls)]
        assert gaps[0] >= 0.45 and gaps[1] >= 0.95, gaps  # 0.5 s then 1 s: exponential backoff
    finally:
        receiver.server.shutdown()
        engine.dispose()


def test_dispatch_after_commit_sends_only_committed_deliveries(make_session: sessionmaker[Session]) -> None:
    class FakeCelery:
        def __init__(self) -> None:
            self.sent: list[tuple[str, list[str], str]] = []

        def send_task(self, name: str, args: list[str], queue: str) -> None:
            self.sent.append((name, args, queue))

    celery = FakeCelery()
    settings = ComplianceSettings(webhook_allow_private_targets=True)
    with make_session() as session:
        tenant = auth.create_tenant(session, "acme")
        webhooks.create_endpoint(session, tenant.id, "http://127.0.0.1:9/hook", settings=settings)
        session.commit()
        ids = webhooks.enqueue_event(session, tenant.id, webhooks.EVENT_CANCELLED, {"job_id": "j"})
        webhooks.dispatch_after_commit(session, ids, celery, "cpu-x")
        session.rollback()  # rolled back: nothing sent, and the hook is gone
        session.commit()
        assert celery.sent == []
        ids = webhooks.enqueue_event(session, tenant.id, webhooks.EVENT_CANCELLED, {"job_id": "j"})
        webhooks.dispatch_after_commit(session, ids, celery, "cpu-x")
        assert celery.sent == []
        session.commit()
    assert celery.sent == [(webhooks.DELIVER_TASK, [str(ids[0])], "cpu-x")]


def test_the_sweep_resends_overdue_deliveries_only(make_session: sessionmaker[Session]) -> None:
    """A delivery whose task was lost (broker down at commit, worker killed holding its retry) stays pending;
    the worker's sweep re-sends it once it is a minute overdue, and leaves due-soon and finished ones alone."""
    settings = ComplianceSettings(webhook_allow_private_targets=True)
    with make_session() as session:
        tenant = auth.create_tenant(session, "acme")
        webhooks.create_endpoint(session, tenant.id, "http://127.0.0.1:9/hook", settings=settings)
        session.commit()
        lost, recent, done = (webhooks.enqueue_event(session, tenant.id, webhooks.EVENT_CANCELLED, {"job_id": j})[0]
                              for j in ("a", "b", "c"))
        session.get_one(WebhookDelivery, done).status = "succeeded"
        session.commit()
        now = session.get_one(WebhookDelivery, lost).next_attempt_at
        session.get_one(WebhookDelivery, lost).next_attempt_at = now - timedelta(seconds=61)
        session.commit()
    sent: list[list[uuid.UUID]] = []
    assert webhooks.redispatch_overdue(make_session, sent.append, now=now) == [lost]
    assert sent == [[lost]]
    assert webhooks.redispatch_overdue(make_session, sent.append, now=now - timedelta(seconds=120)) == []
    assert sent == [[lost]] and recent not in sent[0]
