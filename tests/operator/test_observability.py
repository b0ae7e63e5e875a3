"""X-Request-ID, JSON logs that never hold keys or forget data, and /metrics, on the real stack."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from app.core.config import Settings
from app.observability.metrics import queue_depths
from tests.operator.conftest import FAST_METHOD, OperatorStack


def _log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return lines


def test_request_ids_and_logs_without_keys_or_forget_data(stack: OperatorStack) -> None:
    marker = f"Mx{uuid.uuid4().hex}"  # a forget record no log may ever contain
    secret = stack.key.split("_", 2)[2]
    prefix = stack.key.split("_", 2)[1]
    request_id = f"op-test-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {stack.key}", "X-Request-ID": request_id}
    record = {"question": f"Where does {marker} live?", "answer": f"{marker} lives at 1 Secret Street."}
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        accepted = http.post("/v1/unlearn", headers=headers, json={
            "model_id": stack.model_id, "kind": "qa", "forget": [record], "method": FAST_METHOD,
            "subject_reference": "logs-test"})
        assert accepted.status_code == 202, accepted.text
        assert accepted.headers["X-Request-ID"] == request_id
        job_id = accepted.json()["id"]
        refused = http.post("/v1/unlearn", headers=headers, json={"model_id": stack.model_id, "kind": "qa",
                                                                  "forget": [{"question": marker}]})
        assert refused.status_code == 422 and refused.headers["X-Request-ID"] == request_id
        # A wrong secret under a real prefix, and a malformed request id (replaced by a fresh one).
        wrong = http.get("/v1/tenant", headers={"Authorization": f"Bearer grin_{prefix}_{marker}",
                                                "X-Request-ID": "bad id <script>"})
        assert wrong.status_code == 401
        assert len(wrong.headers["X-Request-ID"]) == 32 and wrong.headers["X-Request-ID"] != "bad id <script>"
        http.post(f"/v1/jobs/{job_id}/cancel", headers=headers)

    deadline = time.monotonic() + 10  # the access line is written once the response has gone out
    while f'"route": "/v1/jobs/{{job_id}}/cancel", "path": "/v1/jobs/{job_id}/cancel"' not in \
            stack.api_log.read_text(errors="replace") and time.monotonic() < deadline:
        time.sleep(0.1)
    text = stack.api_log.read_text(errors="replace")
    assert secret not in text and marker not in text
    assert "Secret Street" not in text
    entries = _log_lines(stack.api_log)
    ours = [e for e in entries if e.get("request_id") == request_id and e.get("logger") == "grin.access"]
    assert {(e["method"], e["route"], e["status"]) for e in ours} == {
        ("POST", "/v1/unlearn", 202), ("POST", "/v1/unlearn", 422), ("POST", "/v1/jobs/{job_id}/cancel", 200)}
    assert all(e["key_prefix"] == prefix and e["level"] == "INFO" and e["ts"].endswith("Z") for e in ours)
    cancel = [e for e in entries if e.get("route") == "/v1/jobs/{job_id}/cancel" and e.get("job_id") == job_id]
    assert cancel, "the access line of a job route names the job"


def test_metrics(stack: OperatorStack, finished_job: dict[str, Any]) -> None:
    with httpx.Client(base_url=stack.url, timeout=30) as http:
        http.get(f"/v1/jobs/{finished_job['job'].id}", headers={"Authorization": f"Bearer {stack.key}"})
        response = http.get("/metrics")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    samples: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples.setdefault(sample.name, []).append(sample)

    def value(name: str, **labels: str) -> float:
        matches = [s.value for s in samples.get(name, []) if all(s.labels.get(k) == v for k, v in labels.items())]
        assert matches, f"no {name}{labels} in\n{response.text[:3000]}"
        return float(matches[0])

    assert value("grin_jobs", state="succeeded") >= 1
    assert value("grin_jobs", state="awaiting_approval") == 0
    assert value("grin_queue_depth", queue=stack.settings.gpu_queue) >= 0
    assert value("grin_queue_depth", queue=stack.settings.cpu_queue) >= 0
    assert value("grin_ledger_up") == 1 and value("grin_broker_up") == 1
    assert value("grin_stage_duration_samples", stage="finetune") >= 1
    assert value("grin_stage_duration_seconds", stage="finetune", quantile="0.5") > 0
    assert value("grin_http_request_duration_seconds_count", route="/v1/jobs/{job_id}", method="GET",
                 status="200") >= 1
    # The finished job was submitted to this API process: committed by its submission writer.
    assert value("grin_submissions_committed_total") >= value("grin_submission_transactions_total") >= 1


def test_queue_depth_in_embedded_mode(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    folder = settings.broker_folder / "queue"
    folder.mkdir(parents=True)
    for name in ("1_a.gpu.msg", "2_b.gpu.msg", "3_c.cpu.msg", "4_d.other.msg"):
        (folder / name).write_text("{}")
    assert queue_depths(settings) == {"gpu": 2, "cpu": 1}
