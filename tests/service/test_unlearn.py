"""POST /v1/unlearn: validation, record hashing, limits, idempotency, and the message on the real broker."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import redis
from sqlalchemy import select

from app.models import ForgetRecordHash, IdempotencyKey, Job, JobInput
from app.models.base import utcnow
from tests.service.conftest import QA, Api, assert_problem


def _leaf(record: object) -> bytes:
    canonical = json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()
    return hashlib.sha256(canonical).digest()


def test_accepted_job_is_queued_hashed_and_its_records_kept_aside(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    forget = [{"answer": "A é", "question": "Q1"}, {"question": "Q2", "answer": "A2", "source": "extra column"},
              {"question": "Q3", "answer": "A3"}]
    response = api.unlearn(headers, model["id"], forget, holdout=QA[3:], subject_reference="ticket-42",
                           legal_basis="GDPR Art. 17", metadata={"requested_by": "dpo"})
    assert response.status_code == 202, response.text
    job = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    assert job["status"] == "queued" and job["progress"] == 0.0 and job["stage"] is None
    assert job["base_version_id"] == model["current_version_id"]
    assert (job["forget_count"], job["holdout_count"]) == (3, 2)
    assert job["metadata"] == {"requested_by": "dpo"} and job["subject_reference"] == "ticket-42"
    assert job["method"]["localize"]["method"] == "grin" and job["method"]["finetune"]["objective"] == "simnpo"
    assert job["evaluation"]["criteria"]  # the engine's default verdict policy

    # RFC 6962 over the record hashes, computed independently: 3 leaves split 2 + 1.
    leaves = [hashlib.sha256(b"\x00" + _leaf(r)).digest() for r in forget]
    left = hashlib.sha256(b"\x01" + leaves[0] + leaves[1]).digest()
    assert job["forget_merkle_root"] == hashlib.sha256(b"\x01" + left + leaves[2]).hexdigest()
    with api.session() as session:
        hashes = session.scalars(select(ForgetRecordHash).where(ForgetRecordHash.job_id == uuid.UUID(job["id"]))
                                 .order_by(ForgetRecordHash.index)).all()
        assert [h.sha256 for h in hashes] == [_leaf(r).hex() for r in forget]
        inputs = session.get(JobInput, uuid.UUID(job["id"]))
        assert inputs is not None and inputs.forget == forget and inputs.holdout == QA[3:]


def test_the_message_reaches_the_real_broker(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    job = api.unlearn(headers, model["id"]).json()
    client = redis.Redis.from_url(api.settings.broker_url)
    try:
        assert client.llen(api.settings.gpu_queue) == 1
        message = json.loads(client.lindex(api.settings.gpu_queue, 0))  # type: ignore[arg-type]
    finally:
        client.close()
    assert message["headers"]["task"] == "grin.pipeline.run_job"
    args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
    assert args == [job["id"]]


def test_broker_down_still_answers_202_and_leaves_the_job_queued(make_api) -> None:  # type: ignore[no-untyped-def]
    api = make_api(broker_url="redis://127.0.0.1:1/0")
    headers = api.tenant()
    model = api.register(headers)
    response = api.unlearn(headers, model["id"])
    assert response.status_code == 202, response.text
    assert api.client.get(response.headers["location"], headers=headers).json()["status"] == "queued"


def test_method_presets_and_typed_hyperparameters(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    baseline = api.unlearn(headers, model["id"], method={"preset": "baseline",
                                                         "config": {"finetune": {"objective": "npo", "steps": 7}}})
    assert baseline.status_code == 202, baseline.text
    method = baseline.json()["method"]
    assert method["localize"]["method"] == "none" and method["noise"]["sigma"] == 0.0
    assert method["finetune"]["objective"] == "npo" and method["finetune"]["steps"] == 7

    for bad, loc in [({"config": {"finetune": {"objective": "telepathy"}}}, "body.method.config.finetune.objective"),
                     ({"config": {"finetune": {"steps": -1}}}, "body.method.config.finetune.steps"),
                     ({"config": {"noise": {"sigmaa": 1}}}, "body.method.config.noise.sigmaa"),
                     ({"preset": "magic"}, "body.method.preset")]:
        body = assert_problem(api.unlearn(headers, model["id"], method=bad), 422)
        assert body["errors"][0]["loc"] == loc, body


def test_record_errors_name_the_index_and_field(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    forget = [QA[0], QA[1], {"question": "Q"}]
    body = assert_problem(api.unlearn(headers, model["id"], forget), 422, "forget[2].answer")
    assert (body["index"], body["field"]) == (2, "answer")
    body = assert_problem(api.unlearn(headers, model["id"], QA[:1], holdout=[{"answer": ""}, QA[0]]), 422,
                          "holdout[0].question")
    assert body["errors"][0]["loc"] == "body.holdout.0.question"
    assert_problem(api.unlearn(headers, model["id"], [{"text": "a passage"}]), 422, "forget[0].question")
    assert_problem(api.unlearn(headers, model["id"], []), 422, "at least one record")
    assert_problem(api.unlearn(headers, model["id"], kind="sql"), 422)
    assert_problem(api.client.post("/v1/unlearn", content=b"{oops", headers={**headers,
                                                                            "Content-Type": "application/json"}), 422)
    assert_problem(api.client.post("/v1/unlearn", content=b"x", headers={**headers, "Content-Type": "text/plain"}),
                   415)
    assert api.client.get("/v1/jobs", headers=headers).json()["items"] == []
    harmful = api.unlearn(headers, model["id"], [{"prompt": "p", "response": "r"}], kind="harmful")
    assert harmful.status_code == 202, harmful.text


def test_multipart_with_jsonl_parts_equals_the_json_request(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    request = {"model_id": model["id"], "kind": "qa"}
    forget = b"".join(json.dumps(r).encode() + b"\n" for r in QA[:3])
    response = api.client.post("/v1/unlearn", headers={**headers, "Idempotency-Key": "same"},
                               files={"request": (None, json.dumps(request)), "forget": ("forget.jsonl", forget)})
    assert response.status_code == 202, response.text
    as_json = api.unlearn({**headers, "Idempotency-Key": "same"}, model["id"], QA[:3])
    assert as_json.headers.get("idempotent-replayed") == "true"  # the same request, however it was sent
    assert as_json.json()["id"] == response.json()["id"]

    bad = b"".join(json.dumps(r).encode() + b"\n" for r in [QA[0], {"question": "q"}])
    assert_problem(api.client.post("/v1/unlearn", headers=headers,
                                   files={"request": (None, json.dumps(request)), "forget": ("f.jsonl", bad)}),
                   422, "forget[1].answer")
    assert_problem(api.client.post("/v1/unlearn", headers=headers, files={"forget": ("f.jsonl", forget)}), 422)


def test_limits_on_records_size_and_jobs_in_flight(make_api) -> None:  # type: ignore[no-untyped-def]
    api = make_api(max_records_per_job=3, max_record_bytes=200, max_request_bytes=4000,
                   max_jobs_in_flight_per_tenant=2)
    headers = api.tenant()
    model = api.register(headers)
    assert_problem(api.unlearn(headers, model["id"], QA[:4]), 422, "GRIN_MAX_RECORDS_PER_JOB")
    body = assert_problem(api.unlearn(headers, model["id"], [QA[0], {"question": "q", "answer": "a" * 300}]),
                          422, "forget[1]", "GRIN_MAX_RECORD_BYTES")
    assert body["index"] == 1
    assert_problem(api.unlearn(headers, model["id"], QA[:1], metadata={"blob": "z" * 5000}), 413,
                   "GRIN_MAX_REQUEST_BYTES")

    assert api.unlearn(headers, model["id"]).status_code == 202
    second = api.unlearn(headers, model["id"])
    assert second.status_code == 202
    refused = assert_problem(api.unlearn(headers, model["id"]), 429, "GRIN_MAX_JOBS_IN_FLIGHT_PER_TENANT")
    assert refused["status"] == 429
    other_tenant = api.tenant()  # the limit is per tenant
    assert api.unlearn(other_tenant, api.register(other_tenant, "other")["id"]).status_code == 202
    api.client.post(f"/v1/jobs/{second.json()['id']}/cancel", headers=headers)
    assert api.unlearn(headers, model["id"]).status_code == 202  # a finished job frees its slot


def test_concurrent_submissions_never_pass_the_in_flight_limit(make_api) -> None:  # type: ignore[no-untyped-def]
    """Twelve submissions at once against a limit of three: exactly three pass, whatever the interleaving (the
    count runs under the audit chain's lock, which every submission holds to its commit)."""
    api = make_api(max_jobs_in_flight_per_tenant=3)
    headers = api.tenant()
    model = api.register(headers)
    with ThreadPoolExecutor(max_workers=12) as pool:
        responses = list(pool.map(lambda _: api.unlearn(headers, model["id"]), range(12)))
    assert sorted(r.status_code for r in responses) == [202] * 3 + [429] * 9, [r.text for r in responses]
    with api.session() as session:
        assert len(session.scalars(select(Job).where(Job.model_id == uuid.UUID(model["id"]))).all()) == 3


def test_idempotency_replays_refuses_other_bodies_and_in_flight_keys(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    keyed = {**headers, "Idempotency-Key": "req-1"}
    first = api.unlearn(keyed, model["id"])
    assert first.status_code == 202 and "idempotent-replayed" not in first.headers
    api.client.post(f"/v1/jobs/{first.json()['id']}/cancel", headers=headers)

    replay = api.unlearn(keyed, model["id"])
    assert replay.status_code == 202 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()  # the first response, not the job's state now
    assert replay.headers["location"] == first.headers["location"]
    with api.session() as session:
        assert len(session.scalars(select(Job)).all()) == 1

    assert_problem(api.unlearn(keyed, model["id"], QA[2:4]), 422, "different request")

    with api.session() as session:
        tenant_id = session.scalars(select(Job.tenant_id)).one()
        session.add(IdempotencyKey(tenant_id=tenant_id, key="req-2", request_sha256=first.json()["request_sha256"],
                                   status="in_flight"))
        session.commit()
    assert_problem(api.unlearn({**headers, "Idempotency-Key": "req-2"}, model["id"]), 409, "still being processed")
    with api.session() as session:  # a request that died between its two transactions: its key is taken over
        abandoned = session.scalars(select(IdempotencyKey).where(IdempotencyKey.key == "req-2")).one()
        abandoned.created_at = utcnow() - timedelta(minutes=11)
        session.commit()
    assert api.unlearn({**headers, "Idempotency-Key": "req-2"}, model["id"]).status_code == 202
    assert_problem(api.unlearn({**headers, "Idempotency-Key": "k" * 201}, model["id"]), 422)

    # A refused request does not pin its key: fixed and resent with the same key, it goes through.
    missing = api.unlearn({**headers, "Idempotency-Key": "req-3"}, str(uuid.uuid4()))
    assert_problem(missing, 404)
    assert api.unlearn({**headers, "Idempotency-Key": "req-3"}, model["id"], QA[1:2]).status_code == 202


def test_unknown_model_version_and_dataset_are_404_and_kind_must_match(api: Api) -> None:
    headers = api.tenant()
    model = api.register(headers)
    assert_problem(api.unlearn(headers, str(uuid.uuid4())), 404)
    assert_problem(api.unlearn(headers, model["id"], base_version_id=str(uuid.uuid4())), 404)
    assert_problem(api.unlearn(headers, model["id"], retain_dataset_id=str(uuid.uuid4())), 404)
    text = api.client.post("/v1/datasets?name=t&kind=text", content=b'{"text": "x"}\n', headers=headers).json()
    assert_problem(api.unlearn(headers, model["id"], retain_dataset_id=text["id"]), 422, "text records")
    ok = api.unlearn(headers, model["id"], base_version_id=model["current_version_id"],
                     retain_dataset_id=api.client.post("/v1/datasets?name=r&kind=qa", content=json.dumps(QA[0]),
                                                       headers=headers).json()["id"])
    assert ok.status_code == 202, ok.text
