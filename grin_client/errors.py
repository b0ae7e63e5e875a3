"""Typed exceptions. Every refusal by the API is an `ApiError` subclass carrying the problem+json document."""

from __future__ import annotations

from typing import Any

import httpx


class GrinError(Exception):
    """Anything the client raises on purpose."""


class ServiceUnreachable(GrinError):
    """No HTTP answer at all (connection refused, DNS, timeout)."""


class WaitTimeout(GrinError):
    """`wait` gave up before the job ended; `job` is the last state seen."""

    def __init__(self, message: str, job: Any = None) -> None:
        super().__init__(message)
        self.job = job


class ApiError(GrinError):
    """An error response; `problem` is the RFC 9457 document (or a synthesised one for non-problem bodies)."""

    status: int

    def __init__(self, status: int, problem: dict[str, Any], *, method: str = "", url: str = "",
                 headers: dict[str, str] | None = None) -> None:
        self.status = status
        self.problem = problem
        self.method = method
        self.url = url
        self.headers = headers or {}
        super().__init__(self.one_line())

    @property
    def title(self) -> str:
        return str(self.problem.get("title") or "Error")

    @property
    def detail(self) -> str | None:
        detail = self.problem.get("detail")
        return None if detail is None else str(detail)

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.problem.get("errors") or [])

    def one_line(self) -> str:
        text = f"{self.status} {self.title}"
        if self.detail:
            text += f": {self.detail}"
        return " ".join(text.split())


class BadRequest(ApiError):
    """400 and any 4xx without a class of its own."""


class Unauthorized(ApiError):
    """401: missing, unknown or revoked API key."""


class NotFound(ApiError):
    """404: no such object for this tenant (or no such route on this server version)."""


class Conflict(ApiError):
    """409: the object's state forbids it (cancel a finished job, an idempotency key still in flight)."""


class PayloadTooLarge(ApiError):
    """413."""


class ValidationFailed(ApiError):
    """422: the request did not validate; `errors` lists each problem (`loc`, `msg`, `type`)."""


class RateLimited(ApiError):
    """429: too many jobs in flight; `retry_after` seconds when the server said."""

    @property
    def retry_after(self) -> float | None:
        value = self.headers.get("retry-after")
        try:
            return float(value) if value is not None else None
        except ValueError:
            return None


class ServerError(ApiError):
    """5xx (503: the database or broker is down; retry later)."""


_BY_STATUS: dict[int, type[ApiError]] = {401: Unauthorized, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
                                         422: ValidationFailed, 429: RateLimited}


def error_for(response: httpx.Response) -> ApiError:
    """The exception for an error response, reading its problem+json body (or wrapping whatever came)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        text = response.text.strip()
        body = {"title": response.reason_phrase or "Error", "status": response.status_code}
        if text:
            body["detail"] = text[:500]
    status = response.status_code
    cls = _BY_STATUS.get(status) or (ServerError if status >= 500 else BadRequest)
    request = response.request
    return cls(status, body, method=request.method, url=str(request.url),
               headers={k.lower(): v for k, v in response.headers.items()})
