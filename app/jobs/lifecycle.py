"""The end of a job's life, shared by the worker (automatic promotion) and the API (approve / reject): promote a
checkpoint to the model's current version, discard a candidate, delete superseded weights, issue and re-issue
the signed audit report. Torch-free; every function writes in the caller's transaction, the caller commits and
then deletes the artifacts it was handed back (`delete_artifacts`: files cannot roll back).

Versions exist only once promoted: a checkpoint that waits for approval, or whose verdict failed, is kept as
`jobs.candidate_key` (its manifest in the artifact store), so version numbers have no gaps for discarded work.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.compliance import audit_log
from app.compliance.issue import IssuedReport, issue_report
from app.compliance.report_schema import AuditReport, RetentionAction
from app.core.artifacts import ArtifactError, ArtifactStore
from app.models import Artifact, Dataset, Job, Mask, ModelVersion, RegisteredModel
from app.models.base import utcnow

REPORT_MEDIA = {"json": "application/json", "html": "text/html; charset=utf-8",
                "dsse": "application/vnd.dsse.envelope.v1+json"}


@dataclass
class Promotion:
    version: ModelVersion
    retention: list[RetentionAction] = field(default_factory=list)
    delete_after_commit: set[str] = field(default_factory=set)


def promote(session: Session, store: ArtifactStore, job: Job, model: RegisteredModel, *, manifest_key: str,
            files: dict[str, str], total_bytes: int, delete_superseded: bool, by: str,
            now: datetime | None = None) -> Promotion:
    """A new version of `model` from the job's checkpoint, made current (caller holds the model row lock)."""
    now = now or utcnow()
    number = (session.scalar(select(func.max(ModelVersion.number)).where(ModelVersion.model_id == model.id)) or 0) + 1
    version = ModelVersion(model_id=model.id, number=number, parent_id=job.base_version_id, job_id=job.id,
                           location=manifest_key, files=files, total_bytes=total_bytes)
    session.add(version)
    session.flush()
    previous = session.get(ModelVersion, model.current_version_id) if model.current_version_id else None
    model.current_version_id = version.id
    job.result_version_id = version.id
    job.candidate_key = None
    audit_log.append(session, audit_log.VERSION_PROMOTED, tenant_id=job.tenant_id, job_id=job.id, now=now,
                     data={"model_id": str(model.id), "version_id": str(version.id), "number": number,
                           "parent_id": str(job.base_version_id), "manifest_sha256": manifest_key,
                           "previous_current_version_id": str(previous.id) if previous else None, "by": by})
    promotion = Promotion(version)
    if delete_superseded and previous is not None and previous.weights_deleted_at is None:
        if Path(previous.location).is_absolute():
            promotion.retention.append(RetentionAction(
                action="weights_kept", target=f"model version {previous.number}", at=now,
                detail="the superseded version is the registered directory outside the artifact store; the "
                       "service does not delete an operator's files: delete it by hand"))
        else:
            previous.weights_deleted_at = now
            keys = {*previous.files.values(), previous.location}
            promotion.delete_after_commit |= unreferenced(session, store, keys)
            promotion.retention.append(RetentionAction(
                action="weights_deleted", target=f"model version {previous.number} ({previous.id})", at=now,
                detail=f"superseded by version {number} (GRIN_DELETE_SUPERSEDED_WEIGHTS); "
                       f"{len(previous.files)} files, manifest {previous.location}"))
    return promotion


def unreferenced(session: Session, store: ArtifactStore, keys: Iterable[str], *,
                 ignore_candidate_of: uuid.UUID | None = None) -> set[str]:
    """Those of `keys` nothing else in the ledger points at: versions whose weights are kept, masks, data sets,
    reports, and the candidates of other jobs (call after flushing the change that drops the caller's use)."""
    wanted = set(keys)
    if not wanted:
        return set()
    used: set[str] = set()
    for location, files in session.execute(select(ModelVersion.location, ModelVersion.files)
                                           .where(ModelVersion.weights_deleted_at.is_(None))):
        used.add(location)
        used.update((files or {}).values())
    used.update(session.scalars(select(Mask.artifact_key)))
    used.update(session.scalars(select(Dataset.artifact_key)))
    for row in session.execute(select(Job.id, Job.candidate_key, Job.report_key, Job.report_html_key,
                                      Job.report_envelope_key)):
        used.update(k for k in row[2:] if k)
        if row[1] and row[0] != ignore_candidate_of:
            used.add(row[1])
            with contextlib.suppress(ArtifactError, ValueError, KeyError):
                used.update(store.read_manifest(row[1]).values())
    return wanted - used


def discard_candidate(session: Session, store: ArtifactStore, job: Job) -> set[str]:
    """Forget the job's unpromoted checkpoint; the keys to delete after the commit."""
    key = job.candidate_key
    if key is None:
        return set()
    try:
        keys = {key, *store.read_manifest(key).values()}
    except (ArtifactError, ValueError, KeyError):
        keys = {key}
    job.candidate_key = None
    session.flush()
    return unreferenced(session, store, keys, ignore_candidate_of=job.id)


def delete_artifacts(session: Session, store: ArtifactStore, keys: Iterable[str]) -> int:
    """Remove objects from the store and their `artifacts` rows (commits the rows). Returns how many went."""
    keys = sorted(set(keys))
    if not keys:
        return 0
    session.execute(delete(Artifact).where(Artifact.key.in_(keys)))
    session.commit()
    return sum(1 for key in keys if store.delete(key))


def issue_and_store(session: Session, store: ArtifactStore, job: Job, report: AuditReport,
                    checkpoint_files: dict[str, str]) -> IssuedReport:
    """Sign the report, put report.json / report.html / report.dsse.json into the store, point the job at them
    and append `report.issued` to the audit log (caller's transaction)."""
    issued = issue_report(report, checkpoint_files, audit_head=audit_log.head(session))
    stored = [store.put_bytes(issued.report_json, REPORT_MEDIA["json"]),
              store.put_bytes(issued.html.encode("utf-8"), REPORT_MEDIA["html"]),
              store.put_bytes(issued.envelope, REPORT_MEDIA["dsse"])]
    store.record(session, *stored)
    job.report_key, job.report_html_key, job.report_envelope_key = (s.key for s in stored)
    audit_log.append(session, audit_log.REPORT_ISSUED, tenant_id=job.tenant_id, job_id=job.id,
                     data={**issued.audit_data(), "status": report.job.status,
                           "verdict_passed": report.verdict.passed})
    return issued


def reissue(session: Session, store: ArtifactStore, job: Job, change: Callable[[dict[str, Any]], None]) -> None:
    """Re-issue the job's report after a decision (approve / reject): the stored report, changed by `change`
    (which edits its JSON form in place), signed again; the previous version stays in the store."""
    if job.report_key is None:
        return
    data = AuditReport.model_validate_json(store.read_bytes(job.report_key)).model_dump(mode="json")
    change(data)
    data["issued_at"] = utcnow().isoformat()
    report = AuditReport.model_validate(data)
    after = report.model.after.files if report.model.after else {}
    issue_and_store(session, store, job, report, after)
