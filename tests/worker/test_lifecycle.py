"""Issue 7 through a real worker on Postgres + Redis: the signed report verifies, the raw forget data leaves no
trace, the approval gate, a failed verdict, and jobs on one model composing one after the other."""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from typer.testing import CliRunner

from app.compliance import audit_log
from app.core.artifacts import store_from_settings
from app.models import AuditLogEntry, Job, ModelVersion, RegisteredModel, WebhookDelivery
from tests.worker.conftest import FORGET, HOLDOUT, Stack, postgres_stack


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, postgres_url: str, redis_url: str,
          tiny_model_dir: Path) -> Iterator[Stack]:
    yield from postgres_stack(tmp_path_factory.mktemp("lifecycle-stack"), postgres_url, redis_url, tiny_model_dir,
                              redis_db=12, extra_env={"GRIN_DELETE_SUPERSEDED_WEIGHTS": "true"})


def _current(stack: Stack) -> str:
    with stack.client() as c:
        return str(c.get(f"/v1/models/{stack.model_id}").json()["current_version_id"])


def _key_prefix(stack: Stack) -> str:
    return stack.key.split("_")[1]


def _cli(*args: str) -> Any:
    from app.cli import cli

    return CliRunner().invoke(cli, list(args))


def test_signed_report_verifies_and_no_trace_of_the_forget_data(stack: Stack, tmp_path: Path) -> None:
    marker = f"zqmarker{uuid.uuid4().hex}"
    forget = [{"question": f"{r['question']} {marker}q{i}", "answer": f"{r['answer']} {marker}a{i}"}
              for i, r in enumerate(FORGET)]
    holdout = [{**r, "answer": f"{r['answer']} {marker}h{i}"} for i, r in enumerate(HOLDOUT)]
    base = _current(stack)
    job = stack.wait(stack.submit(forget=forget, holdout=holdout), timeout=180)
    assert job["status"] == "succeeded", (job["error"], stack.logs())
    assert job["base_version_id"] == base and job["base_pinned"] is False

    with stack.client() as c:
        report = c.get(f"/v1/jobs/{job['id']}/report").json()
        assert report["signed"]["links"]["envelope"].endswith("/report.dsse.json")
        html = c.get(f"/v1/jobs/{job['id']}/report.html")
        assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
        assert "default-src 'none'" in html.headers["content-security-policy"]
        signed_json = c.get(f"/v1/jobs/{job['id']}/report.json").content
        envelope = c.get(f"/v1/jobs/{job['id']}/report.dsse.json").content
        public_key = c.get("/v1/signing-key").content
    audit = json.loads(signed_json)
    assert audit["job"]["status"] == "succeeded" and audit["verdict"]["passed"] is True
    assert audit["model"]["after"]["version_id"] == job["result_version_id"]
    assert audit["forget_data"]["record_count"] == len(forget)
    assert audit["code"]["package_version"] and audit["hardware"]["cpu_count"] >= 1
    assert set(audit["timings_s"]) >= {"localize", "noise", "finetune", "evaluate", "report"}
    actions = {a["action"] for a in audit["retention"]}
    assert "forget_records_purged" in actions and "weights_kept" in actions  # v1 is the registered directory
    statement = json.loads(base64.b64decode(json.loads(envelope)["payload"]))
    head = statement["predicate"]["audit_log_head"]

    # The export an auditor gets: report.json, the envelope, and the checkpoint under model/.
    out = tmp_path / "export"
    (out / "model").mkdir(parents=True)
    (out / "report.json").write_bytes(signed_json)
    (out / "report.dsse.json").write_bytes(envelope)
    (tmp_path / "grin.pem").write_bytes(public_key)
    with stack.ledger() as session:
        version = session.get_one(ModelVersion, uuid.UUID(job["result_version_id"]))
        store_from_settings(stack.settings).materialize_dir(version.files, out / "model")
    verify = ["verify-report", str(out / "report.dsse.json"), "--artifacts", str(out),
              "--public-key", str(tmp_path / "grin.pem")]
    result = _cli(*verify)
    assert result.exit_code == 0, result.output
    weights = out / "model" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.chmod(0o644)
    weights.write_bytes(bytes(data))
    result = _cli(*verify)
    assert result.exit_code == 1 and "model/model.safetensors" in result.output, result.output

    # The audit log: every ledger change of the job, chained, and the signed head is one of its entries.
    with stack.ledger() as session:
        events = [e.event for e in session.scalars(select(AuditLogEntry).where(
            AuditLogEntry.job_id == uuid.UUID(job["id"])).order_by(AuditLogEntry.id))]
        assert events[0] == audit_log.JOB_SUBMITTED
        assert events.count(audit_log.JOB_STAGE_DONE) == 5
        for event in (audit_log.VERSION_PROMOTED, audit_log.REPORT_ISSUED, audit_log.DATA_PURGED,
                      audit_log.JOB_FINISHED):
            assert events.count(event) == 1, events
        assert audit_log.verify_chain(session) is None
        assert session.scalar(select(AuditLogEntry.id).where(AuditLogEntry.entry_hash == head)) is not None

    # No trace of the raw records: every row of every table, every file under the data dir (artifact store,
    # work dirs), every Redis key (broker, results), the API's and the worker's logs.
    assert not stack.work_dir(job["id"]).exists()
    hits: list[str] = []
    with stack.ledger() as session:
        for table in inspect(session.get_bind()).get_table_names():
            rows = session.execute(text(f'SELECT t::text FROM "{table}" AS t')).scalars()
            hits += [f"table {table}" for row in rows if marker in row]
    for path in stack.settings.data_dir.rglob("*"):
        if path.is_file() and marker.encode() in path.read_bytes():
            hits.append(f"file {path}")
    import redis

    broker = redis.Redis.from_url(stack.settings.broker_url)
    for key in broker.scan_iter():
        kind = broker.type(key)
        values = {b"string": lambda k: [broker.get(k)], b"list": lambda k: broker.lrange(k, 0, -1),
                  b"hash": lambda k: list(broker.hgetall(k).values()), b"set": lambda k: list(broker.smembers(k)),
                  b"zset": lambda k: broker.zrange(k, 0, -1)}.get(kind, lambda k: [])(key)
        hits += [f"redis {key!r}" for v in values if v and marker.encode() in v]
    for log in [stack.tmp / "api.log", *stack.worker_logs]:
        if log.exists() and marker in log.read_text(errors="replace"):
            hits.append(f"log {log.name}")
    assert hits == []
    # Worker log lines carry the job id: the line that starts the run is logged before the job's work, so it is
    # there now. The summary line is logged after the commit that ended the job, which this test may have read
    # first (seen in CI: 0.1 s later), so it is given a few seconds to appear.
    def job_lines(fragment: str) -> bool:
        return any(job["id"] in line and '"job_id"' in line and fragment in line for log in stack.worker_logs
                   for line in log.read_text(errors="replace").splitlines())

    assert job_lines("leased by")
    deadline = time.monotonic() + 10
    while not job_lines("succeeded") and time.monotonic() < deadline:
        time.sleep(0.1)
    assert job_lines("succeeded")


def test_approval_gate_approve_and_reject(stack: Stack) -> None:
    from app.auth import service as auth
    from app.compliance import webhooks
    from app.compliance.settings import ComplianceSettings

    with stack.ledger() as session:
        tenant_id = session.scalar(select(RegisteredModel.tenant_id).where(
            RegisteredModel.id == uuid.UUID(stack.model_id)))
        webhooks.create_endpoint(session, tenant_id, "http://127.0.0.1:9/hook",
                                 settings=ComplianceSettings(webhook_allow_private_targets=True))
        other = auth.create_tenant(session, f"other-{uuid.uuid4().hex[:6]}")
        other_key = auth.issue_key(session, other, "x").secret
        session.commit()

    before = _current(stack)
    job_id = stack.submit(require_approval=True)
    job = stack.wait(job_id, ("awaiting_approval", "succeeded", "failed"), timeout=180)
    assert job["status"] == "awaiting_approval", (job["error"], stack.logs())
    assert job["result_version_id"] is None and _current(stack) == before
    with stack.ledger() as session:
        delivery = session.scalars(select(WebhookDelivery).where(
            WebhookDelivery.event_type == webhooks.EVENT_AWAITING_APPROVAL)).all()
        assert [d.payload["data"]["job_id"] for d in delivery] == [job_id]
        candidate = session.get_one(Job, uuid.UUID(job_id)).candidate_key
    assert candidate is not None
    with stack.client() as c:
        assert c.post(f"/v1/jobs/{job_id}/approve", headers={"Authorization": f"Bearer {other_key}"}
                      ).status_code == 404
        approved = c.post(f"/v1/jobs/{job_id}/approve")
        assert approved.status_code == 200, approved.text
        assert approved.json()["status"] == "succeeded"
        again = c.post(f"/v1/jobs/{job_id}/approve")
        assert again.status_code == 409 and again.headers["content-type"].startswith("application/problem+json")
        report = json.loads(c.get(f"/v1/jobs/{job_id}/report.json").content)
    job = stack.job(job_id)
    assert job["reviewed_by"] == _key_prefix(stack) and _current(stack) == job["result_version_id"]
    assert report["job"]["status"] == "succeeded"
    assert report["model"]["after"]["version_id"] == job["result_version_id"]
    # The version it superseded was made by a job (in the artifact store): its weights were deleted.
    assert any(a["action"] == "weights_deleted" for a in report["retention"])
    with stack.ledger() as session:
        superseded = session.get_one(ModelVersion, uuid.UUID(before))
        if superseded.number > 1:
            assert superseded.weights_deleted_at is not None

    rejected_id = stack.submit(require_approval=True)
    assert stack.wait(rejected_id, ("awaiting_approval", "failed"), timeout=180)["status"] == "awaiting_approval"
    with stack.ledger() as session:
        manifest = session.get_one(Job, uuid.UUID(rejected_id)).candidate_key
    store = store_from_settings(stack.settings)
    weights_key = store.read_manifest(manifest)["model.safetensors"]
    with stack.client() as c:
        rejected = c.post(f"/v1/jobs/{rejected_id}/reject", json={"reason": "utility too low"})
    assert rejected.status_code == 200, rejected.text
    body = rejected.json()
    assert body["status"] == "failed" and body["error"] == f"rejected by {_key_prefix(stack)}: utility too low"
    assert not store.exists(weights_key) and not store.exists(manifest)
    assert _current(stack) == job["result_version_id"]


def test_failed_verdict_never_promotes_but_reports(stack: Stack) -> None:
    before = _current(stack)
    impossible = {"criteria": [{"name": "forget probability gone", "keys": ["forget/probability"], "op": "<=",
                                "threshold": 0.0, "basis": "absolute"}]}
    job = stack.wait(stack.submit(evaluation=impossible), timeout=180)
    assert job["status"] == "failed", (job, stack.logs())
    assert job["error"].startswith("verdict failed: forget probability gone"), job["error"]
    assert job["result_version_id"] is None and _current(stack) == before
    with stack.client() as c:
        report = json.loads(c.get(f"/v1/jobs/{job['id']}/report.json").content)
        assert c.get(f"/v1/jobs/{job['id']}/report.dsse.json").status_code == 200
    assert report["job"]["status"] == "failed" and report["verdict"]["passed"] is False
    assert report["model"]["after"]["version_id"] is None and report["model"]["after"]["files"]
    assert any(a["action"] == "weights_deleted" for a in report["retention"])
    with stack.ledger() as session:
        assert session.scalars(select(ModelVersion).where(ModelVersion.job_id == uuid.UUID(job["id"]))).all() == []


def test_jobs_on_one_model_run_one_at_a_time_and_compose(stack: Stack) -> None:
    before = _current(stack)
    first, second = stack.submit(), stack.submit()  # both queued at once; the worker has two processes
    a = stack.wait(first, timeout=180)
    b = stack.wait(second, timeout=240)
    assert a["status"] == b["status"] == "succeeded", (a["error"], b["error"], stack.logs())
    if a["started_at"] > b["started_at"]:  # whichever the worker took first ran first
        a, b = b, a
    assert a["base_version_id"] == before
    assert b["base_version_id"] == a["result_version_id"]  # the later one unlearns from the earlier's result
    assert _current(stack) == b["result_version_id"]
    assert b["started_at"] >= a["finished_at"]


def test_pinned_base_no_longer_current_waits_for_approval(stack: Stack) -> None:
    with stack.client() as c:
        versions = c.get(f"/v1/models/{stack.model_id}/versions").json()
    v1 = next(v for v in (versions["items"] if isinstance(versions, dict) else versions) if v["number"] == 1)
    current = _current(stack)
    job = stack.wait(stack.submit(base_version_id=v1["id"]), ("awaiting_approval", "succeeded", "failed"),
                     timeout=180)
    assert job["status"] == "awaiting_approval", (job["error"], stack.logs())
    assert job["base_pinned"] is True and job["base_version_id"] == v1["id"]
    assert _current(stack) == current
    warnings = [e for e in stack.events(job["id"]) if e["type"] == "warning"]
    assert warnings and "not promoted automatically" in warnings[0]["data"]["message"]
