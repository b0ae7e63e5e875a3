from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, StreamingResponse
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from app.auth.dependencies import CurrentTenant
from app.core import jsonparse
from app.core.admission import SSE_MEDIA_TYPE
from app.core.artifacts import store_from_settings
from app.core.config import Settings
from app.core.db import open_api_session
from app.core.deps import SessionDep, SettingsDep
from app.core.openapi import body_schema, problem_responses
from app.core.pagination import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, decode_cursor, encode_cursor
from app.core.problems import ProblemError
from app.jobs import repository, service
from app.jobs.queue import enqueue_job
from app.jobs.schemas import JobEventOut, JobOut, JobReport, RejectRequest, UnlearnRequest
from app.jobs.state import TERMINAL, JobStatus
from app.jobs.submissions import job_location
from app.observability.logging import KEY_PATTERN

router = APIRouter(prefix="/v1", tags=["jobs"], responses=problem_responses(401, 413))

SSE_POLL_INTERVAL_S = 0.5
SSE_KEEPALIVE_S = 15.0

_UNLEARN_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": body_schema(UnlearnRequest)},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["request", "forget"],
                "properties": {
                    "request": {"type": "string", "description": "UnlearnRequest as JSON, without forget/holdout"},
                    "forget": {"type": "string", "format": "binary", "description": "JSON Lines records"},
                    "holdout": {"type": "string", "format": "binary", "description": "JSON Lines records"},
                },
            }},
        },
    }
}


def _invalid_body(errors: list[dict[str, Any]]) -> RequestValidationError:
    return RequestValidationError([{**error, "loc": ("body", *error.get("loc", ()))} for error in errors])


async def _jsonl_records(part: UploadFile | str | None, name: str) -> list[Any] | None:
    if part is None:
        return None
    raw = (await part.read()) if isinstance(part, UploadFile) else part.encode("utf-8")
    records: list[Any] = []
    for line_number, line in enumerate(raw.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(jsonparse.loads(line.decode("utf-8")))
        except (UnicodeDecodeError, json.JSONDecodeError, jsonparse.JsonTooDeep):
            raise ProblemError(422, "Unprocessable Content", f"{name}: line {line_number} is not JSON",
                               line=line_number,
                               errors=[{"loc": f"body.{name}.line.{line_number}", "msg": "invalid JSON",
                                        "type": "json_invalid"}]) from None
    return records


async def _read_unlearn_request(request: Request, settings: Settings) -> UnlearnRequest:
    """The request as JSON, or as multipart with the records in JSON Lines parts; both give the same object."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type == "multipart/form-data":
        async with request.form(max_files=3, max_fields=3, max_part_size=settings.max_request_bytes) as form:
            request_part = form.get("request")
            if request_part is None:
                raise _invalid_body([{"loc": ("request",), "msg": "Field required", "type": "missing"}])
            raw = (await request_part.read()) if isinstance(request_part, UploadFile) else request_part
            try:
                document = jsonparse.loads(raw)
            except jsonparse.JsonTooDeep as exc:
                raise _invalid_body([{"loc": ("request",), "msg": str(exc), "type": "json_invalid"}]) from None
            except json.JSONDecodeError as exc:
                raise _invalid_body([{"loc": ("request",), "msg": f"invalid JSON ({exc.msg})",
                                      "type": "json_invalid"}]) from None
            if not isinstance(document, dict):
                raise _invalid_body([{"loc": ("request",), "msg": "expected a JSON object", "type": "dict_type"}])
            for name in ("forget", "holdout"):
                records = await _jsonl_records(form.get(name), name)
                if records is not None:
                    if name in document:
                        raise _invalid_body([{"loc": (name,), "msg": "given both inline and as a file part",
                                              "type": "value_error"}])
                    document[name] = records
    elif content_type == "application/json":
        try:
            document = jsonparse.loads(await request.body())
        except jsonparse.JsonTooDeep as exc:
            raise _invalid_body([{"loc": (), "msg": str(exc), "type": "json_invalid"}]) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise _invalid_body([{"loc": (), "msg": "invalid JSON", "type": "json_invalid"}]) from exc
    else:
        raise ProblemError(415, "Unsupported Media Type", "send application/json or multipart/form-data")
    try:
        parsed = UnlearnRequest.model_validate(document)
    except ValidationError as exc:
        raise _invalid_body([dict(e) for e in exc.errors(include_url=False, include_input=False)]) from None
    if not parsed.forget:
        raise _invalid_body([{"loc": ("forget",), "msg": "at least one record to forget is required",
                              "type": "too_short"}])
    return parsed


@router.post("/unlearn", status_code=status.HTTP_202_ACCEPTED, response_model=JobOut,
             summary="Submit an unlearning request; answers at once with the queued job",
             responses={**problem_responses(404, 409, 415, 422, 429),
                        202: {"description": "The job, queued",
                              "headers": {"Location": {"schema": {"type": "string"}}}}},
             openapi_extra=_UNLEARN_BODY)
async def submit_unlearning(
    request: Request, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep,
    idempotency_key: Annotated[str | None, Header(max_length=200, description=(
        "Same key and same request: the first response is replayed; same key, other request: 422; "
        "while the first is still running: 409"))] = None,
) -> JSONResponse:
    unlearn = await _read_unlearn_request(request, settings)
    # Validating and hashing up to max_records_per_job records is CPU work: keep it off the event loop.
    forget, holdout = await run_in_threadpool(service.check_request, unlearn, settings)
    digest = service.request_digest(unlearn)
    if idempotency_key is not None:
        replay = await run_in_threadpool(service.claim_idempotency_key, session, tenant, idempotency_key, digest)
        if replay is not None:
            return JSONResponse(replay.body, status_code=replay.status_code,
                                headers={"Location": replay.location, "Idempotent-Replayed": "true"})
    try:
        job = await run_in_threadpool(service.create_job, session, settings, tenant, unlearn, forget, holdout,
                                      digest, idempotency_key)
    except BaseException:
        if idempotency_key is not None:
            await run_in_threadpool(service.release_idempotency_key, session, tenant, idempotency_key)
        raise
    await run_in_threadpool(enqueue_job, settings, job.id)
    return JSONResponse(JobOut.model_validate(job).model_dump(mode="json"), status_code=202,
                        headers={"Location": job_location(job.id)})


@router.get("/jobs", summary="List jobs, newest first", responses=problem_responses(422))
def list_jobs(
    tenant: CurrentTenant, session: SessionDep,
    status_filter: Annotated[JobStatus | None, Query(alias="status")] = None,
    model_id: uuid.UUID | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
) -> Page[JobOut]:
    before = None
    if cursor:
        position = decode_cursor(cursor, {"created_at": datetime.fromisoformat, "id": uuid.UUID})
        before = (position["created_at"], position["id"])
    jobs = repository.jobs_of_tenant(session, tenant.id, limit=limit + 1, status=status_filter,
                                     model_id=model_id, before=before)
    next_cursor = None
    if len(jobs) > limit:
        last = jobs[limit - 1]
        next_cursor = encode_cursor({"created_at": last.created_at.isoformat(), "id": str(last.id)})
    return Page[JobOut](items=[JobOut.model_validate(j) for j in jobs[:limit]], next_cursor=next_cursor)


@router.get("/jobs/{job_id}", summary="A job: status, stage, progress, metrics, produced version",
            responses=problem_responses(404, 422))
def read_job(job_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep) -> JobOut:
    return JobOut.model_validate(service.get_job(session, tenant, job_id))


def _sse_frame(event: JobEventOut) -> str:
    return f"id: {event.id}\nevent: {event.type}\ndata: {event.model_dump_json()}\n\n"


def _poll(settings: Settings, job_id: uuid.UUID, after_id: int) -> tuple[list[JobEventOut], bool]:
    """New events and whether the job had ended before they were read (so none can follow)."""
    with open_api_session(settings, read_only=True) as session:
        ended = repository.job_status(session, job_id) in TERMINAL
        events = repository.events_of(session, job_id, after_id=after_id, limit=MAX_PAGE_SIZE)
        return [JobEventOut.model_validate(e) for e in events], ended


async def _event_stream(settings: Settings, job_id: uuid.UUID, after_id: int) -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    last_sent = loop.time()
    while True:
        events, ended = await run_in_threadpool(_poll, settings, job_id, after_id)
        for event in events:
            yield _sse_frame(event)
            after_id = event.id
        if events:
            last_sent = loop.time()
        elif ended:
            return
        elif loop.time() - last_sent > SSE_KEEPALIVE_S:
            yield ": keepalive\n\n"  # a comment line keeps proxies from closing an idle stream
            last_sent = loop.time()
        if len(events) < MAX_PAGE_SIZE:
            await asyncio.sleep(SSE_POLL_INTERVAL_S)


@router.get("/jobs/{job_id}/events", response_model=Page[JobEventOut],
            summary="A job's events, oldest first; a server-sent-events stream with `Accept: text/event-stream`",
            responses={**problem_responses(404, 422),
                       200: {"content": {SSE_MEDIA_TYPE: {"schema": {"type": "string"}}},
                             "description": "Events (JSON page, or a stream that ends with the job)"}})
def list_events(
    job_id: uuid.UUID, request: Request, tenant: CurrentTenant, session: SessionDep, settings: SettingsDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE_SIZE)] = DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(description="`next_cursor` of the previous page")] = None,
    last_event_id: Annotated[str | None, Header(description="SSE resume point (sent by EventSource)")] = None,
) -> Any:
    job = service.get_job(session, tenant, job_id)
    after_id = decode_cursor(cursor, {"after": int})["after"] if cursor else 0
    if SSE_MEDIA_TYPE in request.headers.get("accept", ""):
        if last_event_id is not None and last_event_id.isdigit():
            after_id = int(last_event_id)
        # The request's session would otherwise keep its pooled connection for the stream's whole life.
        session.close()
        return StreamingResponse(_event_stream(settings, job.id, after_id), media_type=SSE_MEDIA_TYPE,
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
    events = repository.events_of(session, job.id, after_id=after_id, limit=limit + 1)
    next_cursor = encode_cursor({"after": events[limit - 1].id}) if len(events) > limit else None
    return Page[JobEventOut](items=[JobEventOut.model_validate(e) for e in events[:limit]], next_cursor=next_cursor)


@router.post("/jobs/{job_id}/cancel", summary="Cancel a job (queued: at once; running: the worker stops it)",
             responses={**problem_responses(404, 409, 422),
                        202: {"model": JobOut, "description": "Running: now cancelling"}})
def cancel_job(job_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep, response: Response) -> JobOut:
    job = service.cancel_job(session, service.get_job(session, tenant, job_id))
    if job.status == "cancelling":
        response.status_code = status.HTTP_202_ACCEPTED
    return JobOut.model_validate(job)


@router.get("/jobs/{job_id}/mask", response_class=FileResponse, summary="Download the job's mask (safetensors)",
            responses={**problem_responses(404, 422),
                       200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                                  "format": "binary"}}}}})
def download_mask(job_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep,
                  settings: SettingsDep) -> FileResponse:
    job = service.get_job(session, tenant, job_id)
    mask = repository.mask_of(session, job.id)
    if mask is None:
        raise ProblemError(404, "Not Found", f"job {job_id} has no mask yet")
    path = store_from_settings(settings).get_path(mask.artifact_key)
    return FileResponse(path, media_type="application/octet-stream", filename=f"mask-{job.id}.safetensors")


@router.get("/jobs/{job_id}/report", summary="The job's audit report (JSON)", responses=problem_responses(404, 422))
def read_report(job_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep) -> JobReport:
    return service.build_report(session, service.get_job(session, tenant, job_id))



def _key_prefix(request: Request) -> str | None:
    """The prefix of the caller's API key (it names the key; the secret never leaves the auth check)."""
    match = KEY_PATTERN.search(request.headers.get("authorization", ""))
    return match.group(1) if match else None


@router.post("/jobs/{job_id}/approve", summary="Approve a job awaiting approval: its version becomes current",
             responses=problem_responses(404, 409, 422))
def approve_job(job_id: uuid.UUID, request: Request, tenant: CurrentTenant, session: SessionDep,
                settings: SettingsDep) -> JobOut:
    job = service.approve_job(session, settings, service.get_job(session, tenant, job_id), _key_prefix(request))
    return JobOut.model_validate(job)


@router.post("/jobs/{job_id}/reject", summary="Reject a job awaiting approval: its version is discarded",
             responses=problem_responses(404, 409, 422))
def reject_job(job_id: uuid.UUID, request: Request, tenant: CurrentTenant, session: SessionDep,
               settings: SettingsDep, body: RejectRequest | None = None) -> JobOut:
    job = service.reject_job(session, settings, service.get_job(session, tenant, job_id), _key_prefix(request),
                             body.reason if body else None)
    return JobOut.model_validate(job)


# The HTML report is self-contained (inline CSS, PNG data URIs): nothing else may load, no script may run.
REPORT_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"


def _signed_file(session: SessionDep, tenant: CurrentTenant, settings: Settings, job_id: uuid.UUID,
                 which: str) -> Path:
    job = service.get_job(session, tenant, job_id)
    key = {"json": job.report_key, "html": job.report_html_key, "dsse": job.report_envelope_key}[which]
    if key is None:
        raise ProblemError(404, "Not Found", f"job {job_id} has no signed report yet")
    return store_from_settings(settings).get_path(key)


@router.get("/jobs/{job_id}/report.json", response_class=FileResponse,
            summary="The signed audit report's report.json (exactly the bytes the envelope names)",
            responses={**problem_responses(404, 422), 200: {"content": {"application/json": {}}}})
def read_report_json(job_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep,
                     settings: SettingsDep) -> FileResponse:
    return FileResponse(_signed_file(session, tenant, settings, job_id, "json"), media_type="application/json",
                        filename="report.json")


@router.get("/jobs/{job_id}/report.html", response_class=HTMLResponse, summary="The audit report for people (HTML)",
            responses={**problem_responses(404, 422), 200: {"content": {"text/html": {}}}})
def read_report_html(job_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep,
                     settings: SettingsDep) -> HTMLResponse:
    path = _signed_file(session, tenant, settings, job_id, "html")
    return HTMLResponse(path.read_text(encoding="utf-8"),
                        headers={"Content-Security-Policy": REPORT_CSP, "X-Content-Type-Options": "nosniff",
                                 "Referrer-Policy": "no-referrer"})


@router.get("/jobs/{job_id}/report.dsse.json", response_class=FileResponse,
            summary="The DSSE envelope signing report.json and every checkpoint file (verify with "
                    "`grin verify-report`)",
            responses={**problem_responses(404, 422), 200: {"content": {"application/json": {}}}})
def read_report_envelope(job_id: uuid.UUID, tenant: CurrentTenant, session: SessionDep,
                         settings: SettingsDep) -> FileResponse:
    return FileResponse(_signed_file(session, tenant, settings, job_id, "dsse"), media_type="application/json",
                        filename="report.dsse.json")
