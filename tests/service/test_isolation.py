"""A tenant never sees another tenant's objects: every id of tenant A answers 404 to tenant B."""

from __future__ import annotations

import json
import uuid

from app.core.artifacts import store_from_settings
from app.models import Mask
from tests.service.conftest import QA, Api, assert_problem


def test_every_object_of_one_tenant_is_404_for_another(api: Api) -> None:
    alice, bob = api.tenant("alice"), api.tenant("bob")
    model = api.register(alice)
    dataset = api.client.post("/v1/datasets?name=r&kind=qa", content=json.dumps(QA[0]), headers=alice).json()
    job = api.unlearn(alice, model["id"], retain_dataset_id=dataset["id"]).json()
    store = store_from_settings(api.settings)
    artifact = store.put_bytes(b"mask")
    with api.session() as session:
        session.add(Mask(job_id=uuid.UUID(job["id"]), artifact_key=artifact.key, sha256=artifact.key, summary={}))
        session.commit()

    reads = [f"/v1/models/{model['id']}", f"/v1/models/{model['id']}/versions", f"/v1/datasets/{dataset['id']}",
             f"/v1/jobs/{job['id']}", f"/v1/jobs/{job['id']}/events", f"/v1/jobs/{job['id']}/mask",
             f"/v1/jobs/{job['id']}/report"]
    for path in reads:
        assert api.client.get(path, headers=alice).status_code == 200, path
        assert_problem(api.client.get(path, headers=bob), 404)
    assert_problem(api.client.get(f"/v1/jobs/{job['id']}/events",
                                  headers={**bob, "Accept": "text/event-stream"}), 404)
    assert_problem(api.client.post(f"/v1/jobs/{job['id']}/cancel", headers=bob), 404)

    # Bob cannot start from Alice's model, version or data set either.
    bob_model = api.register(bob, "bobs")
    assert_problem(api.unlearn(bob, model["id"]), 404)
    assert_problem(api.unlearn(bob, bob_model["id"], base_version_id=model["current_version_id"]), 404)
    assert_problem(api.unlearn(bob, bob_model["id"], retain_dataset_id=dataset["id"]), 404)

    # Listings show only one's own, whatever the filter.
    assert [m["id"] for m in api.client.get("/v1/models", headers=bob).json()["items"]] == [bob_model["id"]]
    assert api.client.get("/v1/datasets", headers=bob).json()["items"] == []
    assert api.client.get("/v1/jobs", headers=bob).json()["items"] == []
    assert api.client.get("/v1/jobs", params={"model_id": model["id"]}, headers=bob).json()["items"] == []

    # Idempotency keys are per tenant: Bob reusing Alice's key is a fresh request, not her replay.
    keyed = api.unlearn({**alice, "Idempotency-Key": "shared"}, model["id"])
    assert keyed.status_code == 202
    mine = api.unlearn({**bob, "Idempotency-Key": "shared"}, bob_model["id"])
    assert mine.status_code == 202 and "idempotent-replayed" not in mine.headers

    assert api.client.get(f"/v1/jobs/{job['id']}", headers=alice).json()["status"] == "queued"  # untouched
