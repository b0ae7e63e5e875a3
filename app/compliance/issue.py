"""Issue a job's audit report in one call: canonical JSON, HTML, and the signed in-toto/DSSE envelope.

    issued = issue_report(report, unlearn_result.model_files, audit_head=audit_log.head(session))
    store(issued.report_json -> report.json, issued.html -> report.html, issued.envelope -> report.dsse.json)
    audit_log.append(session, audit_log.REPORT_ISSUED, tenant_id=..., job_id=..., data=issued.audit_data())

Storage stays with the caller (the artifact store); this module touches neither disk nor database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from app.compliance import signing
from app.compliance.report_html import render_report_html
from app.compliance.report_schema import AuditReport, report_json_bytes
from app.models.audit import AuditLogEntry


@dataclass(frozen=True)
class IssuedReport:
    report_json: bytes
    report_sha256: str
    html: str
    envelope: bytes
    envelope_sha256: str
    keyid: str

    def audit_data(self) -> dict[str, Any]:
        return {"report_sha256": self.report_sha256, "envelope_sha256": self.envelope_sha256, "keyid": self.keyid}


def issue_report(report: AuditReport | Mapping[str, Any], checkpoint_files: Mapping[str, str], *,
                 key: Ed25519PrivateKey | None = None, audit_head: AuditLogEntry | str | None = None) -> IssuedReport:
    """`checkpoint_files`: {relative path: sha256} of the new checkpoint (empty when the job made none)."""
    if not isinstance(report, AuditReport):
        report = AuditReport.model_validate(dict(report))
    key = key or signing.load_signing_key()
    report_json = report_json_bytes(report)
    head = audit_head.entry_hash if isinstance(audit_head, AuditLogEntry) else audit_head
    predicate = {
        "schema_version": report.schema_version,
        "job_id": report.job.job_id,
        "tenant_id": report.job.tenant_id,
        "model_id": report.model.model_id,
        "version_before": report.model.before.version_id,
        "version_after": report.model.after.version_id if report.model.after else None,
        "verdict_passed": report.verdict.passed,
        "forget_merkle_root": report.forget_data.merkle_root,
        "issued_at": report.issued_at.isoformat(),
        "audit_log_head": head,
    }
    statement = signing.build_statement(report_json, checkpoint_files, predicate)
    envelope = signing.envelope_bytes(signing.sign_statement(statement, key))
    return IssuedReport(report_json=report_json, report_sha256=signing.sha256_bytes(report_json),
                        html=render_report_html(report), envelope=envelope,
                        envelope_sha256=signing.sha256_bytes(envelope), keyid=signing.key_id(key.public_key()))
