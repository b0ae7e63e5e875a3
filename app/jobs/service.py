"""Unlearning requests: validate and hash the records, enforce the limits, honour idempotency keys, write the
job with its raw inputs in one transaction; then cancel, and build the report."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.core.artifacts import store_from_settings
from app.core.config import Settings
from app.core.db import api_sessionmaker_for
from app.core.hashing import canonical_json, merkle_root, sha256_hex
from app.core.problems import ProblemError
from app.datasets import repository as datasets
from app.jobs import lifecycle, repository, submissions
from app.jobs.queue import enqueue_job
from app.jobs.schemas import (
    PROBE_KINDS,
    EvaluationSummary,
    ForgetSummary,
    JobEventOut,
    JobOut,
    JobReport,
    MaskSummary,
    SignedReport,
    UnlearnRequest,
)
from app.jobs.sections import kind_section
from app.jobs.state import STATUS_EVENT, IllegalTransition, transition
from app.models import ForgetRecordHash, IdempotencyKey, Job, JobEvent, JobInput, ModelVersion, RegisteredModel, Tenant
from app.models.base import utcnow
from app.registry import repository as registry
from app.registry.schemas import ModelVersionOut
from grin_engine.records import parse_row

# A key left in flight this long belongs to a request that died between its two transactions; it is taken over.
IDEMPOTENCY_ABANDONED_AFTER = timedelta(minutes=10)
MAX_REPORTED_ERRORS = 20


def _unprocessable(detail: str, errors: list[dict[str, Any]], **extra: Any) -> ProblemError:
    return ProblemError(422, "Unprocessable Content", detail, errors=errors, **extra)


@dataclass
class CheckedRecords:
    rows: list[Any]
    hashes: list[str] = field(default_factory=list)


def check_records(rows: list[Any], kind: str, part: str, settings: Settings) -> CheckedRecords:
    """Validate each record with the engine's own types and hash it; 422 names the record index and field."""
    if len(rows) > settings.max_records_per_job:
        raise _unprocessable(f"{part}: {len(rows)} records, at most {settings.max_records_per_job} per job "
                             "(GRIN_MAX_RECORDS_PER_JOB)",
                             [{"loc": f"body.{part}", "msg": "too many records", "type": "too_long"}])
    errors: list[dict[str, Any]] = []
    checked = CheckedRecords(rows=rows)
    parsed = 0
    for index, row in enumerate(rows):
        encoded = canonical_json(row)
        if len(encoded) > settings.max_record_bytes:
            errors.append({"loc": f"body.{part}.{index}", "index": index, "field": None, "type": "too_long",
                           "msg": f"the record is {len(encoded)} bytes, at most {settings.max_record_bytes} "
                                  "(GRIN_MAX_RECORD_BYTES)"})
            continue
        try:
            parsed += len(parse_row(row, kind))  # type: ignore[arg-type]
        except ValidationError as exc:
            for error in exc.errors():
                name = ".".join(str(piece) for piece in error["loc"])
                errors.append({"loc": f"body.{part}.{index}.{name}", "index": index, "field": name,
                               "msg": f"{error['msg']} (a {kind} record)", "type": error["type"]})
            continue
        except (KeyError, TypeError, ValueError) as exc:
            errors.append({"loc": f"body.{part}.{index}", "index": index, "field": None,
                           "msg": f"{exc} (a {kind} record)", "type": "value_error"})
            continue
        checked.hashes.append(sha256_hex(encoded))
    if errors:
        first = errors[0]
        where = f"{part}[{first['index']}]" + (f".{first['field']}" if first["field"] else "")
        raise _unprocessable(f"{where}: {first['msg']}", errors[:MAX_REPORTED_ERRORS], index=first["index"],
                             field=first["field"])
    if part == "forget" and rows and not parsed:  # PKU rows whose responses are all safe hold nothing to forget
        raise _unprocessable("forget: nothing to forget (every PKU-SafeRLHF row has only safe responses)",
                             [{"loc": f"body.{part}", "msg": "no unsafe response", "type": "value_error"}])
    return checked


def check_request(request: UnlearnRequest, settings: Settings) -> tuple[CheckedRecords, CheckedRecords | None]:
    """The forget and holdout records checked and hashed, and the evaluation policy checked (one thread hop)."""
    forget = check_records(request.forget, request.kind, "forget", settings)
    holdout = (check_records(request.holdout, request.kind, "holdout", settings)
               if request.holdout is not None else None)
    check_evaluation(request, settings)
    return forget, holdout


def check_evaluation(request: UnlearnRequest, settings: Settings) -> None:
    """Validate the probe sets (each with its own record kind; 422 names the set and the record) and the judge."""
    probes = request.evaluation.probes
    for name, kind in PROBE_KINDS.items():
        rows = getattr(probes, name)
        if rows is not None:
            check_records(rows, kind, f"evaluation.probes.{name}", settings)
    judge = request.evaluation.judge
    if judge is not None:
        if judge.kind != "rules":
            raise _unprocessable("evaluation.judge: only rules judges can be requested through the API",
                                 [{"loc": "body.evaluation.judge.kind", "msg": "classifier judges are configured on "
                                   "the worker", "type": "value_error"}])
        import re

        for i, pattern in enumerate(judge.patterns):
            try:
                re.compile(pattern)
            except re.error as exc:
                raise _unprocessable(f"evaluation.judge.patterns[{i}]: invalid regular expression ({exc})",
                                     [{"loc": f"body.evaluation.judge.patterns.{i}", "msg": str(exc),
                                       "type": "value_error"}]) from None
        if not judge.patterns:
            raise _unprocessable("evaluation.judge.patterns: at least one pattern is required",
                                 [{"loc": "body.evaluation.judge.patterns", "msg": "empty", "type": "too_short"}])


def request_digest(request: UnlearnRequest) -> str:
    """Equal for requests that mean the same (JSON or multipart, key order, spacing): what idempotency compares."""
    return sha256_hex(canonical_json(request.model_dump(mode="json")))


@dataclass(frozen=True)
class Replay:
    status_code: int
    body: dict[str, Any]
    location: str


def claim_idempotency_key(session: Session, tenant: Tenant, key: str, digest: str) -> Replay | None:
    """Claim `key` for this request (committed at once, so a concurrent twin sees it in flight), or return the
    first response to replay. 422 when the key was used for another request, 409 while it is in flight."""
    for _ in range(2):
        existing = repository.idempotency_key(session, tenant.id, key)
        if existing is None:
            session.add(IdempotencyKey(tenant_id=tenant.id, key=key, request_sha256=digest, status="in_flight"))
            try:
                session.commit()
                return None
            except IntegrityError:
                session.rollback()  # a concurrent twin claimed it first: look again
                continue
        if existing.request_sha256 != digest:
            raise ProblemError(422, "Unprocessable Content",
                               "this Idempotency-Key was used for a different request",
                               errors=[{"loc": "header.Idempotency-Key", "msg": "reused with another body",
                                        "type": "idempotency_mismatch"}])
        if existing.status == "done" and existing.response is not None:
            return Replay(status_code=existing.response["status_code"], body=existing.response["body"],
                          location=existing.response["location"])
        if utcnow() - existing.created_at < IDEMPOTENCY_ABANDONED_AFTER:
            raise ProblemError(409, "Conflict", "a request with this Idempotency-Key is still being processed; "
                                                "retry shortly", headers={"Retry-After": "1"})
        session.delete(existing)
        session.commit()
    raise ProblemError(409, "Conflict", "this Idempotency-Key is contended; retry", headers={"Retry-After": "1"})


def release_idempotency_key(session: Session, tenant: Tenant, key: str) -> None:
    """A request that failed must not pin its key: the client may retry it with the same key."""
    session.rollback()
    existing = repository.idempotency_key(session, tenant.id, key)
    if existing is not None and existing.status == "in_flight":
        session.delete(existing)
        session.commit()


def _base_version(session: Session, request: UnlearnRequest, current_version_id: uuid.UUID | None) -> ModelVersion:
    version_id = request.base_version_id or current_version_id
    version = registry.version_of_model(session, request.model_id, version_id) if version_id else None
    if version is None:
        raise ProblemError(404, "Not Found", f"no version {request.base_version_id} of model {request.model_id}")
    if version.weights_deleted_at is not None:
        raise ProblemError(409, "Conflict", f"the weights of version {version.number} were deleted")
    return version


def create_job(session: Session, settings: Settings, tenant: Tenant, request: UnlearnRequest,
               forget: CheckedRecords, holdout: CheckedRecords | None, digest: str,
               idempotency_key: str | None) -> Job:
    """Check the model, base version and retain set (404/409/422), then commit the job, its raw inputs, its
    record hashes, its first event and its audit entry through the process's submission writer (group commit,
    app/jobs/submissions.py), which also applies the in-flight limit (429). The committed job."""
    model = registry.model_of_tenant(session, tenant.id, request.model_id)
    if model is None:
        raise ProblemError(404, "Not Found", f"no model {request.model_id}")
    base = _base_version(session, request, model.current_version_id)
    if request.retain_dataset_id is not None:
        dataset = datasets.dataset_of_tenant(session, tenant.id, request.retain_dataset_id)
        if dataset is None:
            raise ProblemError(404, "Not Found", f"no dataset {request.retain_dataset_id}")
        if dataset.kind != request.kind:
            raise _unprocessable(f"retain_dataset_id: the data set holds {dataset.kind} records, the job is "
                                 f"{request.kind}", [{"loc": "body.retain_dataset_id", "msg": "kind mismatch",
                                                      "type": "value_error"}])
    job = Job(
        id=uuid.uuid4(), tenant_id=tenant.id, model_id=model.id, base_version_id=base.id,
        retain_dataset_id=request.retain_dataset_id, kind=request.kind,
        method=request.method.resolve().model_dump(mode="json"), evaluation=request.evaluation.resolve(request.kind),
        subject_reference=request.subject_reference, legal_basis=request.legal_basis,
        request_metadata=request.metadata, status="queued", progress=0.0, attempts=0,
        max_attempts=settings.max_attempts, cancel_requested=False, forget_count=len(forget.rows),
        forget_merkle_root=merkle_root(forget.hashes), holdout_count=len(holdout.rows) if holdout else 0,
        request_sha256=digest, base_pinned=request.base_version_id is not None,
        require_approval=tenant.require_approval if request.require_approval is None else request.require_approval,
    )
    prepared = submissions.PreparedJob(
        job=job,
        job_input=JobInput(job_id=job.id, forget=forget.rows, holdout=holdout.rows if holdout else None),
        record_hashes=[ForgetRecordHash(job_id=job.id, index=i, sha256=h) for i, h in enumerate(forget.hashes)],
        first_event=JobEvent(job_id=job.id, type=STATUS_EVENT, stage=None,
                             data={"from": None, "to": "queued", "progress": 0.0, "preset": request.method.preset}),
        audit_data={"model_id": str(model.id), "base_version_id": str(base.id), "base_pinned": job.base_pinned,
                    "kind": job.kind, "forget_count": job.forget_count, "forget_merkle_root": job.forget_merkle_root,
                    "holdout_count": job.holdout_count, "request_sha256": digest,
                    "require_approval": job.require_approval},
        in_flight_limit=settings.max_jobs_in_flight_per_tenant, idempotency_key=idempotency_key)
    # End the read transaction first: the request's connection goes back to the pool while the job is written on
    # the writer's (with the pool sized one per admitted request, holding both would open a connection per batch).
    session.rollback()
    return submission_writer(settings).write(prepared)


def submission_writer(settings: Settings) -> submissions.SubmissionWriter:
    return submissions.writer_for(api_sessionmaker_for(settings.database_url, read_only=False,
                                                       pool_size=settings.api_max_concurrent_requests))


def get_job(session: Session, tenant: Tenant, job_id: uuid.UUID) -> Job:
    job = repository.job_of_tenant(session, tenant.id, job_id)
    if job is None:
        raise ProblemError(404, "Not Found", f"no job {job_id}")
    return job


def cancel_job(session: Session, job: Job) -> Job:
    """queued: cancelled at once (no worker has it); running: cancelling, the worker stops at its next check."""
    try:
        if job.status == "queued":
            job.cancel_requested = True
            transition(session, job, "cancelled", data={"reason": "cancelled by the client"})
        elif job.status == "running":
            transition(session, job, "cancelling", data={"reason": "cancelled by the client"})
        elif job.status != "cancelling":
            raise IllegalTransition(job.id, job.status, "cancelled")
    except IllegalTransition as exc:
        session.rollback()
        raise ProblemError(409, "Conflict", f"the job is {exc.current}; it can no longer be cancelled") from exc
    session.commit()
    return job


def _decider(key_prefix: str | None) -> str:
    return key_prefix or "unknown key"


def approve_job(session: Session, settings: Settings, job: Job, key_prefix: str | None) -> Job:
    """awaiting_approval -> succeeded: the candidate becomes the model's current version, in one transaction."""
    from app.compliance.settings import get_compliance_settings

    store = store_from_settings(settings)
    model = session.scalars(select(RegisteredModel).where(RegisteredModel.id == job.model_id)
                            .with_for_update(key_share=True)).one()
    session.refresh(job, with_for_update={"key_share": True})
    if job.status != "awaiting_approval" or job.candidate_key is None:
        session.rollback()
        raise ProblemError(409, "Conflict", f"the job is {job.status}; only a job awaiting approval can be approved")
    manifest = json.loads(store.read_bytes(job.candidate_key))
    by = _decider(key_prefix)
    promotion = lifecycle.promote(session, store, job, model, manifest_key=job.candidate_key,
                                  files=dict(manifest["files"]), total_bytes=sum(manifest["sizes"].values()),
                                  delete_superseded=get_compliance_settings().delete_superseded_weights,
                                  by=f"approved by {by}")
    job.reviewed_by = by
    version = promotion.version
    now = utcnow()

    def change(report: dict[str, Any]) -> None:
        report["job"].update(status="succeeded", finished_at=now.isoformat())
        report["model"]["after"].update(version_id=str(version.id), number=version.number)
        report["retention"].extend(r.model_dump(mode="json") for r in promotion.retention)
        report["retention"].append({"action": "approved", "target": f"model version {version.number}",
                                    "at": now.isoformat(), "detail": f"promoted to current by API key {by}"})

    lifecycle.reissue(session, store, job, change)
    transition(session, job, "succeeded", now=now,
               data={"approved_by": by, "version": version.number, "result_version_id": str(version.id)})
    session.commit()
    lifecycle.delete_artifacts(session, store, promotion.delete_after_commit)
    enqueue_next_waiting(session, settings, job.model_id)
    return job


def reject_job(session: Session, settings: Settings, job: Job, key_prefix: str | None, reason: str | None) -> Job:
    """awaiting_approval -> failed: the candidate checkpoint is discarded (its files deleted unless shared)."""
    store = store_from_settings(settings)
    session.refresh(job, with_for_update={"key_share": True})
    if job.status != "awaiting_approval":
        session.rollback()
        raise ProblemError(409, "Conflict", f"the job is {job.status}; only a job awaiting approval can be rejected")
    by = _decider(key_prefix)
    error = f"rejected by {by}: {reason or 'no reason given'}"
    job.reviewed_by = by
    keys = lifecycle.discard_candidate(session, store, job)
    now = utcnow()

    def change(report: dict[str, Any]) -> None:
        report["job"].update(status="failed", finished_at=now.isoformat())
        report["retention"].append({"action": "weights_deleted", "target": "the job's unpromoted checkpoint",
                                    "at": now.isoformat(), "detail": f"rejected by API key {by}; "
                                    f"{len(keys)} objects deleted (files shared with other versions are kept)"})

    lifecycle.reissue(session, store, job, change)
    transition(session, job, "failed", error=error, now=now, data={"rejected_by": by})
    session.commit()
    lifecycle.delete_artifacts(session, store, keys)
    enqueue_next_waiting(session, settings, job.model_id)
    return job


def enqueue_next_waiting(session: Session, settings: Settings, model_id: uuid.UUID) -> None:
    """The model is free: send its oldest waiting job now rather than at the next sweep."""
    from worker.leases import next_waiting

    waiting = next_waiting(session, model_id)
    session.rollback()
    if waiting is not None:
        enqueue_job(settings, waiting)


def build_report(session: Session, job: Job) -> JobReport:
    model = registry.model_of_tenant(session, job.tenant_id, job.model_id)
    base = session.get(ModelVersion, job.base_version_id)
    assert model is not None and base is not None  # foreign keys guarantee both
    result = session.get(ModelVersion, job.result_version_id) if job.result_version_id else None
    mask = repository.mask_of(session, job.id)
    evaluations = repository.evaluation_results_of(session, job.id)
    after = evaluations.get("after")
    history = repository.events_of(session, job.id, after_id=0, limit=None, types=[STATUS_EVENT])
    return JobReport(
        generated_at=utcnow(),
        job=JobOut.model_validate(job),
        model_name=model.name,
        base_version=ModelVersionOut.model_validate(base),
        result_version=ModelVersionOut.model_validate(result) if result else None,
        forget=ForgetSummary(count=job.forget_count, merkle_root=job.forget_merkle_root,
                             record_sha256=repository.record_hashes_of(session, job.id)),
        mask=MaskSummary(sha256=mask.sha256, summary=mask.summary) if mask else None,
        evaluation=EvaluationSummary(
            before=evaluations["before"].report if "before" in evaluations else None,
            after=after.report if after else None,
            verdict=after.verdict if after else None,
        ),
        section=kind_section(job.kind, evaluations["before"].report if "before" in evaluations else None,
                             after.report if after else None),
        history=[JobEventOut.model_validate(e) for e in history],
        signed=SignedReport(
            report_sha256=job.report_key, html_sha256=job.report_html_key, envelope_sha256=job.report_envelope_key,
            links={"json": f"/v1/jobs/{job.id}/report.json", "html": f"/v1/jobs/{job.id}/report.html",
                   "envelope": f"/v1/jobs/{job.id}/report.dsse.json"}) if job.report_key else None,
    )
