"""`grin verify-report` and `grin audit ...`: register with `cli.add_typer(compliance_cli)` in app/cli.py.

Exit codes: 0 verified, 1 verification failed (the reason on one line), 2 bad input; never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import typer

compliance_cli = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
audit_cli = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                        help="The hash-chained audit log.")
compliance_cli.add_typer(audit_cli, name="audit")


def _fail(message: str, code: int) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code)


@compliance_cli.command("verify-report")
def verify_report(
    envelope: Path = typer.Argument(..., help="The DSSE envelope (report.dsse.json)"),
    artifacts: Path | None = typer.Option(None, "--artifacts", help="Folder with report.json and model/ to "
                                          "recompute every subject's sha256"),
    public_key: Path | None = typer.Option(None, "--public-key", help="The service's Ed25519 public key (PEM, "
                                           "from GET /v1/signing-key); default: this host's signing key"),
) -> None:
    """Check a signed audit report: the Ed25519 signature, the statement, and every artifact's sha256."""
    from app.compliance import signing

    try:
        data = envelope.read_bytes()
    except OSError as exc:
        raise _fail(f"error: cannot read {envelope}: {exc.strerror or exc}", 2) from None
    if artifacts is not None and not artifacts.is_dir():
        raise _fail(f"error: --artifacts {artifacts} is not a folder", 2)
    try:
        if public_key is not None:
            try:
                pem = public_key.read_bytes()
            except OSError as exc:
                raise _fail(f"error: cannot read {public_key}: {exc.strerror or exc}", 2) from None
        else:
            try:
                pem = signing.public_key_pem(generate=False).encode("ascii")
            except signing.SigningError as exc:
                raise _fail(f"error: no public key given and none on this host ({exc}); pass --public-key", 2) \
                    from None
        key = signing.load_public_key(pem)
        result = signing.verify_envelope(data, key, artifacts_dir=artifacts)
    except signing.BadInputError as exc:
        raise _fail(f"error: {exc}", 2) from None
    except signing.VerificationError as exc:
        raise _fail(f"FAILED: {exc}", 1) from None
    predicate = result.predicate
    what = f"job {predicate['job_id']}" if "job_id" in predicate else "report"
    if artifacts is None:
        typer.echo(f"OK: {what} signed by key {result.keyid[:16]}...; "
                   f"{len(result.statement['subject'])} subjects not checked (no --artifacts)")
    else:
        typer.echo(f"OK: {what} signed by key {result.keyid[:16]}...; "
                   f"{len(result.subjects_checked)} subjects match their sha256")


@compliance_cli.command("signing-key")
def signing_key(
    init: bool = typer.Option(False, "--init", help="Generate the key if it does not exist yet (deployments run "
                              "this once, e.g. in the migrate step; jobs never generate one in production)"),
) -> None:
    """Print the public half of the report-signing key (PEM), optionally creating the key first."""
    from app.compliance.signing import SigningError, public_key_pem

    try:
        typer.echo(public_key_pem(generate=True if init else None), nl=False)
    except SigningError as exc:
        raise _fail(f"error: {exc}", 2) from None


@audit_cli.command("verify")
def audit_verify() -> None:
    """Walk the audit log's hash chain and name the first broken link."""
    from sqlalchemy.exc import SQLAlchemyError

    from app.compliance.audit_log import verify_chain
    from app.core.db import open_session

    try:
        with open_session() as session:
            broken, count = verify_chain(session, with_count=True)
    except SQLAlchemyError as exc:
        raise _fail(f"error: cannot read the audit log: {type(exc).__name__}: {str(exc).splitlines()[0]}", 2) \
            from None
    if broken is not None:
        raise _fail(f"FAILED: audit log entry {broken.id} is the first broken link: {broken.reason}", 1)
    typer.echo(f"OK: {count} audit log entries, hash chain intact")


@compliance_cli.command("export-report")
def export_report(
    job_id: str = typer.Argument(..., help="The job whose signed report to export"),
    out: Path = typer.Argument(..., help="Folder to write report.json, report.dsse.json and model/ into"),
) -> None:
    """Operator side (reads the ledger and the artifact store): the job's signed report and the checkpoint it
    names, laid out for `grin verify-report OUT/report.dsse.json --artifacts OUT`."""
    import uuid

    from app.core.artifacts import ArtifactError, store_from_settings
    from app.core.config import get_settings
    from app.core.db import open_session
    from app.models import Job, ModelVersion

    try:
        jid = uuid.UUID(job_id)
    except ValueError:
        raise _fail(f"error: {job_id!r} is not a job id", 2) from None
    settings = get_settings()
    store = store_from_settings(settings)
    with open_session(settings) as session:
        job = session.get(Job, jid)
        if job is None or job.report_key is None or job.report_envelope_key is None:
            raise _fail(f"error: job {job_id} has no signed report", 2)
        report_key, envelope_key = job.report_key, job.report_envelope_key
        files: dict[str, str] = {}
        if job.result_version_id is not None:
            version = session.get_one(ModelVersion, job.result_version_id)
            if version.weights_deleted_at is None:
                files = dict(version.files)
        elif job.candidate_key is not None:
            files = store.read_manifest(job.candidate_key)
    out.mkdir(parents=True, exist_ok=True)
    try:
        (out / "report.json").write_bytes(store.read_bytes(report_key))
        (out / "report.dsse.json").write_bytes(store.read_bytes(envelope_key))
        if files:
            store.materialize_dir(files, out / "model")
    except ArtifactError as exc:
        raise _fail(f"error: {exc}", 1) from None
    typer.echo(f"wrote {out}/report.json, report.dsse.json" + (f" and {len(files)} files under model/" if files
                                                                else " (the checkpoint's weights were deleted)"))
