"""`grin models|datasets|jobs ...`: the HTTP side of the operator CLI (registered in app/cli.py).

Talks to a running service: GRIN_URL / GRIN_API_KEY, else ~/.config/grin/config.toml (`url`, `api_key`).
Exit codes: 0 ok; 1 the job did not succeed (failed, cancelled, or still running when --timeout ran out);
2 usage or input error, or the service refused the request or could not be reached. Errors are one line
on stderr, never a traceback.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer

if TYPE_CHECKING:
    from grin_client.client import GrinClient, Progress

EXIT_JOB_FAILED = 1
EXIT_USAGE = 2

models_cli = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                         help="Registered models and their version lineage.")
datasets_cli = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                           help="Retain data sets (JSON Lines).")
jobs_cli = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False,
                       help="Unlearning jobs: submit, follow, cancel, approve, reports.")


def _fail(message: str, code: int = EXIT_USAGE) -> NoReturn:
    typer.echo(f"error: {' '.join(message.split())}", err=True)
    raise typer.Exit(code)


@contextmanager
def _client() -> Iterator[GrinClient]:
    """A configured client; every expected failure becomes one line on stderr and exit code 2."""
    from grin_client.client import GrinClient
    from grin_client.config import ConfigError, load_config
    from grin_client.errors import ApiError, GrinError, WaitTimeout

    try:
        config = load_config()
    except ConfigError as exc:
        _fail(f"config: {exc}")
    if not config.api_key:
        _fail("no API key: set GRIN_API_KEY or api_key in ~/.config/grin/config.toml "
              "(`grin admin keys create --tenant NAME` makes one)")
    client = GrinClient(config.url, config.api_key)
    try:
        yield client
    except WaitTimeout as exc:
        _fail(str(exc), EXIT_JOB_FAILED)
    except ApiError as exc:
        _fail(exc.one_line())
    except GrinError as exc:
        _fail(str(exc))
    except OSError as exc:
        _fail(f"{getattr(exc, 'filename', None) or ''}: {exc.strerror or exc}".lstrip(": "))
    finally:
        client.close()


def _dump(value: Any) -> None:
    from pydantic import BaseModel

    if isinstance(value, BaseModel):
        typer.echo(value.model_dump_json(indent=2))
    else:
        typer.echo(json.dumps(value, indent=2, default=str))


def _read_jsonl(path: Path, name: str) -> list[Any]:
    from grin_client.client import records_from_jsonl

    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        _fail(f"--{name} {path}: {getattr(exc, 'strerror', None) or exc}")
    try:
        records = records_from_jsonl(text.splitlines(), f"--{name} {path}")
    except ValueError as exc:
        _fail(str(exc))
    if not records:
        _fail(f"--{name} {path}: no records")
    return records


def _json_option(value: str | None, name: str) -> Any:
    """A JSON value given inline or as @FILE / a path to a .json file."""
    if value is None:
        return None
    text = value
    candidate = Path(value[1:] if value.startswith("@") else value)
    if value.startswith("@") or (value.endswith(".json") and candidate.is_file()):
        try:
            text = candidate.read_text(encoding="utf-8")
        except OSError as exc:
            _fail(f"--{name} {candidate}: {exc.strerror or exc}")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        _fail(f"--{name}: not JSON ({exc.msg})")


def _json_object_option(value: str | None, name: str) -> dict[str, Any] | None:
    """`_json_option` for options that must be a JSON object: a list or a string is refused here, in one line,
    rather than as a pydantic message about the request body."""
    parsed = _json_option(value, name)
    if parsed is None or isinstance(parsed, dict):
        return parsed
    kinds = {list: "an array", str: "a string", bool: "true/false", int: "a number", float: "a number"}
    _fail(f"--{name}: must be a JSON object, not {kinds[type(parsed)]}")


# --- models -------------------------------------------------------------------------------------
@models_cli.command("register")
def models_register(name: str = typer.Argument(..., help="A name for the model"),
                    path: str = typer.Argument(..., help="Model directory on the service host (under a model root)"),
                    as_json: bool = typer.Option(False, "--json", help="Print the model as JSON")) -> None:
    """Register a model directory as version 1."""
    with _client() as grin:
        model = grin.register_model(name, path)
    if as_json:
        _dump(model)
    else:
        typer.echo(f"{model.id}\t{model.name}\tv1 {model.current_version_id}")


@models_cli.command("list")
def models_list(as_json: bool = typer.Option(False, "--json", help="JSON Lines, one model a line")) -> None:
    """List models (id, name, current version)."""
    with _client() as grin:
        for model in grin.iter_models():
            if as_json:
                typer.echo(model.model_dump_json())
            else:
                typer.echo(f"{model.id}\t{model.name}\t{model.current_version_id or '-'}\t{model.source_path}")


@models_cli.command("versions")
def models_versions(model_id: str = typer.Argument(..., help="Model id"),
                    as_json: bool = typer.Option(False, "--json", help="Print the versions as JSON")) -> None:
    """A model's versions, oldest first, each with its parent and the job that made it."""
    with _client() as grin:
        model = grin.get_model(model_id)
        versions = grin.model_versions(model_id)
    if as_json:
        _dump([v.model_dump(mode="json") for v in versions])
        return
    numbers = {v.id: v.number for v in versions}
    for version in versions:
        parent = f"v{numbers[version.parent_id]}" if version.parent_id in numbers else "-"
        current = " (current)" if version.id == model.current_version_id else ""
        deleted = " weights deleted" if version.weights_deleted_at else ""
        typer.echo(f"v{version.number}\t{version.id}\tparent {parent}\tjob {version.job_id or '-'}\t"
                   f"{version.total_bytes} bytes\t{version.created_at.isoformat()}{current}{deleted}")


# --- datasets -----------------------------------------------------------------------------------
@datasets_cli.command("upload")
def datasets_upload(file: Path = typer.Argument(..., help="JSON Lines file, one record a line"),
                    name: str | None = typer.Option(None, help="Data set name (default: the file name)"),
                    kind: str = typer.Option("qa", help="qa, text or harmful")) -> None:
    """Upload a retain data set (streamed); prints its id."""
    if not file.is_file():
        _fail(f"{file}: no such file")
    with _client() as grin:
        dataset = grin.upload_dataset(name or file.stem, kind, file)
    typer.echo(f"{dataset.id}\t{dataset.name}\t{dataset.kind}\t{dataset.record_count} records")


@datasets_cli.command("list")
def datasets_list() -> None:
    """List data sets."""
    with _client() as grin:
        for dataset in grin.iter_datasets():
            typer.echo(f"{dataset.id}\t{dataset.name}\t{dataset.kind}\t{dataset.record_count} records")


# --- jobs ---------------------------------------------------------------------------------------
def _progress_printer() -> tuple[Callable[[Progress], None], Callable[[], None]]:
    """A live progress bar on stderr (rich), plus one line per status/stage change for logs and pipes."""
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

    console = Console(stderr=True)
    bar = Progress(TextColumn("{task.description:<24}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn(),
                   console=console, transient=False)
    task = bar.add_task("queued", total=1.0)
    bar.start()
    seen: list[tuple[str, str | None]] = []

    def update(state: Progress) -> None:
        label = f"{state.status} {state.stage}" if state.stage else state.status
        if not seen or seen[-1] != (state.status, state.stage):
            seen.append((state.status, state.stage))
            bar.console.print(f"job {state.job_id}: {label}", highlight=False)
        bar.update(task, description=label, completed=state.progress)

    return update, bar.stop


def _finish(job: Any) -> None:
    if job.status == "succeeded":
        typer.echo(f"job {job.id} succeeded: new version {job.result_version_id}", err=True)
        return
    reason = f": {job.error}" if job.error else ""
    typer.echo(f"error: job {job.id} {job.status}{reason}", err=True)
    raise typer.Exit(EXIT_JOB_FAILED)


def _wait(grin: GrinClient, job_id: str, timeout: float | None, quiet: bool) -> Any:
    if quiet:
        return grin.wait(job_id, timeout=timeout)
    update, stop = _progress_printer()
    try:
        return grin.wait(job_id, on_progress=update, timeout=timeout)
    finally:
        stop()


@jobs_cli.command("submit")
def jobs_submit(
    forget: Path = typer.Option(..., "--forget", help="JSON Lines: the records to forget"),
    model: str = typer.Option(..., "--model", help="Model id"),
    kind: str = typer.Option("qa", help="qa, text or harmful"),
    holdout: Path | None = typer.Option(None, help="JSON Lines: same-kind records the model never saw"),
    retain_dataset: str | None = typer.Option(None, "--retain-dataset", help="Retain data set id"),
    base_version: str | None = typer.Option(None, "--base-version", help="Default: the model's current version"),
    method: str | None = typer.Option(None, help="MethodSpec JSON, inline or @file.json"),
    evaluation: str | None = typer.Option(
        None, help="Evaluation JSON object, inline or @file.json: verdict `criteria` / `missing_fails` (default: the "
                   "kind's policy), `probes` (text: mcq, mcq_retain; harmful: harmful, normal) and `judge` (harmful)"),
    subject_reference: str | None = typer.Option(None, "--subject-reference", help="Opaque, for the audit trail"),
    legal_basis: str | None = typer.Option(None, "--legal-basis"),
    idempotency_key: str | None = typer.Option(None, "--idempotency-key",
                                               help="Resubmitting with the same key returns the same job"),
    wait: bool = typer.Option(False, "--wait", help="Follow the job with a live progress bar until it ends"),
    timeout: float | None = typer.Option(None, help="With --wait: give up after this many seconds (exit 1)"),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output"),
) -> None:
    """Submit an unlearning job; prints the job id (and with --wait, exits 1 unless it succeeds)."""
    from grin_client.client import build_request
    from grin_client.errors import ValidationFailed

    records = _read_jsonl(forget, "forget")
    fields: dict[str, Any] = {
        "holdout": _read_jsonl(holdout, "holdout") if holdout else None,
        "retain_dataset_id": retain_dataset, "base_version_id": base_version,
        "method": _json_object_option(method, "method"), "evaluation": _json_object_option(evaluation, "evaluation"),
        "subject_reference": subject_reference, "legal_basis": legal_basis,
    }
    try:
        request = build_request(model, kind, records, **fields)
    except ValidationFailed as exc:
        _fail(f"invalid request: {exc.detail}")
    with _client() as grin:
        job = grin.submit(request, idempotency_key=idempotency_key)
        typer.echo(str(job.id))
        if wait:
            _finish(_wait(grin, str(job.id), timeout, quiet))


@jobs_cli.command("wait")
def jobs_wait(job_id: str = typer.Argument(...), timeout: float | None = typer.Option(None),
              quiet: bool = typer.Option(False, "--quiet", "-q")) -> None:
    """Follow a job until it ends; exit 1 unless it succeeded."""
    with _client() as grin:
        _finish(_wait(grin, job_id, timeout, quiet))


@jobs_cli.command("list")
def jobs_list(status: str | None = typer.Option(None, help="Only jobs in this status"),
              model: str | None = typer.Option(None, "--model", help="Only this model's jobs"),
              limit: int = typer.Option(50, help="At most this many (newest first); 0: all"),
              as_json: bool = typer.Option(False, "--json", help="JSON Lines, one job a line")) -> None:
    """List jobs, newest first."""
    with _client() as grin:
        for count, job in enumerate(grin.iter_jobs(status=status, model_id=model,
                                                   page_size=min(limit, 200) if limit else None), start=1):
            if as_json:
                typer.echo(job.model_dump_json())
            else:
                stage = job.stage or "-"
                typer.echo(f"{job.id}\t{job.status}\t{stage}\t{job.progress:.0%}\t{job.kind}\t"
                           f"{job.forget_count} records\t{job.created_at.isoformat()}")
            if limit and count >= limit:
                break


@jobs_cli.command("show")
def jobs_show(job_id: str = typer.Argument(...),
              as_json: bool = typer.Option(False, "--json", help="The whole job as JSON")) -> None:
    """A job's status, stage, progress, error and result."""
    with _client() as grin:
        job = grin.get_job(job_id)
    if as_json:
        _dump(job)
        return
    verdict = (job.metrics or {}).get("verdict") or {}
    rows = [("id", job.id), ("status", job.status), ("stage", job.stage or "-"), ("progress", f"{job.progress:.0%}"),
            ("model", job.model_id), ("base version", job.base_version_id),
            ("result version", job.result_version_id or "-"), ("kind", job.kind),
            ("forget records", job.forget_count), ("merkle root", job.forget_merkle_root),
            ("attempts", f"{job.attempts}/{job.max_attempts}"), ("created", job.created_at.isoformat()),
            ("finished", job.finished_at.isoformat() if job.finished_at else "-")]
    if verdict:
        rows.append(("verdict", f"{'passed' if verdict.get('passed') else 'FAILED'}: {verdict.get('reason', '')}"))
    if job.error:
        rows.append(("error", job.error))
    for label, value in rows:
        typer.echo(f"{label + ':':<16}{value}")


@jobs_cli.command("cancel")
def jobs_cancel(job_id: str = typer.Argument(...)) -> None:
    """Cancel a job (queued: at once; running: the worker stops it at the next step)."""
    with _client() as grin:
        job = grin.cancel(job_id)
    typer.echo(f"{job.id}\t{job.status}")


@jobs_cli.command("approve")
def jobs_approve(job_id: str = typer.Argument(...)) -> None:
    """Approve a job awaiting approval: it is queued to run."""
    with _client() as grin:
        job = grin.approve(job_id)
    typer.echo(f"{job.id}\t{job.status}")


@jobs_cli.command("reject")
def jobs_reject(job_id: str = typer.Argument(...),
                reason: str | None = typer.Option(None, help="Recorded in the job's history")) -> None:
    """Reject a job awaiting approval: it ends without running."""
    with _client() as grin:
        job = grin.reject(job_id, reason)
    typer.echo(f"{job.id}\t{job.status}")


@jobs_cli.command("report")
def jobs_report(job_id: str = typer.Argument(...),
                html: Path | None = typer.Option(None, "--html", help="Write the HTML audit report here"),
                json_out: Path | None = typer.Option(None, "--json", help="Write the JSON report here"),
                mask: Path | None = typer.Option(None, "--mask", help="Download the mask (safetensors) here"),
                envelope: Path | None = typer.Option(None, "--envelope", help="Write the signed DSSE envelope here "
                                                     "(and report.json, exactly as signed, next to it)")) -> None:
    """The job's audit report: JSON on stdout, or written to --json / --html files; --mask downloads the mask;
    --envelope the signature (`grin verify-report` checks it)."""
    from grin_client.errors import NotFound

    with _client() as grin:
        report = grin.report(job_id)
        if envelope is not None:
            try:
                signed, report_bytes = grin.report_envelope(job_id), grin.report_json_signed(job_id)
            except NotFound as exc:
                _fail(f"no signed report for job {job_id} ({exc.one_line()})")
            envelope.write_bytes(signed)
            (envelope.parent / "report.json").write_bytes(report_bytes)
            typer.echo(f"wrote {envelope} and {envelope.parent / 'report.json'}", err=True)
        if html is not None:
            try:
                page = grin.report_html(job_id)
            except NotFound as exc:
                _fail(f"no HTML report for job {job_id} ({exc.one_line()})")
            html.write_text(page, encoding="utf-8")
            typer.echo(f"wrote {html}", err=True)
        if json_out is not None:
            json_out.write_text(report.model_dump_json(indent=2), encoding="utf-8")
            typer.echo(f"wrote {json_out}", err=True)
        if mask is not None:
            grin.download_mask(job_id, mask)
            typer.echo(f"wrote {mask}", err=True)
    if html is None and json_out is None and mask is None and envelope is None:
        _dump(report)


def register(cli: typer.Typer) -> None:
    """Add `models`, `datasets` and `jobs` to the `grin` command."""
    cli.add_typer(models_cli, name="models")
    cli.add_typer(datasets_cli, name="datasets")
    cli.add_typer(jobs_cli, name="jobs")


def main() -> None:  # `python -m grin_client.cli` without the service-side commands
    app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
    register(app)
    app()


if __name__ == "__main__":
    sys.exit(main())
