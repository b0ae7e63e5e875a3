"""`GrinClient` (sync) and `AsyncGrinClient` (async) over httpx, returning the API's own pydantic models.

Each operation is described once (`_Op`: method, path, arguments, how to parse the answer) and run by
either client, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from pydantic import BaseModel, TypeAdapter, ValidationError

from app.auth.schemas import TenantOut
from app.core.pagination import Page
from app.datasets.schemas import DatasetOut
from app.jobs.schemas import JobEventOut, JobOut, JobReport, UnlearnRequest
from app.registry.schemas import ModelOut, ModelVersionOut
from grin_client.config import load_config
from grin_client.errors import ServiceUnreachable, ValidationFailed, WaitTimeout, error_for

T = TypeVar("T")
TERMINAL = frozenset({"succeeded", "failed", "cancelled"})
SSE_MEDIA_TYPE = "text/event-stream"
USER_AGENT = "grin-client/0.1"
# The server sends a keepalive comment every 15 s on an idle stream; a read that waits twice that is a dead link.
STREAM_READ_TIMEOUT_S = 45.0
MAX_STREAM_RECONNECTS = 5

_VERSIONS = TypeAdapter(list[ModelVersionOut])


@dataclass
class Progress:
    """What `wait` reports to its callback after every event of the job."""

    job_id: uuid.UUID
    status: str
    stage: str | None
    progress: float
    event: JobEventOut | None = None

    def apply(self, event: JobEventOut) -> Progress:
        data = event.data or {}
        status = str(data.get("to") or self.status) if event.type == "status" else self.status
        stage = event.stage if status not in TERMINAL else None
        value = data.get("progress")
        progress = float(value) if isinstance(value, (int, float)) else self.progress
        return Progress(self.job_id, status, stage, progress, event)


@dataclass
class _Op:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any] = field(default=lambda r: r)
    params: dict[str, Any] | None = None
    json: Any = None
    content: Any = None
    headers: dict[str, str] | None = None

    def request_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.params:
            kwargs["params"] = {k: v for k, v in self.params.items() if v is not None}
        if self.json is not None:
            kwargs["json"] = self.json
        if self.content is not None:
            kwargs["content"] = self.content
        if self.headers:
            kwargs["headers"] = self.headers
        return kwargs


def _model(cls: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    return lambda response: cls.model_validate(response.json())


def _jsonl_bytes(records: Iterable[Any]) -> bytes:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode("utf-8")


class _SSEParser:
    """The text/event-stream framing: `id:`, `event:`, `data:` lines, an empty line ends an event."""

    def __init__(self) -> None:
        self.data: list[str] = []
        self.event_id: str | None = None

    def feed(self, line: str) -> dict[str, Any] | None:
        if line == "":
            if not self.data:
                return None
            frame = {"id": self.event_id, "data": "\n".join(self.data)}
            self.data = []
            return frame
        if line.startswith(":"):
            return None  # keepalive comment
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "data":
            self.data.append(value)
        elif name == "id":
            self.event_id = value
        return None


class _Operations:
    """The API, one `_Op` per call."""

    @staticmethod
    def tenant() -> _Op:
        return _Op("GET", "/v1/tenant", _model(TenantOut))

    @staticmethod
    def register_model(name: str, path: str | Path) -> _Op:
        return _Op("POST", "/v1/models", _model(ModelOut), json={"name": name, "path": str(path)})

    @staticmethod
    def list_models(limit: int | None, cursor: str | None) -> _Op:
        return _Op("GET", "/v1/models", _model(Page[ModelOut]), params={"limit": limit, "cursor": cursor})

    @staticmethod
    def get_model(model_id: uuid.UUID | str) -> _Op:
        return _Op("GET", f"/v1/models/{model_id}", _model(ModelOut))

    @staticmethod
    def model_versions(model_id: uuid.UUID | str) -> _Op:
        return _Op("GET", f"/v1/models/{model_id}/versions", lambda r: _VERSIONS.validate_python(r.json()))

    @staticmethod
    def upload_dataset(name: str, kind: str, content: Any) -> _Op:
        return _Op("POST", "/v1/datasets", _model(DatasetOut), params={"name": name, "kind": kind}, content=content,
                   headers={"Content-Type": "application/jsonl"})

    @staticmethod
    def list_datasets(limit: int | None, cursor: str | None) -> _Op:
        return _Op("GET", "/v1/datasets", _model(Page[DatasetOut]), params={"limit": limit, "cursor": cursor})

    @staticmethod
    def get_dataset(dataset_id: uuid.UUID | str) -> _Op:
        return _Op("GET", f"/v1/datasets/{dataset_id}", _model(DatasetOut))

    @staticmethod
    def submit(request: UnlearnRequest, idempotency_key: str | None) -> _Op:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return _Op("POST", "/v1/unlearn", _model(JobOut),
                   json=request.model_dump(mode="json", exclude_unset=True), headers=headers)

    @staticmethod
    def get_job(job_id: uuid.UUID | str) -> _Op:
        return _Op("GET", f"/v1/jobs/{job_id}", _model(JobOut))

    @staticmethod
    def list_jobs(status: str | None, model_id: uuid.UUID | str | None, limit: int | None, cursor: str | None) -> _Op:
        return _Op("GET", "/v1/jobs", _model(Page[JobOut]),
                   params={"status": status, "model_id": str(model_id) if model_id else None, "limit": limit,
                           "cursor": cursor})

    @staticmethod
    def events(job_id: uuid.UUID | str, limit: int | None, cursor: str | None) -> _Op:
        return _Op("GET", f"/v1/jobs/{job_id}/events", _model(Page[JobEventOut]),
                   params={"limit": limit, "cursor": cursor})

    @staticmethod
    def cancel(job_id: uuid.UUID | str) -> _Op:
        return _Op("POST", f"/v1/jobs/{job_id}/cancel", _model(JobOut))

    @staticmethod
    def approve(job_id: uuid.UUID | str) -> _Op:
        return _Op("POST", f"/v1/jobs/{job_id}/approve", _model(JobOut))

    @staticmethod
    def reject(job_id: uuid.UUID | str, reason: str | None) -> _Op:
        return _Op("POST", f"/v1/jobs/{job_id}/reject", _model(JobOut),
                   json={"reason": reason} if reason else None)

    @staticmethod
    def report(job_id: uuid.UUID | str) -> _Op:
        return _Op("GET", f"/v1/jobs/{job_id}/report", _model(JobReport))

    @staticmethod
    def report_html(job_id: uuid.UUID | str) -> _Op:
        return _Op("GET", f"/v1/jobs/{job_id}/report.html", lambda r: r.text, headers={"Accept": "text/html"})

    @staticmethod
    def signed_report_file(job_id: uuid.UUID | str, name: str) -> _Op:
        """`report.json` (the exact signed bytes) or `report.dsse.json` (the envelope)."""
        return _Op("GET", f"/v1/jobs/{job_id}/{name}", lambda r: r.content, headers={"Accept": "application/json"})


def build_request(model_id: uuid.UUID | str | UnlearnRequest, kind: str | None = None,
                  forget: Iterable[Any] | None = None, **fields: Any) -> UnlearnRequest:
    """An `UnlearnRequest` from keyword arguments (validated here, before anything is sent)."""
    if isinstance(model_id, UnlearnRequest):
        return model_id
    body: dict[str, Any] = {"model_id": model_id, "kind": kind, "forget": list(forget or [])}
    body.update({k: v for k, v in fields.items() if v is not None})
    try:
        return UnlearnRequest.model_validate(body)
    except ValidationError as exc:
        # The same typed error (and problem shape) as the server's 422, raised before anything is sent.
        errors = [{"loc": ".".join(str(p) for p in ("body", *e.get("loc", ()))), "msg": e.get("msg", ""),
                   "type": e.get("type", "")} for e in exc.errors(include_url=False, include_input=False)]
        problem = {"type": "about:blank", "title": "Unprocessable Content", "status": 422,
                   "detail": f"{errors[0]['loc']}: {errors[0]['msg']}", "errors": errors}
        raise ValidationFailed(422, problem, method="POST", url="/v1/unlearn (not sent)") from None


class _Base:
    def __init__(self, url: str | None, api_key: str | None, timeout: float) -> None:
        config = load_config(url, api_key)
        self.url = config.url
        self.api_key = config.api_key
        self.timeout = timeout
        self.headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if self.api_key:
            self.headers["Authorization"] = f"Bearer {self.api_key}"

    @staticmethod
    def _check(response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            raise error_for(response)
        return response


class GrinClient(_Base):
    """Synchronous client. `url`/`api_key` default to GRIN_URL / GRIN_API_KEY / ~/.config/grin/config.toml."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        super().__init__(url, api_key, timeout)
        self._http = httpx.Client(base_url=self.url, headers=self.headers, timeout=timeout, transport=transport)

    def __enter__(self) -> GrinClient:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def _send(self, op: _Op) -> httpx.Response:
        try:
            response = self._http.request(op.method, op.path, **op.request_kwargs())
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from exc
        return self._check(response)

    def _call(self, op: _Op) -> Any:
        return op.parse(self._send(op))

    @staticmethod
    def _pages(fetch: Callable[[str | None], Page[T]]) -> Iterator[T]:
        cursor: str | None = None
        while True:
            page = fetch(cursor)
            yield from page.items
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # --- tenant, models, datasets -------------------------------------------------------------
    def tenant(self) -> TenantOut:
        return self._call(_Operations.tenant())  # type: ignore[no-any-return]

    def register_model(self, name: str, path: str | Path) -> ModelOut:
        return self._call(_Operations.register_model(name, path))  # type: ignore[no-any-return]

    def list_models(self, *, limit: int | None = None, cursor: str | None = None) -> Page[ModelOut]:
        return self._call(_Operations.list_models(limit, cursor))  # type: ignore[no-any-return]

    def iter_models(self, *, page_size: int | None = None) -> Iterator[ModelOut]:
        return self._pages(lambda cursor: self.list_models(limit=page_size, cursor=cursor))

    def get_model(self, model_id: uuid.UUID | str) -> ModelOut:
        return self._call(_Operations.get_model(model_id))  # type: ignore[no-any-return]

    def model_versions(self, model_id: uuid.UUID | str) -> list[ModelVersionOut]:
        return self._call(_Operations.model_versions(model_id))  # type: ignore[no-any-return]

    def upload_dataset(self, name: str, kind: str, source: str | Path | bytes | Iterable[Any]) -> DatasetOut:
        """Upload JSON Lines from a file path (streamed), raw bytes, or an iterable of records."""
        if isinstance(source, (str, Path)):
            with open(source, "rb") as handle:
                return self._call(_Operations.upload_dataset(name, kind, handle))  # type: ignore[no-any-return]
        content = source if isinstance(source, bytes) else _jsonl_bytes(source)
        return self._call(_Operations.upload_dataset(name, kind, content))  # type: ignore[no-any-return]

    def list_datasets(self, *, limit: int | None = None, cursor: str | None = None) -> Page[DatasetOut]:
        return self._call(_Operations.list_datasets(limit, cursor))  # type: ignore[no-any-return]

    def iter_datasets(self, *, page_size: int | None = None) -> Iterator[DatasetOut]:
        return self._pages(lambda cursor: self.list_datasets(limit=page_size, cursor=cursor))

    def get_dataset(self, dataset_id: uuid.UUID | str) -> DatasetOut:
        return self._call(_Operations.get_dataset(dataset_id))  # type: ignore[no-any-return]

    # --- jobs ---------------------------------------------------------------------------------
    def submit(self, model_id: uuid.UUID | str | UnlearnRequest, kind: str | None = None,
               forget: Iterable[Any] | None = None, *, idempotency_key: str | None = None, **fields: Any) -> JobOut:
        """Submit an unlearning request (an `UnlearnRequest`, or its fields as arguments). With an
        `idempotency_key`, sending the same request again returns the first job instead of a new one."""
        request = build_request(model_id, kind, forget, **fields)
        return self._call(_Operations.submit(request, idempotency_key))  # type: ignore[no-any-return]

    def get_job(self, job_id: uuid.UUID | str) -> JobOut:
        return self._call(_Operations.get_job(job_id))  # type: ignore[no-any-return]

    def list_jobs(self, *, status: str | None = None, model_id: uuid.UUID | str | None = None,
                  limit: int | None = None, cursor: str | None = None) -> Page[JobOut]:
        return self._call(_Operations.list_jobs(status, model_id, limit, cursor))  # type: ignore[no-any-return]

    def iter_jobs(self, *, status: str | None = None, model_id: uuid.UUID | str | None = None,
                  page_size: int | None = None) -> Iterator[JobOut]:
        return self._pages(lambda cursor: self.list_jobs(status=status, model_id=model_id, limit=page_size,
                                                         cursor=cursor))

    def events(self, job_id: uuid.UUID | str, *, limit: int | None = None,
               cursor: str | None = None) -> Page[JobEventOut]:
        return self._call(_Operations.events(job_id, limit, cursor))  # type: ignore[no-any-return]

    def iter_events(self, job_id: uuid.UUID | str, *, page_size: int | None = None) -> Iterator[JobEventOut]:
        """The events recorded so far, oldest first (paged; ends at the last one)."""
        return self._pages(lambda cursor: self.events(job_id, limit=page_size, cursor=cursor))

    def stream_events(self, job_id: uuid.UUID | str, *, last_event_id: int | None = None) -> Iterator[JobEventOut]:
        """Server-sent events as they happen; ends when the job has ended and every event was delivered.
        A dropped connection is resumed from the last event seen (`Last-Event-ID`)."""
        reconnects = 0
        while True:
            headers = {"Accept": SSE_MEDIA_TYPE}
            if last_event_id is not None:
                headers["Last-Event-ID"] = str(last_event_id)
            timeout = httpx.Timeout(self.timeout, read=STREAM_READ_TIMEOUT_S)
            try:
                with self._http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers,
                                       timeout=timeout) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise error_for(response)
                    parser = _SSEParser()
                    for line in response.iter_lines():
                        frame = parser.feed(line)
                        if frame is not None:
                            event = JobEventOut.model_validate_json(frame["data"])
                            last_event_id = event.id
                            reconnects = 0
                            yield event
                return
            except httpx.TransportError as exc:
                reconnects += 1
                if reconnects > MAX_STREAM_RECONNECTS:
                    raise ServiceUnreachable(f"event stream of job {job_id} lost: {exc or type(exc).__name__}") \
                        from exc
                time.sleep(min(2.0 ** reconnects / 4, 5.0))

    def wait(self, job_id: uuid.UUID | str, *, on_progress: Callable[[Progress], None] | None = None,
             timeout: float | None = None) -> JobOut:
        """Follow the job's event stream until it ends; call `on_progress` after each event. Returns the
        final job (check `.status`); raises `WaitTimeout` after `timeout` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        job = self.get_job(job_id)
        state = Progress(job.id, job.status, job.stage, job.progress)
        if on_progress:
            on_progress(state)
        last_id: int | None = None
        while job.status not in TERMINAL:
            for event in self.stream_events(job_id, last_event_id=last_id):
                last_id = event.id
                state = state.apply(event)
                if on_progress:
                    on_progress(state)
                if deadline is not None and time.monotonic() > deadline:
                    raise WaitTimeout(f"job {job_id} still {state.status} after {timeout}s", self.get_job(job_id))
            job = self.get_job(job_id)
            if deadline is not None and time.monotonic() > deadline and job.status not in TERMINAL:
                raise WaitTimeout(f"job {job_id} still {job.status} after {timeout}s", job)
        return job

    def cancel(self, job_id: uuid.UUID | str) -> JobOut:
        return self._call(_Operations.cancel(job_id))  # type: ignore[no-any-return]

    def approve(self, job_id: uuid.UUID | str) -> JobOut:
        return self._call(_Operations.approve(job_id))  # type: ignore[no-any-return]

    def reject(self, job_id: uuid.UUID | str, reason: str | None = None) -> JobOut:
        return self._call(_Operations.reject(job_id, reason))  # type: ignore[no-any-return]

    def report(self, job_id: uuid.UUID | str) -> JobReport:
        return self._call(_Operations.report(job_id))  # type: ignore[no-any-return]

    def report_html(self, job_id: uuid.UUID | str) -> str:
        return self._call(_Operations.report_html(job_id))  # type: ignore[no-any-return]

    def report_envelope(self, job_id: uuid.UUID | str) -> bytes:
        """The DSSE envelope of the job's signed report (`grin verify-report` checks it)."""
        return self._call(_Operations.signed_report_file(job_id, "report.dsse.json"))  # type: ignore[no-any-return]

    def report_json_signed(self, job_id: uuid.UUID | str) -> bytes:
        """report.json exactly as signed (canonical JSON), for `grin verify-report --artifacts`."""
        return self._call(_Operations.signed_report_file(job_id, "report.json"))  # type: ignore[no-any-return]

    def download_mask(self, job_id: uuid.UUID | str, dest: str | Path) -> Path:
        """Stream the job's mask (safetensors) to `dest` (written whole or not at all)."""
        target = Path(dest)
        partial = target.with_name(f".{target.name}.part")
        try:
            with self._http.stream("GET", f"/v1/jobs/{job_id}/mask",
                                   headers={"Accept": "application/octet-stream"}) as response:
                if response.status_code >= 400:
                    response.read()
                    raise error_for(response)
                with open(partial, "wb") as out:
                    for chunk in response.iter_bytes():
                        out.write(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise ServiceUnreachable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target


class AsyncGrinClient(_Base):
    """The same API for asyncio code (`async with AsyncGrinClient() as grin: await grin.submit(...)`)."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        super().__init__(url, api_key, timeout)
        self._http = httpx.AsyncClient(base_url=self.url, headers=self.headers, timeout=timeout,
                                       transport=transport)

    async def __aenter__(self) -> AsyncGrinClient:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _call(self, op: _Op) -> Any:
        try:
            response = await self._http.request(op.method, op.path, **op.request_kwargs())
        except httpx.TransportError as exc:
            raise ServiceUnreachable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from exc
        return op.parse(self._check(response))

    async def _pages(self, fetch: Callable[[str | None], Any]) -> AsyncIterator[Any]:
        cursor: str | None = None
        while True:
            page = await fetch(cursor)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def tenant(self) -> TenantOut:
        return await self._call(_Operations.tenant())  # type: ignore[no-any-return]

    async def register_model(self, name: str, path: str | Path) -> ModelOut:
        return await self._call(_Operations.register_model(name, path))  # type: ignore[no-any-return]

    async def list_models(self, *, limit: int | None = None, cursor: str | None = None) -> Page[ModelOut]:
        return await self._call(_Operations.list_models(limit, cursor))  # type: ignore[no-any-return]

    def iter_models(self, *, page_size: int | None = None) -> AsyncIterator[ModelOut]:
        return self._pages(lambda cursor: self.list_models(limit=page_size, cursor=cursor))

    async def get_model(self, model_id: uuid.UUID | str) -> ModelOut:
        return await self._call(_Operations.get_model(model_id))  # type: ignore[no-any-return]

    async def model_versions(self, model_id: uuid.UUID | str) -> list[ModelVersionOut]:
        return await self._call(_Operations.model_versions(model_id))  # type: ignore[no-any-return]

    async def upload_dataset(self, name: str, kind: str, source: str | Path | bytes | Iterable[Any]) -> DatasetOut:
        if isinstance(source, (str, Path)):
            content = Path(source).read_bytes()
        else:
            content = source if isinstance(source, bytes) else _jsonl_bytes(source)
        return await self._call(_Operations.upload_dataset(name, kind, content))  # type: ignore[no-any-return]

    async def list_datasets(self, *, limit: int | None = None, cursor: str | None = None) -> Page[DatasetOut]:
        return await self._call(_Operations.list_datasets(limit, cursor))  # type: ignore[no-any-return]

    async def submit(self, model_id: uuid.UUID | str | UnlearnRequest, kind: str | None = None,
                     forget: Iterable[Any] | None = None, *, idempotency_key: str | None = None,
                     **fields: Any) -> JobOut:
        request = build_request(model_id, kind, forget, **fields)
        return await self._call(_Operations.submit(request, idempotency_key))  # type: ignore[no-any-return]

    async def get_job(self, job_id: uuid.UUID | str) -> JobOut:
        return await self._call(_Operations.get_job(job_id))  # type: ignore[no-any-return]

    async def list_jobs(self, *, status: str | None = None, model_id: uuid.UUID | str | None = None,
                        limit: int | None = None, cursor: str | None = None) -> Page[JobOut]:
        return await self._call(_Operations.list_jobs(status, model_id, limit, cursor))  # type: ignore[no-any-return]

    def iter_jobs(self, *, status: str | None = None, model_id: uuid.UUID | str | None = None,
                  page_size: int | None = None) -> AsyncIterator[JobOut]:
        return self._pages(lambda cursor: self.list_jobs(status=status, model_id=model_id, limit=page_size,
                                                         cursor=cursor))

    async def events(self, job_id: uuid.UUID | str, *, limit: int | None = None,
                     cursor: str | None = None) -> Page[JobEventOut]:
        return await self._call(_Operations.events(job_id, limit, cursor))  # type: ignore[no-any-return]

    async def stream_events(self, job_id: uuid.UUID | str, *,
                            last_event_id: int | None = None) -> AsyncIterator[JobEventOut]:
        import asyncio

        reconnects = 0
        while True:
            headers = {"Accept": SSE_MEDIA_TYPE}
            if last_event_id is not None:
                headers["Last-Event-ID"] = str(last_event_id)
            timeout = httpx.Timeout(self.timeout, read=STREAM_READ_TIMEOUT_S)
            try:
                async with self._http.stream("GET", f"/v1/jobs/{job_id}/events", headers=headers,
                                             timeout=timeout) as response:
                    if response.status_code >= 400:
                        await response.aread()
                        raise error_for(response)
                    parser = _SSEParser()
                    async for line in response.aiter_lines():
                        frame = parser.feed(line)
                        if frame is not None:
                            event = JobEventOut.model_validate_json(frame["data"])
                            last_event_id = event.id
                            reconnects = 0
                            yield event
                return
            except httpx.TransportError as exc:
                reconnects += 1
                if reconnects > MAX_STREAM_RECONNECTS:
                    raise ServiceUnreachable(f"event stream of job {job_id} lost: {exc or type(exc).__name__}") \
                        from exc
                await asyncio.sleep(min(2.0 ** reconnects / 4, 5.0))

    async def wait(self, job_id: uuid.UUID | str, *, on_progress: Callable[[Progress], Any] | None = None,
                   timeout: float | None = None) -> JobOut:
        import asyncio
        import inspect

        async def report(state: Progress) -> None:
            if on_progress is not None:
                result = on_progress(state)
                if inspect.isawaitable(result):
                    await result

        async def follow() -> JobOut:
            job = await self.get_job(job_id)
            state = Progress(job.id, job.status, job.stage, job.progress)
            await report(state)
            last_id: int | None = None
            while job.status not in TERMINAL:
                async for event in self.stream_events(job_id, last_event_id=last_id):
                    last_id = event.id
                    state = state.apply(event)
                    await report(state)
                job = await self.get_job(job_id)
            return job

        try:
            return await asyncio.wait_for(follow(), timeout)
        except TimeoutError:
            raise WaitTimeout(f"job {job_id} did not end within {timeout}s", await self.get_job(job_id)) from None

    async def cancel(self, job_id: uuid.UUID | str) -> JobOut:
        return await self._call(_Operations.cancel(job_id))  # type: ignore[no-any-return]

    async def approve(self, job_id: uuid.UUID | str) -> JobOut:
        return await self._call(_Operations.approve(job_id))  # type: ignore[no-any-return]

    async def reject(self, job_id: uuid.UUID | str, reason: str | None = None) -> JobOut:
        return await self._call(_Operations.reject(job_id, reason))  # type: ignore[no-any-return]

    async def report(self, job_id: uuid.UUID | str) -> JobReport:
        return await self._call(_Operations.report(job_id))  # type: ignore[no-any-return]

    async def report_html(self, job_id: uuid.UUID | str) -> str:
        return await self._call(_Operations.report_html(job_id))  # type: ignore[no-any-return]

    async def download_mask(self, job_id: uuid.UUID | str, dest: str | Path) -> Path:
        target = Path(dest)
        partial = target.with_name(f".{target.name}.part")
        try:
            async with self._http.stream("GET", f"/v1/jobs/{job_id}/mask") as response:
                if response.status_code >= 400:
                    await response.aread()
                    raise error_for(response)
                with open(partial, "wb") as out:
                    async for chunk in response.aiter_bytes():
                        out.write(chunk)
        except httpx.TransportError as exc:
            partial.unlink(missing_ok=True)
            raise ServiceUnreachable(f"cannot reach {self.url}: {exc or type(exc).__name__}") from exc
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.replace(target)
        return target


def records_from_jsonl(lines: Iterable[str], name: str = "records") -> list[Any]:
    """Parse JSON Lines (blank lines skipped); ValueError names the first bad line."""
    records: list[Any] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{name}: line {number} is not JSON ({exc.msg})") from None
    return records

