"""`X-Request-ID` on every response, an access log line per request, and the latency histogram.

Pure ASGI (no BaseHTTPMiddleware), so streamed responses (SSE, downloads) pass through untouched. The
latency observed is the time to the response's first byte (its headers): for an SSE stream that is how
long the stream took to open, not how long the client stayed.
"""

from __future__ import annotations

import logging
import os
import re
import time
from typing import Any

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.observability.logging import request_id_var
from app.observability.metrics import MetricsRegistry

access_log = logging.getLogger("grin.access")
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_KEY_PREFIX = re.compile(r"^grin_([0-9a-f]{12})_")


def route_template(scope: Scope) -> str:
    """`/v1/jobs/{job_id}` rather than the concrete path, so label values stay few."""
    route = scope.get("route")
    path = getattr(route, "path", None) or getattr(route, "path_format", None)
    return str(path) if path else "unmatched"


def _key_prefix(headers: Headers) -> str | None:
    authorization = headers.get("authorization", "")
    scheme, _, credential = authorization.partition(" ")
    match = _KEY_PREFIX.match(credential.strip()) if scheme.lower() == "bearer" else None
    return match.group(1) if match else None


class ObservabilityMiddleware:
    def __init__(self, app: ASGIApp, metrics: MetricsRegistry) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        incoming = headers.get("x-request-id", "")
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else os.urandom(16).hex()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "observed": False}

        def observe() -> None:
            if not state["observed"]:
                state["observed"] = True
                self.metrics.observe_request(scope["method"], route_template(scope), state["status"],
                                             time.perf_counter() - started)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
                observe()
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            observe()
            path_params = scope.get("path_params") or {}
            job_id = path_params.get("job_id")
            access_log.info("request", extra={
                "request_id": request_id, "method": scope["method"], "route": route_template(scope),
                "path": scope["path"], "status": state["status"],
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "key_prefix": _key_prefix(headers), **({"job_id": str(job_id)} if job_id else {}),
            })
            request_id_var.reset(token)
