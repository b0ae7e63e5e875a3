"""Tenant isolation, complete: every operation of the live OpenAPI schema that names an object, with every
object type, asked by a second tenant: 404, always (tests/service/test_isolation.py has the TestClient version).

The matrix is built from the schema itself, so a new endpoint with an `{id}` in its path joins it
automatically, and fails the test if its parameter names an object type this test does not create yet.
Tenant A owns a model (two versions), a data set, a finished job (mask, reports, events), a queued job and a
webhook endpoint; tenant B has the same kinds of objects of its own, so a filter or a join that forgot the
tenant would show up in B's listings too.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest

from tests.reliability.conftest import Stack
from tests.reliability.figures import record

PROBLEM = "application/problem+json"
CLOSED_PORT = 9  # discard: nothing listens, deliveries fail at once and stay on loopback
# Operations outside the OpenAPI schema that still take an object id.
EXTRA = [("get", "/ui/api/jobs/{job_id}/plots")]
PUBLIC = {"/healthz", "/readyz", "/metrics", "/v1/signing-key"}


def _tenant(stack: Stack, name: str) -> dict[str, str]:
    from app.auth import service as auth

    with stack.ledger() as session:
        tenant = auth.create_tenant(session, f"{name}-{uuid.uuid4().hex[:6]}")
        key = auth.issue_key(session, tenant, "matrix").secret
        session.commit()
    return {"Authorization": f"Bearer {key}"}


def _objects(stack: Stack, headers: dict[str, str], *, finished: dict[str, Any] | None) -> dict[str, str]:
    with httpx.Client(base_url=stack.url, headers=headers, timeout=30) as c:
        root = stack.settings.model_roots[0]
        model = c.post("/v1/models", json={"name": f"m-{uuid.uuid4().hex[:6]}", "path": str(root / "tiny")})
        assert model.status_code == 201, model.text
        dataset = c.post("/v1/datasets", params={"name": "r", "kind": "qa"},
                         content=b'{"question": "q?", "answer": "a"}\n', headers={"Content-Type": "application/jsonl"})
        assert dataset.status_code == 201, dataset.text
        queued = c.post("/v1/unlearn", json={"model_id": model.json()["id"], "kind": "qa",
                                             "forget": [{"question": "q?", "answer": "a"}]})
        assert queued.status_code == 202, queued.text
        hook = c.post("/v1/webhooks", json={"url": f"http://127.0.0.1:{CLOSED_PORT}/grin-hook"})
        assert hook.status_code == 201, hook.text
    ids = {"model_id": model.json()["id"], "dataset_id": dataset.json()["id"], "job_id": queued.json()["id"],
           "webhook_id": hook.json()["id"], "version_id": model.json()["current_version_id"]}
    if finished is not None:  # the stack's tenant: its job ran, so mask, reports and a version 2 exist
        ids.update(job_id=finished["id"], model_id=stack.model_id, version_id=finished["result_version_id"],
                   dataset_id=stack.dataset_id, queued_job_id=queued.json()["id"])
    return ids


@pytest.mark.slow
def test_every_operation_on_every_object_is_404_across_tenants(shared_stack: Stack) -> None:
    stack = shared_stack
    alice = dict(stack.headers)
    alice_ids = _objects(stack, alice, finished=stack.finished_job)  # type: ignore[attr-defined]
    bob = _tenant(stack, "bob")
    bob_ids = _objects(stack, bob, finished=None)
    schema = httpx.get(f"{stack.url}/openapi.json", timeout=30).json()
    operations = [(m, p) for p, ops in schema["paths"].items() for m in ops if m in ("get", "post", "put", "patch",
                                                                                     "delete")] + EXTRA
    checked: list[str] = []
    with httpx.Client(base_url=stack.url, timeout=30) as c:
        for method, template in operations:
            if "{" not in template:
                continue
            names = [part[1:-1] for part in template.split("/") if part.startswith("{")]
            unknown = [n for n in names if n not in alice_ids]
            assert not unknown, f"{method.upper()} {template}: no object of type {unknown} in the matrix yet"
            for job_key in (["job_id", "queued_job_id"] if "job_id" in names else [None]):
                ids = {**alice_ids, **({"job_id": alice_ids[job_key]} if job_key else {})}
                path = template.format(**ids)
                # Bob, with every variant of the request that could reach the object.
                for accept in ("application/json", "text/event-stream"):
                    response = c.request(method, path, headers={**bob, "Accept": accept})
                    assert response.status_code == 404, (method, path, accept, response.status_code, response.text)
                    assert response.headers["content-type"] == PROBLEM
                    checked.append(f"{method.upper()} {template} [{job_key or 'object'}, {accept}]")
        # Alice herself reaches them (so the 404s above are about the tenant, not a broken route).
        for method, template in operations:
            if "{" in template and method == "get":
                path = template.format(**alice_ids)
                headers = {**alice, "Accept": "application/json"}
                assert c.request(method, path, headers=headers).status_code == 200, (method, path)

        # Objects named in bodies and filters.
        submit = {"kind": "qa", "forget": [{"question": "q?", "answer": "a"}]}
        for body in ({"model_id": alice_ids["model_id"]},
                     {"model_id": bob_ids["model_id"], "base_version_id": alice_ids["version_id"]},
                     {"model_id": bob_ids["model_id"], "retain_dataset_id": alice_ids["dataset_id"]}):
            response = c.post("/v1/unlearn", json={**submit, **body}, headers=bob)
            assert response.status_code == 404, (body, response.text)
            checked.append(f"POST /v1/unlearn {sorted(body)}")
        for path, params in (("/v1/jobs", {"model_id": alice_ids["model_id"]}), ("/v1/jobs", {}),
                             ("/v1/models", {}), ("/v1/datasets", {}), ("/v1/webhooks", {})):
            listing = c.get(path, params=params, headers=bob).json()
            items = listing["items"] if isinstance(listing, dict) else listing
            seen = {str(item["id"]) for item in items}
            assert not seen & set(alice_ids.values()), (path, params)
            checked.append(f"GET {path} {params}")
        # Nothing of Alice's changed: nobody cancelled, approved or rejected her jobs; her webhook is still there.
        for job_id in (alice_ids["job_id"], alice_ids["queued_job_id"]):
            history = c.get(f"/v1/jobs/{job_id}/events", params={"limit": 100}, headers=alice).json()["items"]
            assert not [e for e in history if e["data"].get("to") in ("cancelling", "cancelled")
                        or "approv" in json.dumps(e["data"]) or "reject" in json.dumps(e["data"])], history
        assert c.get(f"/v1/webhooks/{alice_ids['webhook_id']}", headers=alice).status_code == 200
        # The stack is shared with the load and soak tests: no webhook deliveries (to a closed port) for their jobs.
        assert c.delete(f"/v1/webhooks/{alice_ids['webhook_id']}", headers=alice).status_code == 204
        assert c.delete(f"/v1/webhooks/{bob_ids['webhook_id']}", headers=bob).status_code == 204
    record("isolation_matrix", checks=len(checked), cross_tenant_404=len(checked), leaks=0,
           operations=sorted({c.split(" [")[0] for c in checked}))
